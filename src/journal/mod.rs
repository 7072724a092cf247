//! The watcher's journal: every process image (a start by fork or exec,
//! or one found running) with who it was, how the rules saw it, and how
//! it ended. SQLite in WAL mode, so `psdiff watch` writes while `show`,
//! `check`, `history` and the API read, and an operator can open it with
//! `sqlite3`; times are unix seconds (`datetime(started, 'unixepoch')`).
//!
//! It must never stop the watcher from starting: a file SQLite cannot
//! read is moved aside (`journal.sqlite.corrupt-TIME`) and a new one made;
//! a full disk drops the batch (counted) and retention makes room. The
//! watcher commits once a second, so a `kill -9` loses at most that.

mod read;
pub mod timeline;
mod write;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub use read::{Filter, HistoryRow, Mark, Started, Transient, WatcherState};
pub use write::{Batch, Ending, NewImage, Retention, Writer, is_busy, is_full};

/// How soon after an exit a start of the same program in the same place
/// is its restart: in `history`'s timeline and in `check`'s `restarts`
/// alike. A minute covers systemd's `RestartSec=` and any supervisor's
/// back-off; a start by hand an hour later is a start of its own.
pub const RESTART_WINDOW_SECONDS: f64 = 60.0;

/// How long before an exit a start of the same may be dated and still be
/// its restart: the watcher dates each event as it reads it, and what
/// different CPUs report may reach it out of order.
pub const OUT_OF_ORDER_SECONDS: f64 = 1.0;

/// The schema's version, kept in `meta`; a journal of another version is
/// moved aside, as a corrupt one is.
const VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per process image: what a pid ran from a fork or exec (or
-- from when the watcher found it) until its exit or next exec.
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    boot TEXT NOT NULL,
    pid INTEGER NOT NULL,
    ppid INTEGER NOT NULL,
    start_ticks INTEGER NOT NULL,
    started REAL NOT NULL,
    origin TEXT NOT NULL,           -- fork, exec, scan
    uid INTEGER,
    user TEXT,
    exe TEXT,
    comm TEXT,
    argv TEXT,
    unit TEXT,
    cgroup TEXT,
    container TEXT,
    line TEXT,                      -- as `dump` prints it, under the rules
    verdict TEXT NOT NULL,          -- baseline, extra, hidden, shown, unread
    rule TEXT,                      -- the rule that hid it
    ended REAL,
    end_kind TEXT,                  -- exit, exec, lost
    exit_code INTEGER,
    exit_signal INTEGER,
    settled INTEGER                 -- order of endings, for cursors
);
CREATE INDEX IF NOT EXISTS images_started ON images (started);
CREATE INDEX IF NOT EXISTS images_settled ON images (settled);
CREATE INDEX IF NOT EXISTS images_open ON images (boot, pid) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS images_exe ON images (exe, ended);
CREATE INDEX IF NOT EXISTS images_pid ON images (pid, started);
-- Where each consumer (`show-extra --retry` as Zabbix runs it, NRPE's
-- check) stopped reading transient extras.
CREATE TABLE IF NOT EXISTS cursors (
    consumer TEXT PRIMARY KEY,
    settled INTEGER NOT NULL,
    at REAL NOT NULL,               -- its previous look
    before REAL                     -- the look before that
);
-- Events the watcher knows it missed, and when.
CREATE TABLE IF NOT EXISTS losses (
    at REAL NOT NULL,
    kind TEXT NOT NULL,             -- overflow, sequence, ring, unread, disk
    count INTEGER NOT NULL
);
-- The running watcher: its heartbeat tells a reader it is alive.
CREATE TABLE IF NOT EXISTS watcher (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    alive REAL NOT NULL,
    stopped REAL,                   -- set when it stopped cleanly
    backend TEXT NOT NULL,
    events INTEGER NOT NULL,
    lost INTEGER NOT NULL,
    unread INTEGER NOT NULL,
    rescans INTEGER NOT NULL
);
";

