//! What the readers ask of the journal: transient extras per consumer,
//! the timeline for `history`, and whether the watcher is alive.

use rusqlite::{OptionalExtension, params};

use super::{Journal, JournalError};
use crate::clock::unix_now as now;

/// How far back a consumer's first look reaches.
pub const FIRST_LOOK_SECONDS: f64 = 600.0;

/// An image that ran another program within this long is a launcher
/// (`sh -c 'exec ...'`, setpriv, env): what it ran is reported, not it
/// apart. Only when that program is extra itself, though: see
/// `QUICK_LAUNCHER_SECONDS`.
pub const LAUNCHER_SECONDS: f64 = 1.0;

/// A launcher whose program the rules hide, or the baseline holds, is no
/// news only when it ran this briefly, as a launcher does (`setpriv`, a
/// unit's `nice`): what works for most of a second and then execs what a
/// rule hides or a daemon's title, as a miner hiding its runs would, is
/// reported as itself.
pub const QUICK_LAUNCHER_SECONDS: f64 = 0.1;

/// A watcher older than this without a heartbeat is not running.
pub const HEARTBEAT_STALE_SECONDS: f64 = 10.0;

/// The watcher as its heartbeat last said.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WatcherState {
    pub pid: u32,
    pub started: f64,
    pub alive: f64,
    /// When it stopped cleanly (SIGTERM, `--for`); `None` while it runs.
    pub stopped: Option<f64>,
    pub backend: String,
    pub events: u64,
    pub lost: u64,
    pub unread: u64,
    pub rescans: u64,
}

impl WatcherState {
    /// Whether it has not said it stopped and its last heartbeat is
    /// recent (one killed says nothing; its heartbeat goes stale).
    pub fn running(&self) -> bool {
        self.stopped.is_none() && now() - self.alive < HEARTBEAT_STALE_SECONDS
    }
}

/// A program the watcher saw start, as a storm check matches it.
#[derive(Debug, Clone)]
pub struct Started {
    pub pid: u32,
    pub ppid: u32,
    pub start_ticks: u64,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub exe: Option<String>,
    pub comm: Option<String>,
    /// The arguments joined by spaces, as `render::cmdline` joins them;
    /// `None` when it was gone before it could be read.
    pub argv: Option<String>,
    pub cgroup: Option<String>,
}

/// One image as `history` and the API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub pid: u32,
    pub ppid: u32,
    pub started: f64,
    pub origin: String,
    pub user: Option<String>,
    pub exe: Option<String>,
    pub argv: Option<String>,
    pub unit: Option<String>,
    pub container: Option<String>,
    pub line: Option<String>,
    pub verdict: String,
    pub rule: Option<String>,
    pub ended: Option<f64>,
    pub end_kind: Option<String>,
    pub exit_code: Option<u32>,
    pub exit_signal: Option<u32>,
    /// Its place in the order of endings, for followers (`Mark`).
    #[serde(skip)]
    pub settled: Option<i64>,
}

/// How far a live follower (`GET /api/events`) has read: the last image
/// begun and the last ending it passed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    pub image: i64,
    pub settled: i64,
}

impl HistoryRow {
    /// How it ended, as a person says it: `exit 0`, `signal 9`, `exec`.
    pub fn ending(&self) -> Option<String> {
        Some(
            match (self.end_kind.as_deref()?, self.exit_code, self.exit_signal) {
                ("exit", _, Some(signal)) => format!("signal {signal}"),
                ("exit", Some(code), _) => format!("exit {code}"),
                ("exec", ..) => "exec".to_string(),
                (kind, ..) => kind.to_string(),
            },
        )
    }

    /// Its lifetime in seconds, once ended.
    pub fn lifetime(&self) -> Option<f64> {
        Some(self.ended? - self.started)
    }

