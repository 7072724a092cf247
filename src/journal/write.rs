//! What the watcher writes: images as they start and end, losses, its
//! heartbeat; one transaction per batch, and retention by age and size.

use std::time::Duration;

use rusqlite::params;

use super::{Journal, JournalError, WatcherState};
use crate::clock::unix_now as now;

/// A process image to record.
#[derive(Debug, Clone, Default)]
pub struct NewImage<'a> {
    pub boot: &'a str,
    pub pid: u32,
    pub ppid: u32,
    pub start_ticks: u64,
    /// When this image began (unix seconds).
    pub started: f64,
    /// `fork`, `exec`, or `scan` (running when the watcher looked).
    pub origin: &'static str,
    pub uid: Option<u32>,
    pub user: Option<&'a str>,
    pub exe: Option<&'a str>,
    /// The kernel's name for it (`/proc/PID/comm`).
    pub comm: Option<&'a str>,
    pub argv: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub cgroup: Option<&'a str>,
    pub container: Option<&'a str>,
    pub line: Option<&'a str>,
    pub verdict: &'a str,
    pub rule: Option<&'a str>,
}

/// How an image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The process exited; the wait status.
    Exit { status: u32 },
    /// It ran another program (the next image is the same pid's).
    Exec,
    /// It was gone at a rescan, its exit not seen.
    Lost,
}

/// How much the journal keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for Retention {
    /// A week, or 256 MiB.
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(7 * 86_400),
            max_bytes: 256 << 20,
        }
    }
}

/// The watcher's handle on the journal.
pub struct Writer {
    journal: Journal,
    /// The next number in the order of endings.
    next_settled: i64,
}

impl Writer {
    pub fn new(journal: Journal) -> Result<Writer, JournalError> {
        let last: Option<i64> = journal
            .db
            .query_row("SELECT max(settled) FROM images", [], |r| r.get(0))
            .map_err(journal.fail())?;
        Ok(Writer {
            next_settled: last.unwrap_or(0) + 1,
            journal,
        })
    }

    /// The images of `boot` that have not ended: (row, pid, start ticks).
    pub fn open_images(&self, boot: &str) -> Result<Vec<(i64, u32, u64)>, JournalError> {
        let mut statement = self
            .journal
            .db
            .prepare_cached(
                "SELECT id, pid, start_ticks FROM images WHERE boot = ?1 AND ended IS NULL",
            )
            .map_err(self.journal.fail())?;
        let rows = statement
            .query_map([boot], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(self.journal.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.journal.fail())
    }

    /// Ends every open image of another boot: their exits were never seen.
    pub fn end_other_boots(&mut self, boot: &str) -> Result<usize, JournalError> {
        let at = now();
        let ids: Vec<i64> = {
            let mut statement = self
                .journal
                .db
                .prepare("SELECT id FROM images WHERE boot != ?1 AND ended IS NULL")
                .map_err(self.journal.fail())?;
            let rows = statement
                .query_map([boot], |r| r.get(0))
                .map_err(self.journal.fail())?;
            rows.collect::<Result<_, _>>()
                .map_err(self.journal.fail())?
        };
        let mut batch = self.batch()?;
        for &id in &ids {
            batch.end(id, at, Ending::Lost)?;
        }
        batch.commit()?;
        Ok(ids.len())
    }

    /// Starts a transaction; nothing is kept until `Batch::commit`.
    pub fn batch(&mut self) -> Result<Batch<'_>, JournalError> {
        let fail = |e| super::sqlite(&self.journal.path, e);
        // Immediate: the write lock from the start, waited for (busy
        // timeout) while a reader moves its cursor.
        let tx = self
            .journal
            .db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(fail)?;
        Ok(Batch {
            tx,
            next_settled: &mut self.next_settled,
            path: &self.journal.path,
        })
    }