/// Adds the columns a journal of version 1 made before them lacks: they
/// are additive, so the journal keeps its history rather than being moved
/// aside for a new version.
fn add_later_columns(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has_before = db
        .prepare("SELECT 1 FROM pragma_table_info('cursors') WHERE name = 'before'")?
        .exists([])?;
    if !has_before {
        db.execute_batch("ALTER TABLE cursors ADD COLUMN before REAL")?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("journal {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "journal folder {} can be written by others (mode {mode:o}); make it root's alone: chmod 700",
        .path.display()
    )]
    Unsafe { path: PathBuf, mode: u32 },
}

/// An open journal.
pub struct Journal {
    path: PathBuf,
    db: Connection,
}

impl Journal {
    /// Opens the journal to read it (history, check, the API), never to
    /// write; `None` when there is none (no watcher ever ran).
    pub fn open_to_read(path: &Path) -> Result<Option<Journal>, JournalError> {
        Journal::open_reader(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    /// Opens the journal to read it and move a consumer's cursor (`show`'s
    /// transient extras); `None` when there is none.
    pub fn open_for_cursor(path: &Path) -> Result<Option<Journal>, JournalError> {
        let Some(journal) = Journal::open_reader(path, OpenFlags::SQLITE_OPEN_READ_WRITE)? else {
            return Ok(None);
        };
        add_later_columns(&journal.db).map_err(journal.fail())?;
        Ok(Some(journal))
    }

    fn open_reader(path: &Path, access: OpenFlags) -> Result<Option<Journal>, JournalError> {
        if !path.exists() {
            return Ok(None);
        }
        let journal = Journal::connect(path, access)?;
        // In WAL mode a reader waits only while a log left by a crash is
        // recovered; longer than the watcher's 5 s, as a history poll once
        // timed out while a restarted watcher came up in a storm. It never
        // sets the journal's mode: that is the watcher's, kept in the file.
        journal
            .db
            .execute_batch("PRAGMA busy_timeout = 15000;")
            .map_err(journal.fail())?;
        Ok(Some(journal))
    }

    /// Opens the journal the watcher writes, made if missing (root's
    /// alone: it holds every command line), moved aside and made anew if
    /// SQLite cannot use it.
    pub fn open_or_create(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent() {
            crate::atomic::create_dirs(dir, 0o700).map_err(|source| JournalError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            check_folder(dir)?;
        }
        match Journal::create(path) {
            Ok(journal) => Ok(journal),
            Err(e) => {
                let aside = set_aside(path)?;
                eprintln!(
                    "psdiff watch: {e}; moved it to {} and started a new journal",
                    aside.display()
                );
                Journal::create(path)
            }
        }
    }

    fn create(path: &Path) -> Result<Journal, JournalError> {
        if !path.exists() {
            Journal::make_new(path)?;
        }
        let journal = Journal::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let fail = |e| sqlite(path, e);
        journal.configure()?;
        let check: String = journal
            .db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(fail)?;
        if check != "ok" {
            return Err(sqlite(
                path,
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(format!("quick_check: {check}")),
                ),
            ));
        }
        journal.db.execute_batch(SCHEMA).map_err(fail)?;
        add_later_columns(&journal.db).map_err(fail)?;
        let version: Option<String> = journal
            .db
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .ok();
        match version.as_deref() {
            None => {
                journal
                    .db
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('version', ?1)",
                        [VERSION],
                    )
                    .map_err(fail)?;
            }
            Some(VERSION) => {}
            Some(other) => {
                return Err(sqlite(
                    path,
                    rusqlite::Error::InvalidParameterName(format!(
                        "schema version {other}, this psdiff writes {VERSION}"
                    )),
                ));
            }
        }
        Ok(journal)
    }

    /// Makes a journal with its tables under a name of its own and links
    /// it into place, so a reader never finds the file without them.
    /// Made exclusively, never through a planted link, 0600.
    fn make_new(path: &Path) -> Result<(), JournalError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut new = path.as_os_str().to_owned();
        new.push(format!(".new-{}", std::process::id()));
        let new = PathBuf::from(new);
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let _ = std::fs::remove_file(&new);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&new)
            .map_err(io)?;
        let made = Journal::connect(&new, OpenFlags::SQLITE_OPEN_READ_WRITE).and_then(|j| {
            // auto_vacuum takes effect only before the first table.
            // `create` then stamps its version, as for a journal of old.
            j.db.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
                .and_then(|()| j.db.execute_batch(SCHEMA))
                .map_err(|e| sqlite(path, e))
        });
        let linked = made.and_then(|()| match std::fs::hard_link(&new, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(io(e)),
            _ => Ok(()),
        });
        let _ = std::fs::remove_file(&new);
        linked
    }

    /// A connection to the file at `path`, never through a link.
    fn connect(path: &Path, access: OpenFlags) -> Result<Journal, JournalError> {
        let flags = access | OpenFlags::SQLITE_OPEN_NOFOLLOW | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = Connection::open_with_flags(path, flags).map_err(|e| sqlite(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            db,
        })
    }

    /// The watcher's settings. NORMAL in WAL mode: a crash loses at most
    /// the last commits, and never corrupts the file; the log is cut back
    /// to 16 MiB after each checkpoint, however far a storm grew it.
    fn configure(&self) -> Result<(), JournalError> {
        self.db
            .execute_batch(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA journal_size_limit = 16777216;",
            )
            .map_err(|e| sqlite(&self.path, e))
    }

    fn fail(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |e| sqlite(&self.path, e)
    }
}

