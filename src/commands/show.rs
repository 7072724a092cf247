//! `psdiff show`, `show-missing`, `show-extra`: what differs from the
//! baseline, looked at again before it is called an alarm.

use std::time::Duration;

use super::{Context, print};
use crate::baseline;
use crate::cli::{ShowFormat, ShowOptions};
use crate::error::{Error, Exit, NagiosState};
use crate::report::{self, Wanted};

/// The pauses of `--retry`, as the Python psdiff: at most 2 s in all.
pub const RETRY_SLEEPS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(600),
    Duration::from_millis(1000),
];

pub fn run(context: &Context, wanted: Wanted, options: &ShowOptions) -> Result<Exit, Error> {
    let texts = settled_texts(context, wanted, options.retry);
    if options.format == ShowFormat::Nagios {
        // Nagios wants a status line, and UNKNOWN for any error.
        let (text, state) = match &texts {
            Ok((old, new)) => report::nagios(&report::changes(old, new, wanted), wanted),
            Err(e) => (report::nagios_unknown(e), NagiosState::Unknown),
        };
        print(&text)?;
        return Ok(Exit::Nagios(state));
    }
    let (old, new) = texts?;
    let changes = report::changes(&old, &new, wanted);
    print(&match options.format {
        ShowFormat::Json => report::json(&changes),
        _ => report::text(&changes),
    })?;
    Ok(if changes.is_empty() {
        Exit::Clean
    } else {
        Exit::Report
    })
}

/// The baseline text and the dump text to compare: snapshots until the
/// wanted kinds of change are gone or the retries are used up; no pause at
/// all when the first snapshot matches.
fn settled_texts(
    context: &Context,
    wanted: Wanted,
    retry: bool,
) -> Result<(String, String), Error> {
    let rules = context.rules()?;
    let baseline = baseline::read(&context.db)?;
    if baseline.is_none() {
        eprintln!(
            "psdiff: no baseline at {}; run `psdiff write` to store the current processes as the baseline",
            context.db.display()
        );
    }
    let retry = retry && baseline.is_some();
    let old = baseline.map_or(String::new(), |b| b.text);
    let mut sleeps = RETRY_SLEEPS.iter().filter(|_| retry);
    loop {
        let new = context.view(&rules)?.text();
        let settled = report::changes(&old, &new, wanted).is_empty();
        match sleeps.next() {
            Some(pause) if !settled => std::thread::sleep(*pause),
            _ => return Ok((old, new)),
        }
    }
}
