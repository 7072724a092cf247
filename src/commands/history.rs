//! `psdiff history`: the timeline the watcher journaled.

use super::print;
use crate::app::Error;
use crate::app::context::Context;
use crate::app::history::{History, Request};
use crate::cli::{DiffFormat, HistoryArgs};
use crate::exit::Exit;
use crate::journal::HistoryRow;
use crate::journal::timeline::{self, Event, Kind};

pub fn run(context: &Context, args: &HistoryArgs) -> Result<Exit, Error> {
    let request = Request {
        since: args.since.clone(),
        until: args.until.clone(),
        unit: args.unit.clone(),
        user: args.user.clone(),
        matching: args.matching.clone(),
        all: args.all,
    };
    let history = History::read(context, &request, |name| format!("--{name}"))?;
    match &history.watcher {
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
    if !history.losses.is_empty() {
        let said: Vec<String> = history
            .losses
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        eprintln!(
            "psdiff: the watcher lost events in this span ({}); what it lost is not in this timeline",
            said.join(", ")
        );
    }
    match args.format {
        DiffFormat::Text => print(&text(&history.events())),
        DiffFormat::Json => print(&format!("{}\n", history.json(None))),
    }?;
    Ok(Exit::Clean)
}

fn stamp(unix: f64) -> String {
    crate::clock::format_unix(unix)
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
