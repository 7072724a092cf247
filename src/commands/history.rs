//! `psdiff history`: the timeline the watcher journaled.

use std::time::{Duration, UNIX_EPOCH};

use super::print;
use crate::app::Error;
use crate::app::context::Context;
use crate::cli::{DiffFormat, HistoryArgs};
use crate::exit::Exit;
use crate::journal::timeline::{self, Event, Kind};
use crate::journal::{Filter, HistoryRow, Journal};

pub fn run(context: &Context, args: &HistoryArgs) -> Result<Exit, Error> {
    let now = crate::journal::now();
    let since = when(&args.since, now, "--since")?;
    let until = match &args.until {
        Some(u) => when(u, now, "--until")?,
        None => now,
    };
    let matching = args
        .matching
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| Error::Usage(format!("--match: {e}")))?;
    let Some(journal) = Journal::open_existing(&context.journal)? else {
        return Err(Error::Usage(format!(
            "no journal at {}: start the watcher (`systemctl enable --now psdiff-watch`, or `psdiff watch`) to record processes",
            context.journal.display()
        )));
    };
    let mut rows = journal.history(&Filter {
        since,
        until,
        unit: args.unit.clone(),
        user: args.user.clone(),
    })?;
    rows.retain(|r| {
        (args.all || r.verdict != "hidden")
            && matching
                .as_ref()
                .is_none_or(|m| m.is_match(r.line.as_deref().or(r.argv.as_deref()).unwrap_or("")))
    });
    let events = timeline::events(&rows, since, until);
    let losses = journal.losses(since, until)?;
    let watcher = journal.watcher()?;
    match &watcher {
        Some(w) if w.running() => {}
        Some(w) => eprintln!(
            "psdiff: the watcher is not running (last heard of at {}); nothing after that was recorded",
            stamp(w.alive)
        ),
        None => eprintln!(
            "psdiff: no watcher has written to {}",
            context.journal.display()
        ),
    }
    if !losses.is_empty() {
        let said: Vec<String> = losses.iter().map(|(k, n)| format!("{n} {k}")).collect();
        eprintln!(
            "psdiff: the watcher lost events in this span ({}); what it lost is not in this timeline",
            said.join(", ")
        );
    }
    match args.format {
        DiffFormat::Text => print(&text(&events)),
        DiffFormat::Json => {
            let value = serde_json::json!({
                "since": since,
                "until": until,
                "events": events,
                "losses": losses.iter().map(|(k, n)| (k.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
                "watcher": watcher,
            });
            print(&format!("{value}\n"))
        }
    }?;
    Ok(Exit::Clean)
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

fn stamp(unix: f64) -> String {
    crate::clock::format(UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0)))
}

/// One line per event: `TIME EVENT PID WHAT [UNIT] DETAIL`.
fn text(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        let image = event.image;
        let what = describe(image);
        let unit = image
            .unit
            .as_deref()
            .map_or(String::new(), |u| format!("  [{u}]"));
        let lived = image.lifetime().map(timeline::human).unwrap_or_default();
        let detail = match event.kind {
            Kind::Start | Kind::Found | Kind::Restart => {
                let verdict = match (image.verdict.as_str(), &image.rule) {
                    ("hidden", Some(rule)) => format!("hidden by {rule}"),
                    ("shown", _) => "shown (no baseline)".to_string(),
                    ("unread", _) => "gone before it could be read".to_string(),
                    (verdict, _) => verdict.to_string(),
                };
                match (event.kind, event.restart_of) {
                    (Kind::Restart, Some(pid)) => {
                        format!("started again after pid {pid}; {verdict}")
                    }
                    (Kind::Found, _) => format!("running when the watcher started; {verdict}"),
                    _ => verdict,
                }
            }
            Kind::Exit => format!(
                "{} after {lived}",
                image.ending().unwrap_or_else(|| "exited".to_string())
            ),
            Kind::Exec => format!("ran another program after {lived}"),
            Kind::Lost => format!("gone, its exit not seen, after {lived}"),
        };
        let kind = serde_json::to_value(event.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  {kind:<7} {:>7}  {what}{unit}  {detail}\n",
            stamp(event.time),
            image.pid,
        ));
    }
    out
}

/// The image's line without its indent, else its argv and user.
fn describe(image: &HistoryRow) -> String {
    match &image.line {
        Some(line) => line.trim_start().to_string(),
        None => format!(
            "{}  {{user={}}}",
            image.argv.as_deref().unwrap_or("?"),
            image.user.as_deref().unwrap_or("?")
        ),
    }
}
