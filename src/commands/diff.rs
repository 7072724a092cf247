//! `psdiff diff OLD NEW`: the changes between two dump or baseline files,
//! e.g. `psdiff diff /var/lib/psdiff.old /var/lib/psdiff.db`.

use std::path::Path;

use super::print;
use crate::app::Error;
use crate::baseline::{self, BaselineError};
use crate::cli::DiffFormat;
use crate::exit::Exit;
use crate::report::{self, Wanted};

pub fn run(old: &Path, new: &Path, format: DiffFormat) -> Result<Exit, Error> {
    let read = |path: &Path| -> Result<String, Error> {
        let bytes = std::fs::read(path).map_err(|source| BaselineError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        // A file given here is no baseline to replace: say only what it is.
        baseline::parse(path, bytes)
            .map(|b| b.text)
            .map_err(|e| match e {
                BaselineError::Malformed { path, line, why } => Error::Usage(format!(
                    "{}:{line}: {why}; give two psdiff dumps or baselines",
                    path.display()
                )),
                other => other.into(),
            })
    };
    let (old, new) = (read(old)?, read(new)?);
    let both = Wanted {
        missing: true,
        extra: true,
    };
    let changes = report::changes(&old, &new, both);
    print(&match format {
        DiffFormat::Text => report::text(&changes),
        DiffFormat::Json => report::json::changes_json(&changes),
    })?;
    Ok(if changes.is_empty() {
        Exit::Clean
    } else {
        Exit::Report
    })
}
