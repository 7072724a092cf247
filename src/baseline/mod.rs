//! The stored baseline: the dump text of a known-good moment.
//!
//! Reading validates every line, so a damaged file is reported with its
//! line number instead of turning into a page of false alarms. Writing is
//! atomic and durable, under a lock, and keeps the previous file as `.old`
//! without any moment in which the baseline path is missing.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::render;

mod edit;
pub use edit::Unchanged;

/// How long `write` waits for another writer before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read the baseline {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "psdiff runs as user {user}, which may not read the baseline {}: make it readable to {user} \
         (`chmod 0644 {}`; psdiff write keeps the mode), or run psdiff as root through sudo with the exact \
         arguments of each check (the lines are in /usr/share/psdiff/sudoers)",
        .path.display(), .path.display()
    )]
    NoPermission { path: PathBuf, user: String },
    #[error(
        "{}:{line}: {why}; the baseline is damaged: check it, or run `psdiff write` to replace it (the damaged file is kept as {})",
        .path.display(), old_path(.path).display()
    )]
    Malformed {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("cannot write the baseline {}: {step}: {source}; the old baseline is untouched", .path.display())]
    Write {
        path: PathBuf,
        step: &'static str,
        source: std::io::Error,
    },
    #[error(
        "another psdiff is writing the baseline {} (it holds {}); try again when it is done",
        .path.display(), lock_path(.path).display()
    )]
    Locked { path: PathBuf },
}

/// A baseline as read: its path and its lines, each checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub path: PathBuf,
    pub text: String,
}

impl Baseline {
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }
}

/// The `.old` file beside a baseline: the extension replaced
/// (psdiff.db → psdiff.old), or `.old` added when there is none.
pub fn old_path(path: &Path) -> PathBuf {
    path.with_extension("old")
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// Reads and checks the baseline; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<Baseline>, BaselineError> {
    read_bytes(path)?
        .map(|bytes| parse(path, bytes))
        .transpose()
}