    /// The cmdline of its line (without depth and user), else its argv.
    pub fn cmdline(&self) -> &str {
        self.line
            .as_deref()
            .and_then(crate::render::parse_line)
            .map(|p| p.cmdline)
            .or(self.argv.as_deref())
            .unwrap_or("?")
    }
}

/// A transient extra: an image the rules showed, not in the baseline,
/// that started and ended between two looks of a consumer.
pub type Transient = HistoryRow;

/// Which images `history` wants: those alive at some time in
/// [since, until], of a unit or user.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: f64,
    pub until: f64,
    pub unit: Option<String>,
    pub user: Option<String>,
}

const COLUMNS: &str = "id, pid, ppid, started, origin, user, exe, argv, unit, container, line, verdict, rule, ended, end_kind, exit_code, exit_signal, settled";

fn row(r: &rusqlite::Row) -> rusqlite::Result<HistoryRow> {
    Ok(HistoryRow {
        id: r.get(0)?,
        pid: r.get(1)?,
        ppid: r.get(2)?,
        started: r.get(3)?,
        origin: r.get(4)?,
        user: r.get(5)?,
        exe: r.get(6)?,
        argv: r.get(7)?,
        unit: r.get(8)?,
        container: r.get(9)?,
        line: r.get(10)?,
        verdict: r.get(11)?,
        rule: r.get(12)?,
        ended: r.get(13)?,
        end_kind: r.get(14)?,
        exit_code: r.get(15)?,
        exit_signal: r.get(16)?,
        settled: r.get(17)?,
    })
}

impl Journal {
    /// The watcher's last heartbeat; `None` if no watcher ever wrote one.
    pub fn watcher(&self) -> Result<Option<WatcherState>, JournalError> {
        self.db
            .query_row(
                "SELECT pid, started, alive, stopped, backend, events, lost, unread, rescans FROM watcher WHERE id = 1",
                [],
                |r| {
                    Ok(WatcherState {
                        pid: r.get(0)?,
                        started: r.get(1)?,
                        alive: r.get(2)?,
                        stopped: r.get(3)?,
                        backend: r.get(4)?,
                        events: r.get::<_, i64>(5)? as u64,
                        lost: r.get::<_, i64>(6)? as u64,
                        unread: r.get::<_, i64>(7)? as u64,
                        rescans: r.get::<_, i64>(8)? as u64,
                    })
                },
            )
            .optional()
            .map_err(self.fail())
    }