fn sqlite(path: &Path, source: rusqlite::Error) -> JournalError {
    JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a folder others can write: they could swap the journal.
fn check_folder(dir: &Path) -> Result<(), JournalError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|source| JournalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    // A sticky /tmp is others' to write, but not to swap our files in.
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(JournalError::Unsafe {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Moves a journal SQLite cannot use (and its WAL) out of the way.
fn set_aside(path: &Path) -> Result<PathBuf, JournalError> {
    let stamp = crate::clock::unix_now() as u64;
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside).map_err(|source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh root-only folder for a test's journal (tempfile's: made
    /// exclusively, mode 0700), removed on drop.
    pub(super) fn dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("psdiff-journal-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn a_journal_made_before_a_cursors_previous_looks_keeps_its_history() {
        let dir = dir("older");
        let path = dir.path().join("journal.sqlite");
        drop(Journal::open_or_create(&path).unwrap());
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "DROP TABLE cursors;
             CREATE TABLE cursors (consumer TEXT PRIMARY KEY, settled INTEGER NOT NULL, at REAL NOT NULL);
             INSERT INTO cursors VALUES ('zabbix', 0, 1.0);",
        )
        .unwrap();
        drop(old);
        let mut reader = Journal::open_for_cursor(&path).unwrap().unwrap();
        reader.take_transients("zabbix").unwrap();
        let (at, before): (f64, Option<f64>) = reader
            .db
            .query_row(
                "SELECT at, before FROM cursors WHERE consumer = 'zabbix'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(at > 1.0);
        assert_eq!(before, Some(1.0));
        // The watcher opens it as its own, not set aside.
        drop(reader);
        Journal::open_or_create(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert!(!names.iter().any(|n| n.contains("corrupt")), "{names:?}");
    }

    #[test]
    fn a_corrupt_journal_is_set_aside_and_a_new_one_made() {
        let dir = dir("corrupt");
        let path = dir.path().join("journal.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let journal = Journal::open_or_create(&path).unwrap();
        let rows: i64 = journal
            .db
            .query_row("SELECT count(*) FROM images", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("journal.sqlite.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_folder_others_can_write_is_refused() {
        let dir = dir("unsafe");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let e = Journal::open_or_create(&open.join("journal.sqlite")).err();
        assert!(
            matches!(e, Some(JournalError::Unsafe { mode: 0o777, .. })),
            "{e:?}"
        );
    }
}