    /// Drops what is older than the retention keeps, then the oldest
    /// ended images until the file fits its size; returns how many rows
    /// went.
    pub fn retain(&mut self, retention: &Retention) -> Result<u64, JournalError> {
        let fail = self.journal.fail();
        let db = &self.journal.db;
        let before = now() - retention.max_age.as_secs_f64();
        let mut dropped = db
            .execute(
                "DELETE FROM images WHERE ended IS NOT NULL AND ended < ?1",
                [before],
            )
            .map_err(&fail)? as u64;
        db.execute("DELETE FROM losses WHERE at < ?1", [before])
            .map_err(&fail)?;
        // A tenth of the ended images at a time, oldest first, down to 90%
        // of the bound so the next batches do not trim again at once.
        while self.journal.used_bytes()? > retention.max_bytes * 9 / 10 {
            let ended: i64 = db
                .query_row(
                    "SELECT count(*) FROM images WHERE ended IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(&fail)?;
            if ended == 0 {
                break;
            }
            dropped += db
                .execute(
                    "DELETE FROM images WHERE id IN (SELECT id FROM images WHERE ended IS NOT NULL ORDER BY id LIMIT ?1)",
                    [(ended / 10).max(1)],
                )
                .map_err(&fail)? as u64;
        }
        // PASSIVE: a checkpoint that waited for readers held `show` and
        // `history` past their timeout while a restarted watcher caught up.
        db.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(PASSIVE);")
            .map_err(&fail)?;
        Ok(dropped)
    }
}

impl Journal {
    /// The bytes its pages hold, free pages not counted.
    fn used_bytes(&self) -> Result<u64, JournalError> {
        let (pages, free, size): (i64, i64, i64) = self
            .db
            .query_row(
                "SELECT (SELECT page_count FROM pragma_page_count), (SELECT freelist_count FROM pragma_freelist_count), (SELECT page_size FROM pragma_page_size)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(self.fail())?;
        Ok(((pages - free).max(0) * size) as u64)
    }
}

/// One transaction of the watcher's.
pub struct Batch<'a> {
    tx: rusqlite::Transaction<'a>,
    next_settled: &'a mut i64,
    path: &'a std::path::Path,
}

impl Batch<'_> {
    fn fail(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |e| super::sqlite(self.path, e)
    }

    /// Records an image; returns its row.
    pub fn insert(&mut self, image: &NewImage) -> Result<i64, JournalError> {
        let mut statement = self
            .tx
            .prepare_cached(
                "INSERT INTO images (boot, pid, ppid, start_ticks, started, origin, uid, user, exe, comm, argv, unit, cgroup, container, line, verdict, rule)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .map_err(self.fail())?;
        statement
            .execute(params![
                image.boot,
                image.pid,
                image.ppid,
                image.start_ticks as i64,
                image.started,
                image.origin,
                image.uid,
                image.user,
                image.exe,
                image.comm,
                image.argv,
                image.unit,
                image.cgroup,
                image.container,
                image.line,
                image.verdict,
                image.rule,
            ])
            .map_err(self.fail())?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Ends image `id` at `at` (unix seconds).
    pub fn end(&mut self, id: i64, at: f64, ending: Ending) -> Result<(), JournalError> {
        let (kind, code, signal) = match ending {
            Ending::Exit { status } => {
                let signal = status & 0x7f;
                if signal == 0 {
                    ("exit", Some((status >> 8) & 0xff), None)
                } else {
                    ("exit", None, Some(signal))
                }
            }
            Ending::Exec => ("exec", None, None),
            Ending::Lost => ("lost", None, None),
        };
        let settled = *self.next_settled;
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE images SET ended = ?2, end_kind = ?3, exit_code = ?4, exit_signal = ?5, settled = ?6 WHERE id = ?1 AND ended IS NULL",
            )
            .map_err(self.fail())?
            .execute(params![id, at, kind, code, signal, settled])
            .map_err(self.fail())?;
        if changed > 0 {
            *self.next_settled += 1;
        }
        Ok(())
    }

    /// Gives image `id` the line the rules now print for it (a process
    /// that set its title, a rescan under new rules).
    pub fn relabel(
        &mut self,
        id: i64,
        line: Option<&str>,
        verdict: &str,
        rule: Option<&str>,
    ) -> Result<(), JournalError> {
        self.tx
            .prepare_cached("UPDATE images SET line = ?2, verdict = ?3, rule = ?4 WHERE id = ?1")
            .map_err(self.fail())?
            .execute(params![id, line, verdict, rule])
            .map_err(self.fail())?;
        Ok(())
    }

    /// Records `count` events of `kind` missed.
    pub fn loss(&mut self, kind: &str, count: u64) -> Result<(), JournalError> {
        self.tx
            .prepare_cached("INSERT INTO losses (at, kind, count) VALUES (?1, ?2, ?3)")
            .map_err(self.fail())?
            .execute(params![now(), kind, count as i64])
            .map_err(self.fail())?;
        Ok(())
    }

    /// Says the watcher is alive, and what it has counted.
    pub fn heartbeat(&mut self, state: &WatcherState) -> Result<(), JournalError> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO watcher (id, pid, started, alive, stopped, backend, events, lost, unread, rescans)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(self.fail())?
            .execute(params![
                state.pid,
                state.started,
                state.alive,
                state.stopped,
                state.backend,
                state.events as i64,
                state.lost as i64,
                state.unread as i64,
                state.rescans as i64,
            ])
            .map_err(self.fail())?;
        Ok(())
    }

