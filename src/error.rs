//! The errors that reach the top, and the exit code each one means.

use crate::report::nagios::NagiosState;

/// How psdiff exits. Plain formats use the first four (see README.md);
/// `--format nagios` uses the Nagios plugin states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing to report.
    Clean,
    /// Something to report: differences, failed checks, unknown pids.
    Report,
    /// Usage or configuration error.
    Usage,
    /// Runtime failure: /proc, the baseline or output unreadable/unwritable.
    Runtime,
    Nagios(NagiosState),
    /// `psdiff files -- CMD`, `psdiff contain`: the command's own exit status.
    Command(u8),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::Report => 1,
            Exit::Usage => 2,
            Exit::Runtime => 3,
            Exit::Nagios(state) => state as u8,
            Exit::Command(status) => status,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Baseline(#[from] crate::baseline::BaselineError),
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("cannot read the passwd file {}: {source}", .path.display())]
    Passwd {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write {}: {source}", .path.display())]
    OutputFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
}

impl Error {
    pub fn exit(&self) -> Exit {
        let usage = match self {
            Error::Config(_) | Error::Usage(_) => true,
            Error::Serve(e) => e.is_usage(),
            Error::Files(e) => e.is_usage(),
            Error::Snapshot(_)
            | Error::Baseline(_)
            | Error::Record(_)
            | Error::Identity(_)
            | Error::Output(_)
            | Error::OutputFile { .. }
            | Error::Passwd { .. } => false,
        };
        if usage { Exit::Usage } else { Exit::Runtime }
    }
}
