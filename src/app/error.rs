//! The errors of the application layer, and the exit code each means.

use crate::exit::Exit;

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
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
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
}

impl Error {
    pub fn exit(&self) -> Exit {
        let usage = match self {
            Error::Config(_) | Error::Usage(_) => true,
            Error::Snapshot(_)
            | Error::Baseline(_)
            | Error::Record(_)
            | Error::Identity(_)
            | Error::Journal(_)
            | Error::Output(_)
            | Error::OutputFile { .. }
            | Error::Passwd { .. } => false,
        };
        if usage { Exit::Usage } else { Exit::Runtime }
    }
}
