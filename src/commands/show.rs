//! `psdiff show`, `show-missing`, `show-extra`: what differs from the
//! baseline, looked at again before it is called an alarm.

use std::time::Duration;

use super::{Context, print};
use crate::baseline;
use crate::cli::{ShowFormat, ShowOptions};
use crate::error::{Error, Exit};
use crate::report::{self, Change, Wanted};

/// The pauses of `--retry`, as the Python psdiff: at most 2 s in all.
pub const RETRY_SLEEPS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(600),
    Duration::from_millis(1000),
];

pub fn run(context: &Context, wanted: Wanted, options: &ShowOptions) -> Result<Exit, Error> {
    let found = find_changes(context, wanted, options.retry);
    match options.format {
        ShowFormat::Nagios => {
            // Nagios wants a status line and UNKNOWN for any error.
            let (text, state) = match &found {
                Ok(changes) => report::nagios(changes, wanted),
                Err(e) => (
                    report::nagios_unknown(e),
                    crate::error::NagiosState::Unknown,
                ),
            };
            print(&text)?;
            Ok(Exit::Nagios(state))
        }
        ShowFormat::Text => {
            let changes = found?;
            print(&report::text(&changes))?;
            Ok(if changes.is_empty() {
                Exit::Clean
            } else {
                Exit::Report
            })
        }
        ShowFormat::Json => {
            let changes = found?;
            print(&report::json(&changes))?;
            Ok(if changes.is_empty() {
                Exit::Clean
            } else {
                Exit::Report
            })
        }
    }
}

/// Snapshots until the wanted kinds of change are gone or the retries are
/// used up; no pause at all when the first snapshot matches.
fn find_changes(context: &Context, wanted: Wanted, retry: bool) -> Result<Vec<Change>, Error> {
    let rules = context.rules()?;
    let baseline = baseline::read(&context.db)?;
    if baseline.is_none() {
        eprintln!(
            "psdiff: no baseline at {}; run `psdiff write` to store the current processes as the baseline",
            context.db.display()
        );
    }
    let old = baseline.as_ref().map_or("", |b| b.text.as_str());
    let mut sleeps = RETRY_SLEEPS.iter().filter(|_| retry && baseline.is_some());
    loop {
        let view = context.view(&rules)?;
        let changes = report::changes(old, &view.text(), wanted);
        match sleeps.next() {
            Some(pause) if !changes.is_empty() => std::thread::sleep(*pause),
            _ => return Ok(changes),
        }
    }
}