/// A baseline larger than this is no dump (the largest hosts' are a few
/// megabytes): a mistaken --db never makes psdiff read without end.
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The baseline's bytes, unchecked; `Ok(None)` when there is none. Only a
/// regular file is read (a FIFO would hang every check, a device never
/// end), and opening it never waits.
pub fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, BaselineError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .and_then(|file| {
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            if meta.len() > MAX_BYTES {
                return Err(std::io::Error::other(format!(
                    "{} bytes, more than any baseline ({MAX_BYTES})",
                    meta.len()
                )));
            }
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_BYTES + 1), &mut bytes)?;
            Ok(bytes)
        });
    match opened {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let uid = nix::unistd::Uid::effective();
            let user = nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map_or_else(|| uid.to_string(), |u| u.name);
            Err(BaselineError::NoPermission {
                path: path.to_path_buf(),
                user,
            })
        }
        Err(source) => Err(BaselineError::Unreadable {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Checks `bytes`, read from `path`: every line must be a dump line.
pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Baseline, BaselineError> {
    check(path, &bytes)?;
    let text = String::from_utf8(bytes).expect("checked to be UTF-8");
    Ok(Baseline {
        path: path.to_path_buf(),
        text,
    })
}

/// Every line must be UTF-8 text of the form `CMDLINE  {user=USER}`. The
/// whole buffer is checked at once; lines are looked at one by one only
/// to name the one that is wrong.
fn check(path: &Path, bytes: &[u8]) -> Result<(), BaselineError> {
    let malformed = |offset: usize, why: String| BaselineError::Malformed {
        path: path.to_path_buf(),
        line: bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1,
        why,
    };
    if let Some(nul) = memchr::memchr(0, bytes) {
        return Err(malformed(
            nul,
            "holds NUL bytes; this is a binary file, not a psdiff baseline".into(),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        malformed(
            at,
            format!("is not UTF-8 (bad byte at column {})", at - line_start + 1),
        )
    })?;
    if text.is_empty() {
        return Ok(());
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let marker = memchr::memmem::FinderRev::new(render::USER_MARKER);
    let mut offset = 0;
    for line in body.split('\n') {
        let well_formed = line.ends_with('}')
            && marker.rfind(line.as_bytes()).is_some_and(|at| {
                let user = &line[at + render::USER_MARKER.len()..line.len() - 1];
                !user.is_empty() && !line[..at].trim_start_matches(' ').is_empty()
            });
        if !well_formed {
            return Err(malformed(
                offset,
                format!(
                    "{:?} is not a psdiff line (`CMDLINE  {{user=USER}}`)",
                    shorten(line)
                ),
            ));
        }
        offset += line.len() + 1;
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// What `write_atomic` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Wrote,
    Unchanged,
}

/// A held writer's lock on a baseline; released on drop.
pub struct WriteLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl WriteLock {
    /// Takes the writer's lock beside `path`, waiting up to `LOCK_WAIT`.
    pub fn acquire(path: &Path) -> Result<WriteLock, BaselineError> {
        let lock_file = lock_path(path);
        // Never through a link planted where the lock goes.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_file)
            .map_err(|source| BaselineError::Write {
                path: path.to_path_buf(),
                step: "opening the lock file",
                source,
            })?;
        let started = Instant::now();
        let mut file = file;
        let mut said = false;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    return Ok(WriteLock {
                        path: path.to_path_buf(),
                        _lock: lock,
                    });
                }
                Err((f, _)) if started.elapsed() < LOCK_WAIT => {
                    if !said && started.elapsed() >= Duration::from_millis(500) {
                        eprintln!(
                            "psdiff: another psdiff is writing {} (it holds {}); waiting up to {} s",
                            path.display(),
                            lock_file.display(),
                            LOCK_WAIT.as_secs()
                        );
                        said = true;
                    }
                    file = f;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => {
                    return Err(BaselineError::Locked {
                        path: path.to_path_buf(),
                    });
                }
            }
        }
    }

    /// Replaces the baseline with `text`, keeping the current one as
    /// `.old`: temp file, fsync, hard link of the current file to a temp
    /// name renamed over `.old`, rename of the new file into place, fsync
    /// of the folder. A crash at any point leaves a whole old or whole new
    /// baseline. `current` is what the caller read under this lock.
    pub fn replace(&self, current: Option<&[u8]>, text: &str) -> Result<Written, BaselineError> {
        let path = &self.path;
        // Under the lock, temp files are left-overs of killed writers.
        remove_stale_temps(path);
        if current == Some(text.as_bytes()) {
            return Ok(Written::Unchanged);
        }
        let fail = |step: &'static str| {
            move |source: std::io::Error| BaselineError::Write {
                path: path.to_path_buf(),
                step,
                source,
            }
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // The mode of the file replaced (a monitoring agent may read it),
        // else 0644; set on the file, whatever the umask.
        let mode = crate::atomic::mode_of(path).unwrap_or(0o644);
        let (mut file, new_tmp) = crate::atomic::temp_file(path, "new", mode)
            .map_err(fail("creating a temporary file beside it"))?;
        let result = (|| {
            file.write_all(text.as_bytes())
                .map_err(fail("writing the temporary file"))?;
            file.sync_all()
                .map_err(fail("flushing the temporary file to disk"))?;
            drop(file);
            if current.is_some() {
                let old_tmp = crate::atomic::temp_name(path, "old")
                    .map_err(fail("linking the current baseline for .old"))?;
                fs::hard_link(path, &old_tmp)
                    .map_err(fail("linking the current baseline for .old"))?;
                let kept = fs::rename(&old_tmp, old_path(path))
                    .map_err(fail("keeping the current baseline as .old"));
                if kept.is_err() {
                    let _ = fs::remove_file(&old_tmp);
                }
                kept?;
            }
            fs::rename(&new_tmp, path).map_err(fail("renaming the temporary file into place"))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(fail("flushing the folder to disk"))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&new_tmp);
        }
        result.map(|()| Written::Wrote)
    }
}

/// Temp files of writers that were killed; under the lock no other writer
/// can own them.
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let is_temp = ["new", "old"]
            .iter()
            .any(|kind| crate::atomic::is_temp_of(&file_name, &name, kind));
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(bytes: &[u8]) -> Result<String, String> {
        parse(Path::new("b.db"), bytes.to_vec())
            .map(|b| b.text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn old_path_replaces_the_extension() {
        assert_eq!(
            old_path(Path::new("/var/lib/psdiff.db")),
            Path::new("/var/lib/psdiff.old")
        );
        assert_eq!(old_path(Path::new("/tmp/base")), Path::new("/tmp/base.old"));
    }

    #[test]
    fn a_python_baseline_is_read_as_it_is() {
        let text = "root  {user=root}\n  INIT  {user=root}\n    /usr/sbin/cron -f  {user=root}\n    caf\u{fffd}  {user=postgre+}\n";
        assert_eq!(checked(text.as_bytes()).unwrap(), text);
        assert_eq!(checked(b"").unwrap(), "");
    }

    #[test]
    fn damage_is_reported_with_its_line() {
        let e = checked(b"root  {user=root}\n  INIT  {user=root}\n  \xff\xfe  {user=root}\n")
            .unwrap_err();
        assert!(
            e.starts_with("b.db:3: is not UTF-8 (bad byte at column 3)"),
            "{e}"
        );
        let e = checked(b"root  {user=root}\nno user here\n").unwrap_err();
        assert!(
            e.starts_with("b.db:2: \"no user here\" is not a psdiff line"),
            "{e}"
        );
        let e = checked(b"\x7fELF\x02\x01\x01\x00\x00").unwrap_err();
        assert!(e.contains("b.db:1: holds NUL bytes"), "{e}");
        let e = checked(b"root  {user=root}\n\n  INIT  {user=root}\n").unwrap_err();
        assert!(e.starts_with("b.db:2: "), "{e}");
    }
}
