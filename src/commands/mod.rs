//! One module per subcommand; each returns its exit code and writes its
//! output through `print`, `print_with` or `emit`, so a closed pipe
//! (`psdiff dump | head`) is a quiet end, not a panic.

mod check;
mod config;
mod diff;
mod docs;
mod dump;
mod error;
mod explain;
mod files;
mod history;
mod manual;
mod serve;
mod show;
mod watch;
mod write;

use std::io::Write;

use crate::app::context::Context;
use crate::cli::{Cli, Command, GlobalArgs};
use crate::exit::Exit;
use crate::report::Wanted;
pub use error::Error;

pub fn run(cli: Cli) -> Result<Exit, Error> {
    let context = context_of(cli.global);
    match cli.command {
        Command::Serve(args) => serve::run(context, &args),
        Command::Files(args) => files::run(&context, &args),
        Command::Watch(args) => watch::run(&context, &args),
        Command::Token(command) => serve::token(command),
        command => Ok(run_app(&context, command)?),
    }
}

/// Where processes, rules, users and the baseline come from, as the
/// global options say.
fn context_of(global: GlobalArgs) -> Context {
    Context::new(
        global.proc_root,
        global.db,
        global.journal,
        global.config,
        global.passwd,
        global.host.as_deref(),
    )
}

/// The commands that fail only as the application layer does.
fn run_app(context: &Context, command: Command) -> Result<Exit, crate::app::Error> {
    match command {
        Command::Dump { format } => dump::run(context, format),
        Command::Explain { pids } => explain::run(context, &pids),
        Command::Config(command) => config::run(context, command),
        Command::Write { verbose } => write::run(context, verbose),
        Command::Show {
            missing,
            extra,
            options,
        } => {
            // Neither flag: both kinds, as the Python psdiff's `show`.
            let wanted = Wanted {
                missing: missing || !extra,
                extra: extra || !missing,
            };
            show::run(context, wanted, &options)
        }
        Command::ShowMissing(options) => show::run(
            context,
            Wanted {
                missing: true,
                extra: false,
            },
            &options,
        ),
        Command::ShowExtra(options) => show::run(
            context,
            Wanted {
                missing: false,
                extra: true,
            },
            &options,
        ),
        Command::Manual(command) => manual::run(context, command),
        Command::Diff { old, new, format } => diff::run(&old, &new, format),
        Command::Check(args) => check::run(context, &args),
        Command::History(args) => history::run(context, &args),
        Command::Serve(_) | Command::Files(_) | Command::Watch(_) | Command::Token(_) => {
            unreachable!("run takes the commands of the API and the watcher")
        }
        Command::Man => docs::man(),
        Command::Contain { seconds, argv } => {
            let outcome = crate::contain::run(&argv, std::time::Duration::from_secs(seconds))
                .map_err(|e| crate::app::Error::Usage(format!("cannot run {:?}: {e}", argv[0])))?;
            Ok(Exit::Command(crate::contain::exit_with(outcome)))
        }
        Command::Completions { shell } => docs::completions(shell),
    }
}

/// Writes `text` to `output` atomically (a temp file renamed over it,
/// readable by all, so node_exporter never reads half a file), or to
/// stdout when there is no `output`.
pub fn emit(output: Option<&std::path::Path>, text: &str) -> Result<(), crate::app::Error> {
    let Some(path) = output else {
        return print(text);
    };
    crate::atomic::write(path, text.as_bytes(), 0o644).map_err(|source| {
        crate::app::Error::OutputFile {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes all of `text` to stdout. A reader that went away is not an error.
pub fn print(text: &str) -> Result<(), crate::app::Error> {
    print_with(|out| out.write_all(text.as_bytes()))
}

/// Writes what `write` writes to standard output, buffered; as `print`,
/// a reader that went away (`| head`) is no error.
pub fn print_with(
    write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock>) -> std::io::Result<()>,
) -> Result<(), crate::app::Error> {
    let mut stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    match write(&mut stdout).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::app::Error::Output(e)),
        _ => Ok(()),
    }
}
