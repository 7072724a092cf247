//! The rules a baseline was written with, kept beside it (`psdiff.rules`
//! beside `psdiff.db`), so that `show` compares the baseline with a dump
//! made by the same rules, and says in one line when the rules in force
//! (a new psdiff, an edited rule) would print the processes differently,
//! instead of reporting every line they change as missing and extra.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Source;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The psdiff that wrote it.
    pub psdiff: String,
    /// Every source of rules, in order, the built-ins last when used.
    pub sources: Vec<Source>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is damaged ({why}); run `psdiff write -v` to review and store the rules in force", .path.display())]
    Malformed { path: PathBuf, why: String },
    #[error("cannot write {}: {source}; `show` will not know the rules the baseline was written with", .path.display())]
    Unwritable {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the record of the baseline at `db` is kept.
pub fn path(db: &Path) -> PathBuf {
    db.with_extension("rules")
}

/// The record beside `db`; `Ok(None)` when there is none (a baseline
/// written by the Python psdiff, or by psdiff before it kept one).
pub fn read(db: &Path) -> Result<Option<Record>, RecordError> {
    let path = path(db);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordError::Unreadable { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| RecordError::Malformed {
            path,
            why: e.to_string(),
        })
}

/// Keeps `sources` as the rules of the baseline at `db`, with the mode of
/// the baseline (whoever may read the one may read the other).
pub fn write(db: &Path, sources: &[Source], mode: u32) -> Result<(), RecordError> {
    let record = Record {
        psdiff: env!("CARGO_PKG_VERSION").to_string(),
        sources: sources.to_vec(),
    };
    let mut text = serde_json::to_string_pretty(&record).expect("a record serializes");
    text.push('\n');
    let path = path(db);
    crate::atomic::write(&path, text.as_bytes(), mode)
        .map_err(|source| RecordError::Unwritable { path, source })
}