    /// The extras that ended since `consumer`'s previous look and were
    /// not running at it (that look reported those itself), and moves its
    /// cursor past them: each consumer sees each once. An image that ended
    /// before the previous look but was journaled after it is this look's,
    /// unless it ran at the look before that one.
    /// A consumer's first look reaches back `FIRST_LOOK_SECONDS`.
    /// Also returns when that previous look was (or how far back the first
    /// reaches), so the caller can say what was lost since.
    pub fn take_transients(
        &mut self,
        consumer: &str,
    ) -> Result<(Vec<Transient>, f64), JournalError> {
        let path = self.path.clone();
        let fail = |e| super::sqlite(&path, e);
        let at = now();
        // Immediate: a read that later writes would fail at once (not
        // wait) when the watcher committed in between.
        let tx = self
            .db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(fail)?;
        let cursor: Option<(i64, f64, Option<f64>)> = tx
            .query_row(
                "SELECT settled, at, before FROM cursors WHERE consumer = ?1",
                [consumer],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(fail)?;
        // How far back an image's end may lie: the first look's reach, or
        // a little before the previous look (journaled late). An image
        // journaled late may have run at the look before the previous one
        // too (a daemon's child ending as it restarts): that look saw it.
        let (from, previous, before, floor) = match cursor {
            Some((from, previous, before)) => (
                from,
                previous,
                before.unwrap_or(previous),
                previous - FIRST_LOOK_SECONDS,
            ),
            None => {
                let reach = at - FIRST_LOOK_SECONDS;
                (0, reach, reach, reach)
            }
        };
        let transients: Vec<Transient> = {
            let mut statement = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM images
                     WHERE settled > ?1 AND ended >= ?3 AND verdict = 'extra'
                       AND NOT (started < ?2 AND ended > ?2)
                       AND NOT (started < ?5 AND ended > ?5)
                       AND NOT (end_kind = 'exec' AND ended - started < ?4
                                AND (ended - started < ?6
                                     -- (the watcher starts the next image at
                                     -- the instant it ends the one before)
                                     OR EXISTS (SELECT 1 FROM images next
                                                WHERE next.pid = images.pid
                                                  AND next.boot = images.boot
                                                  AND next.started = images.ended
                                                  AND next.verdict = 'extra')))
                     ORDER BY settled"
                ))
                .map_err(fail)?;
            let rows = statement
                .query_map(
                    params![
                        from,
                        previous,
                        floor,
                        LAUNCHER_SECONDS,
                        before,
                        QUICK_LAUNCHER_SECONDS
                    ],
                    row,
                )
                .map_err(fail)?;
            rows.collect::<Result<_, _>>().map_err(fail)?
        };
        let last: Option<i64> = tx
            .query_row("SELECT max(settled) FROM images", [], |r| r.get(0))
            .map_err(fail)?;
        tx.execute(
            "INSERT OR REPLACE INTO cursors (consumer, settled, at, before) VALUES (?1, ?2, ?3, ?4)",
            params![
                consumer,
                last.unwrap_or(from).max(from),
                at,
                cursor.map(|(_, previous, _)| previous)
            ],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok((transients, previous))
    }

