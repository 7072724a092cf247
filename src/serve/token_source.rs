//! The token file as the server sees it: read again whenever it changes,
//! so `psdiff token revoke` takes effect on the next request.

use std::path::PathBuf;
use std::sync::Mutex;

use super::tokens::{Scope, Tokens};

/// The token file, read again whenever it changes, so `psdiff token
/// revoke` takes effect on the next request.
pub struct TokenSource {
    path: PathBuf,
    current: Mutex<(Option<FileStamp>, Result<Tokens, String>)>,
}

/// What tells that a file changed.
type FileStamp = (u64, u64, i64, i64, i64, i64, u64);

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.size(),
    ))
}

impl TokenSource {
    /// Reads `path` now; a missing, unsafe or malformed file is an error.
    pub fn open(path: PathBuf) -> Result<TokenSource, super::tokens::TokenError> {
        let at = stamp(&path);
        let tokens = Tokens::load(&path)?;
        Ok(TokenSource {
            path,
            current: Mutex::new((at, Ok(tokens))),
        })
    }

    pub fn count(&self) -> usize {
        let current = self.current.lock().expect("no panic holds this lock");
        current.1.as_ref().map_or(0, |t| t.entries.len())
    }

    pub fn verify(&self, presented: &str) -> Option<Identity> {
        let at = stamp(&self.path);
        let mut current = self.current.lock().expect("no panic holds this lock");
        if current.0 != at {
            let reloaded = Tokens::load(&self.path).map_err(|e| e.to_string());
            match &reloaded {
                Ok(t) => eprintln!("psdiff serve: tokens reloaded: {} tokens", t.entries.len()),
                // Fail closed: a file we cannot trust admits nobody.
                Err(e) => {
                    eprintln!("psdiff serve: {e}; every request is refused until it is fixed")
                }
            }
            *current = (at, reloaded);
        }
        let token = current.1.as_ref().ok()?.verify(presented)?;
        Some(Identity {
            name: token.name.clone(),
            scope: token.scope,
        })
    }
}

/// Who asked: the token's name and scope.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub scope: Scope,
}
