//! Whether a file psdiff reads with authority (rules, checks and their
//! actions, the API's tokens) may be trusted: psdiff runs as root, so a
//! file someone else can change would hand them root. The rules of
//! sshd's StrictModes and sudo: the file and every folder above it belong
//! to root or to the user running psdiff, and no one else may write them.
//! A folder others may write is allowed only with the sticky bit (/tmp),
//! where they cannot replace what is not theirs; a folder of drop-ins,
//! where a new file is a new rule, not even then.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a file or folder is not to be trusted: what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub path: PathBuf,
    pub why: String,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.why)
    }
}

/// Checks an opened file (`meta` from the open file, so no link swapped
/// in between is trusted) and the folders above `path`.
pub fn file(path: &Path, meta: &std::fs::Metadata) -> Result<(), Untrusted> {
    strict(
        path,
        meta,
        "file",
        "changed",
        "psdiff runs it as root, so that would give them root",
    )?;
    above(path)
}

/// Checks a folder whose every file is read (drop-ins): no one else may
/// add a file to it, sticky bit or not; and the folders above it.
pub fn drop_in_folder(dir: &Path) -> Result<(), Untrusted> {
    let meta = std::fs::metadata(dir).map_err(|e| Untrusted {
        path: dir.to_path_buf(),
        why: format!("cannot look at {}: {e}", dir.display()),
    })?;
    strict(
        dir,
        &meta,
        "folder",
        "written",
        "any file they put there would be a rule of psdiff's",
    )?;
    above(dir)
}

/// Owned well, and writable by no one else, sticky bit or not; `risk`
/// says what another writer could do.
fn strict(
    path: &Path,
    meta: &std::fs::Metadata,
    what: &str,
    verb: &str,
    risk: &str,
) -> Result<(), Untrusted> {
    owned_well(path, meta, what)?;
    if meta.mode() & 0o022 != 0 {
        let shown = path.display();
        return Err(Untrusted {
            path: path.to_path_buf(),
            why: format!(
                "{shown} may be {verb} by {} (mode {:04o}): {risk}; run `chmod go-w {shown}`",
                writers(meta.mode()),
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// The folders above `path`, links resolved.
fn above(path: &Path) -> Result<(), Untrusted> {
    let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    match real.parent() {
        Some(dir) => ancestors(dir),
        None => Ok(()),
    }
}

/// Every folder from `dir` up to /.
fn ancestors(dir: &Path) -> Result<(), Untrusted> {
    for folder in dir.ancestors() {
        let Ok(meta) = std::fs::metadata(folder) else {
            continue;
        };
        owned_well(folder, &meta, "folder")?;
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !sticky {
            return Err(Untrusted {
                path: folder.to_path_buf(),
                why: format!(
                    "{} may be written by {} (mode {:04o}), who could put another file in the place of what psdiff reads; run `chmod go-w {}` or move the file",
                    folder.display(),
                    writers(meta.mode()),
                    meta.mode() & 0o7777,
                    folder.display()
                ),
            });
        }
    }
    Ok(())
}

/// Owned by root or by the user running psdiff.
fn owned_well(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<(), Untrusted> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() == 0 || meta.uid() == me {
        return Ok(());
    }
    let owner = nix::unistd::User::from_uid(meta.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    Err(Untrusted {
        path: path.to_path_buf(),
        why: format!(
            "the {what} {} belongs to {owner}, who could change what psdiff does as root; it must belong to root (or the user running psdiff): run `chown root: {}`",
            path.display(),
            path.display()
        ),
    })
}

fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and everyone",
        (true, false) => "its group",
        _ => "everyone",
    }
}