    /// The images alive at some time in the filter's span, oldest first.
    pub fn history(&self, filter: &Filter) -> Result<Vec<HistoryRow>, JournalError> {
        let mut statement = self
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM images
                 WHERE started <= ?2 AND (ended IS NULL OR ended >= ?1)
                   AND (?3 IS NULL OR unit = ?3) AND (?4 IS NULL OR user = ?4)
                 ORDER BY started, id"
            ))
            .map_err(self.fail())?;
        let rows = statement
            .query_map(
                params![filter.since, filter.until, filter.unit, filter.user],
                row,
            )
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// How many images of this program, title, unit and user exited (or
    /// were lost) since `since` with a start of the same after them, within
    /// [`RESTART_WINDOW_SECONDS`](super::RESTART_WINDOW_SECONDS) (or up to
    /// [`OUT_OF_ORDER_SECONDS`](super::OUT_OF_ORDER_SECONDS) before, but
    /// not before the exited one itself began). A fork
    /// of the one that exited is no restart: it is the daemon going on as
    /// its own child (`rsyslogd`, `nginx` and every daemon that forks
    /// into the background at its start).
    pub fn restarts(
        &self,
        exe: &str,
        argv: &str,
        unit: Option<&str>,
        uid: u32,
        since: f64,
    ) -> Result<u64, JournalError> {
        self.db
            .prepare_cached(
                "SELECT count(*) FROM images e
                 WHERE e.exe = ?1 AND e.argv = ?2 AND e.unit IS ?3 AND e.uid = ?4
                   AND e.end_kind IN ('exit', 'lost') AND e.ended >= ?5
                   AND EXISTS (SELECT 1 FROM images s
                               WHERE s.exe = ?1 AND s.argv = ?2 AND s.unit IS ?3 AND s.uid = ?4
                                 AND s.started > e.started AND s.started >= e.ended - ?7
                                 AND s.started <= e.ended + ?6
                                 AND NOT (s.origin = 'fork' AND s.boot = e.boot
                                          AND s.ppid = e.pid))",
            )
            .map_err(self.fail())?
            .query_row(
                params![
                    exe,
                    argv,
                    unit,
                    uid,
                    since,
                    super::RESTART_WINDOW_SECONDS,
                    super::OUT_OF_ORDER_SECONDS
                ],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.fail())
    }

    /// Every program started since `since`, once each: exec images, and
    /// forks that never ran another program (a fork that exec'd is that
    /// program); not those gone before they could be read (the losses
    /// say how many). For storm checks.
    pub fn started_since(&self, since: f64) -> Result<Vec<Started>, JournalError> {
        let mut statement = self
            .db
            .prepare_cached(
                "SELECT pid, ppid, start_ticks, uid, user, exe, comm, argv, cgroup FROM images
                 WHERE started >= ?1 AND origin IN ('exec', 'fork') AND verdict != 'unread'
                   AND NOT (origin = 'fork' AND end_kind IS 'exec')
                 ORDER BY started",
            )
            .map_err(self.fail())?;
        let rows = statement
            .query_map(params![since], |r| {
                Ok(Started {
                    pid: r.get(0)?,
                    ppid: r.get(1)?,
                    start_ticks: r.get::<_, i64>(2)? as u64,
                    uid: r.get(3)?,
                    user: r.get(4)?,
                    exe: r.get(5)?,
                    comm: r.get(6)?,
                    argv: r.get(7)?,
                    cgroup: r.get(8)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// Where the journal stands now: what a new follower need not be told.
    pub fn mark(&self) -> Result<Mark, JournalError> {
        self.db
            .query_row(
                "SELECT coalesce(max(id), 0), coalesce(max(settled), 0) FROM images",
                [],
                |r| {
                    Ok(Mark {
                        image: r.get(0)?,
                        settled: r.get(1)?,
                    })
                },
            )
            .map_err(self.fail())
    }

    /// The images begun after `mark` and those ended after it, at most
    /// `limit` of each (the oldest: the rest are the next call's), and
    /// the mark past them.
    pub fn changes(
        &self,
        mark: Mark,
        limit: usize,
    ) -> Result<(Vec<HistoryRow>, Mark), JournalError> {
        let read = |condition: &str, after: i64| -> Result<Vec<HistoryRow>, JournalError> {
            let mut statement = self
                .db
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM images WHERE {condition} > ?1 ORDER BY {condition} LIMIT ?2"
                ))
                .map_err(self.fail())?;
            statement
                .query_map(params![after, limit as i64], row)
                .map_err(self.fail())?
                .collect::<Result<_, _>>()
                .map_err(self.fail())
        };
        let begun = read("id", mark.image)?;
        let ended = read("settled", mark.settled)?;
        let next = Mark {
            image: begun.last().map_or(mark.image, |r| r.id),
            settled: ended.last().and_then(|r| r.settled).unwrap_or(mark.settled),
        };
        let seen: std::collections::HashSet<i64> = begun.iter().map(|r| r.id).collect();
        let mut rows = begun;
        rows.extend(ended.into_iter().filter(|r| !seen.contains(&r.id)));
        Ok((rows, next))
    }

    /// The image that was `row`'s parent when it started: the parent pid's
    /// last image begun by then and not ended before.
    pub fn parent_of(&self, row: &HistoryRow) -> Result<Option<HistoryRow>, JournalError> {
        let mut statement = self
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM images
                 WHERE pid = ?1 AND started <= ?2 AND (ended IS NULL OR ended >= ?2)
                 ORDER BY started DESC LIMIT 1"
            ))
            .map_err(self.fail())?;
        statement
            .query_row(params![row.ppid, row.started], self::row)
            .optional()
            .map_err(self.fail())
    }

    /// The events lost in [since, until], by kind.
    pub fn losses(&self, since: f64, until: f64) -> Result<Vec<(String, u64)>, JournalError> {
        let mut statement = self
            .db
            .prepare_cached(
                "SELECT kind, sum(count) FROM losses WHERE at >= ?1 AND at <= ?2 GROUP BY kind ORDER BY kind",
            )
            .map_err(self.fail())?;
        let rows = statement
            .query_map(params![since, until], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}
