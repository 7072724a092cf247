//! The errors that reach the top, and the exit code each one means.

use crate::rules::ConfigError;
use crate::snapshot::SnapshotError;

/// Exit codes of the plain formats (see README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing to report.
    Clean = 0,
    /// Something to report: differences, failed checks, unknown pids.
    Report = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Runtime failure: /proc or a file could not be read or written.
    Runtime = 3,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("cannot read the passwd file {}: {source}", .path.display())]
    Passwd {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) => Exit::Usage,
            Error::Snapshot(_) | Error::Output(_) | Error::Passwd { .. } => Exit::Runtime,
        }
    }
}
