//! The watcher's timeline as `psdiff history` and `GET /api/history` ask
//! for it: one reading of the filters, one query, one JSON shape.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};

use super::Error;
use super::context::Context;
use crate::journal::timeline::{self, Event};
use crate::journal::{Filter, HistoryRow, Journal, WatcherState};

/// The filters, as given (`--since 1h`, `?since=1h`).
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub since: String,
    pub until: Option<String>,
    pub unit: Option<String>,
    pub user: Option<String>,
    pub matching: Option<String>,
    /// Also the images the rules hide.
    pub all: bool,
}

impl Request {
    /// Which images it is about, for filtering rows one by one (the live
    /// feed of `GET /api/events`).
    pub fn scope(&self, option: &impl Fn(&str) -> String) -> Result<Scope, Error> {
        let matching = self
            .matching
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| Error::Usage(format!("{}: {e}", option("match"))))?;
        Ok(Scope {
            unit: self.unit.clone(),
            user: self.user.clone(),
            matching,
            all: self.all,
        })
    }
}

/// A request's filters but for time: by unit, user, line, and whether
/// the images the rules hide are wanted.
pub struct Scope {
    unit: Option<String>,
    user: Option<String>,
    matching: Option<regex::Regex>,
    all: bool,
}

impl Scope {
    pub fn admits(&self, row: &HistoryRow) -> bool {
        (self.all || row.verdict != "hidden")
            && self
                .unit
                .as_ref()
                .is_none_or(|u| row.unit.as_ref() == Some(u))
            && self
                .user
                .as_ref()
                .is_none_or(|u| row.user.as_ref() == Some(u))
            && self.matching.as_ref().is_none_or(|m| {
                m.is_match(row.line.as_deref().or(row.argv.as_deref()).unwrap_or(""))
            })
    }
}

/// What the journal holds for a request.
pub struct History {
    pub since: f64,
    pub until: f64,
    rows: Vec<HistoryRow>,
    pub losses: Vec<(String, u64)>,
    pub watcher: Option<WatcherState>,
}

impl History {
    /// Reads the journal. `Error::Usage` names the filter that is wrong
    /// (`option` spells it as the caller's user knows it: `--since`,
    /// `since`), or says that no watcher ever wrote the journal.
    pub fn read(
        context: &Context,
        request: &Request,
        option: impl Fn(&str) -> String,
    ) -> Result<History, Error> {
        let now = crate::clock::unix_now();
        let since = when(&request.since, now, &option("since"))?;
        let until = match &request.until {
            Some(u) => when(u, now, &option("until"))?,
            None => now,
        };
        let scope = request.scope(&option)?;
        let Some(journal) = Journal::open_to_read(&context.journal)? else {
            return Err(Error::Usage(format!(
                "no journal at {}: start the watcher (`systemctl enable --now psdiff-watch`, or `psdiff watch`) to record processes",
                context.journal.display()
            )));
        };
        let mut rows = journal.history(&Filter {
            since,
            until,
            unit: request.unit.clone(),
            user: request.user.clone(),
        })?;
        rows.retain(|r| scope.admits(r));
        Ok(History {
            since,
            until,
            rows,
            losses: journal.losses(since, until)?,
            watcher: journal.watcher()?,
        })
    }

    /// Starts, exits and restarts in time order.
    pub fn events(&self) -> Vec<Event<'_>> {
        timeline::events(&self.rows, self.since, self.until)
    }

    /// `{since, until, events, losses, watcher}`, the newest `limit`
    /// events at most (`truncated` says when more matched).
    pub fn json(&self, limit: Option<usize>) -> Value {
        let mut events = self.events();
        let truncated = limit.is_some_and(|l| events.len() > l);
        if let Some(limit) = limit {
            let drop = events.len().saturating_sub(limit);
            events.drain(..drop);
        }
        let losses: BTreeMap<&str, u64> =
            self.losses.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let mut value = json!({
            "since": self.since,
            "until": self.until,
            "events": events,
            "losses": losses,
            "watcher": self.watcher,
        });
        if truncated {
            value["truncated"] = json!(true);
        }
        value
    }
}

/// `1h` ago, or a time as RFC 3339 (`2026-12-02T08:00:00Z`,
/// `2026-12-02 08:00:00`, UTC), in unix seconds.
fn when(text: &str, now: f64, option: &str) -> Result<f64, Error> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now - ago.as_secs_f64());
    }
    humantime::parse_rfc3339_weak(text)
        .map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64())
        .map_err(|_| {
            Error::Usage(format!(
                "{option} {text:?}: give a span back from now (30m, 1h, 2d) or a UTC time (2026-12-02T08:00:00Z)"
            ))
        })
}
