use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = psdiff::cli::Cli::parse();
    match psdiff::commands::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            eprintln!("psdiff: {error}");
            ExitCode::from(error.exit().code())
        }
    }
}
