//! `psdiff man` and `psdiff completions`, generated from the clap
//! definitions so they never drift from the real options.

use clap::CommandFactory;

use super::print;
use crate::cli::Cli;
use crate::error::{Error, Exit};

pub fn man() -> Result<Exit, Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(Error::Output)?;
    print(&String::from_utf8_lossy(&page))?;
    Ok(Exit::Clean)
}

pub fn completions(shell: clap_complete::Shell) -> Result<Exit, Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "psdiff", &mut script);
    print(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Clean)
}
