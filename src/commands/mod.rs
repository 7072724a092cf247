//! One module per subcommand; each returns its exit code and writes its
//! output through `Output`, so a closed pipe (`psdiff dump | head`) is a
//! quiet end, not a panic.

pub mod check;
mod compare;
mod config;
mod docs;
mod dump;
mod explain;
mod files;
mod manual;
mod serve;
pub mod show;
mod write;

use std::io::Write;
use std::path::PathBuf;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::{Error, Exit};
use crate::report::Wanted;
use crate::rules::{self, RuleSet, View};
use crate::snapshot::{Fields, Snapshot, UserNames};
use crate::tree::Tree;

pub fn run(cli: Cli) -> Result<Exit, Error> {
    let context = Context::new(cli.global);
    match cli.command {
        Command::Dump { format } => dump::run(&context, format),
        Command::Explain { pids } => explain::run(&context, &pids),
        Command::Config(command) => config::run(&context, command),
        Command::Write { verbose } => write::run(&context, verbose),
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
            show::run(&context, wanted, &options)
        }
        Command::ShowMissing(options) => show::run(
            &context,
            Wanted {
                missing: true,
                extra: false,
            },
            &options,
        ),
        Command::ShowExtra(options) => show::run(
            &context,
            Wanted {
                missing: false,
                extra: true,
            },
            &options,
        ),
        Command::Manual(command) => manual::run(&context, command),
        Command::Diff { old, new, format } => compare::run(&old, &new, format),
        Command::Check(args) => check::run(&context, &args),
        Command::Serve(args) => serve::run(context, &args),
        Command::Files(args) => files::run(&args),
        Command::Token(command) => serve::token(command),
        Command::Man => docs::man(),
        Command::Completions { shell } => docs::completions(shell),
    }
}

/// What every command needs: where processes and rules come from.
pub struct Context {
    pub proc_root: PathBuf,
    pub db: PathBuf,
    pub config: Option<PathBuf>,
    pub passwd: Option<PathBuf>,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Self {
        Context {
            proc_root: global.proc_root,
            db: global.db,
            config: global.config,
            passwd: global.passwd,
        }
    }

    pub fn rules(&self) -> Result<RuleSet, Error> {
        Ok(rules::load(self.config.as_deref())?)
    }

    /// A fresh snapshot, shaped by `rules`.
    pub fn view(&self, rules: &RuleSet) -> Result<View, Error> {
        self.view_with(rules, Fields::default())
    }

    /// Like `view`, reading at least `fields`.
    pub fn view_with(&self, rules: &RuleSet, mut fields: Fields) -> Result<View, Error> {
        fields.exe |= rules.needs_exe();
        let snapshot = self.snapshot(fields)?;
        Ok(rules::shape(Tree::build(snapshot.processes), rules))
    }

    /// A fresh snapshot of every process, reading `fields`.
    pub fn snapshot(&self, fields: Fields) -> Result<Snapshot, Error> {
        Ok(Snapshot::take(&self.proc_root, &mut self.users()?, fields)?)
    }

    /// Names for uids: from `--passwd`, else NSS.
    pub fn users(&self) -> Result<UserNames, Error> {
        match &self.passwd {
            Some(path) => UserNames::from_passwd_file(path).map_err(|source| Error::Passwd {
                path: path.clone(),
                source,
            }),
            None => Ok(UserNames::from_nss()),
        }
    }
}

/// Writes `text` to `output` atomically (a temp file renamed over it,
/// readable by all, so node_exporter never reads half a file), or to
/// stdout when there is no `output`.
pub fn emit(output: Option<&std::path::Path>, text: &str) -> Result<(), Error> {
    let Some(path) = output else {
        return print(text);
    };
    crate::atomic::write(path, text.as_bytes(), 0o644).map_err(|source| Error::OutputFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes all of `text` to stdout. A reader that went away is not an error.
pub fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(()),
    }
}