    pub fn commit(self) -> Result<(), JournalError> {
        let path = self.path;
        self.tx.commit().map_err(|e| super::sqlite(path, e))
    }
}

/// Whether an error is another connection holding the journal longer
/// than the busy timeout (a reader moving its cursor on a loaded host):
/// the batch was not begun, and the next tick tries again.
pub fn is_busy(error: &JournalError) -> bool {
    matches!(
        sqlite_code(error),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether an error is the disk (or the journal's room) being full.
pub fn is_full(error: &JournalError) -> bool {
    sqlite_code(error) == Some(rusqlite::ErrorCode::DiskFull)
}

/// SQLite's code for an error of its own.
fn sqlite_code(error: &JournalError) -> Option<rusqlite::ErrorCode> {
    match error {
        JournalError::Sqlite {
            source: rusqlite::Error::SqliteFailure(e, _),
            ..
        } => Some(e.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(name: &str) -> (tempfile::TempDir, Writer) {
        let dir = super::super::tests::dir(name);
        let journal = Journal::open_or_create(&dir.path().join("journal.sqlite")).unwrap();
        (dir, Writer::new(journal).unwrap())
    }

    /// `count` images of a wide command line, begun `age` seconds ago
    /// and ended at once, and one still running as old.
    fn fill(writer: &mut Writer, count: usize, age: f64) {
        let argv = "x".repeat(2000);
        let mut batch = writer.batch().unwrap();
        for pid in 0..count as u32 {
            let image = NewImage {
                boot: "b",
                pid: pid + 100,
                started: now() - age,
                origin: "fork",
                argv: Some(&argv),
                verdict: "extra",
                ..NewImage::default()
            };
            let id = batch.insert(&image).unwrap();
            batch.end(id, now() - age, Ending::Exec).unwrap();
        }
        let running = NewImage {
            boot: "b",
            pid: 1,
            started: now() - age,
            origin: "scan",
            verdict: "baseline",
            ..NewImage::default()
        };
        batch.insert(&running).unwrap();
        batch.commit().unwrap();
    }

    fn images(writer: &Writer) -> (i64, i64) {
        writer
            .journal
            .db
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE ended IS NULL) FROM images",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    #[test]
    fn retention_drops_what_ended_before_its_age_and_keeps_what_runs() {
        let (_dir, mut writer) = writer("age");
        fill(&mut writer, 50, 8.0 * 86_400.0);
        fill(&mut writer, 20, 60.0);
        let dropped = writer.retain(&Retention::default()).unwrap();
        assert_eq!(dropped, 50);
        // The 20 recent ones and both running images stay.
        assert_eq!(images(&writer), (22, 2));
    }

    #[test]
    fn retention_trims_the_oldest_ended_images_to_the_size_bound() {
        let (_dir, mut writer) = writer("size");
        // About 2,000 images of 2 kB: some 4 MiB, held to 1 MiB.
        fill(&mut writer, 2000, 60.0);
        let bound = 1 << 20;
        let dropped = writer
            .retain(&Retention {
                max_bytes: bound,
                ..Retention::default()
            })
            .unwrap();
        let (left, running) = images(&writer);
        assert!(dropped > 1000, "dropped {dropped}");
        assert_eq!(running, 1, "a running image is never dropped");
        assert_eq!(left as u64 + dropped, 2001);
        let used = writer.journal.used_bytes().unwrap();
        assert!(used <= bound, "{used} bytes in use");
        // And the oldest went first: what is left is the newest.
        let lowest: i64 = writer
            .journal
            .db
            .query_row(
                "SELECT min(pid) FROM images WHERE ended IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(lowest > 100 + 1000, "lowest pid left {lowest}");
    }

    #[test]
    fn a_reader_opens_read_only_beside_the_writer() {
        let (dir, mut writer) = writer("reader");
        fill(&mut writer, 3, 1.0);
        let path = dir.path().join("journal.sqlite");
        let reader = Journal::open_to_read(&path).unwrap().unwrap();
        fill(&mut writer, 2, 1.0);
        let seen: i64 = reader
            .db
            .query_row("SELECT count(*) FROM images", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 7);
        let refused = reader.db.execute("DELETE FROM images", []);
        assert!(refused.is_err(), "a reader cannot write");
        assert!(
            Journal::open_to_read(&dir.path().join("none.sqlite"))
                .unwrap()
                .is_none()
        );
    }

    /// `check`'s count and `history`'s timeline say the same restarts: a
    /// start 5 s after the exit is one (RestartSec=5s), one 5 min after
    /// is a start of its own, and a daemon's fork into the background as
    /// the one started exits (20 → 21) none; a start the kernel dates 50
    /// ms before the exit the watcher read (30 → 31) is one, and a start
    /// never counts as the restart of a later one (40 → 41, not back).
    #[test]
    fn check_and_history_agree_on_what_a_restart_is() {
        let (_dir, mut writer) = writer("restarts");
        let t0 = now() - 1000.0;
        let mut batch = writer.batch().unwrap();
        for (pid, ppid, origin, started, ended) in [
            (10, 1, "exec", t0, Some(t0 + 100.0)),
            (11, 1, "exec", t0 + 105.0, Some(t0 + 200.0)),
            (30, 1, "exec", t0 + 300.0, Some(t0 + 350.10)),
            (31, 1, "exec", t0 + 350.05, Some(t0 + 360.0)),
            (12, 1, "exec", t0 + 500.0, Some(t0 + 600.0)),
            (40, 1, "exec", t0 + 700.0, Some(t0 + 700.001)),
            (41, 1, "exec", t0 + 700.5, Some(t0 + 700.6)),
            (20, 1, "exec", t0 + 900.0, Some(t0 + 900.02)),
            (21, 20, "fork", t0 + 900.01, None),
        ] {
            let image = NewImage {
                boot: "b",
                pid,
                ppid,
                started,
                origin,
                uid: Some(0),
                user: Some("root"),
                exe: Some("/usr/sbin/food"),
                argv: Some("food -f"),
                unit: Some("food.service"),
                verdict: "baseline",
                ..NewImage::default()
            };
            let id = batch.insert(&image).unwrap();
            if let Some(at) = ended {
                batch.end(id, at, Ending::Exit { status: 9 }).unwrap();
            }
        }
        batch.commit().unwrap();
        let journal = &writer.journal;
        let counted = journal
            .restarts("/usr/sbin/food", "food -f", Some("food.service"), 0, t0)
            .unwrap();
        assert_eq!(counted, 3);
        let rows = journal
            .history(&super::super::Filter {
                since: t0 - 1.0,
                until: now(),
                unit: None,
                user: None,
            })
            .unwrap();
        let restarts: Vec<u32> = super::super::timeline::events(&rows, t0 - 1.0, now())
            .iter()
            .filter(|e| e.kind == super::super::timeline::Kind::Restart)
            .map(|e| e.image.pid)
            .collect();
        assert_eq!(restarts, [11, 31, 41]);
    }
}
