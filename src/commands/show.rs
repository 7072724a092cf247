//! `psdiff show`, `show-missing`, `show-extra`: what differs from the
//! baseline, looked at again before it is called an alarm.

use std::time::Duration;

use super::{Context, emit};
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
    let settled = settled_texts(context, wanted, options.retry);
    if settled.as_ref().is_ok_and(|s| !s.baseline) {
        eprintln!(
            "psdiff: no baseline at {}; run `psdiff write` to store the current processes as the baseline",
            context.db.display()
        );
    }
    let output = options.output.as_deref();
    let exit_for = |changes: &[report::Change]| {
        if changes.is_empty() {
            Exit::Clean
        } else {
            Exit::Report
        }
    };
    let (text, exit) = match (options.format, &settled) {
        // Nagios wants a status line, and UNKNOWN for any error.
        (ShowFormat::Nagios, Err(e)) => (
            report::nagios_unknown(e),
            Exit::Nagios(NagiosState::Unknown),
        ),
        (ShowFormat::Nagios, Ok(s)) => {
            let (text, state) = report::nagios(&report::changes(&s.old, &s.new, wanted), wanted);
            (text, Exit::Nagios(state))
        }
        // A scraper must not keep serving the last good numbers.
        (ShowFormat::Prometheus, Err(_)) => {
            emit(output, &report::prometheus_down("psdiff"))?;
            return settled.map(|_| Exit::Runtime);
        }
        (ShowFormat::Prometheus, Ok(s)) => {
            let changes = report::changes(&s.old, &s.new, wanted);
            (
                report::prometheus(&changes, wanted, s.baseline),
                exit_for(&changes),
            )
        }
        (_, Err(_)) => return settled.map(|_| Exit::Runtime),
        (format, Ok(s)) => {
            let changes = report::changes(&s.old, &s.new, wanted);
            let text = match format {
                ShowFormat::Json => report::json(&changes),
                _ => report::text(&changes),
            };
            (text, exit_for(&changes))
        }
    };
    emit(output, &text)?;
    Ok(exit)
}

/// What to compare: the baseline's text (empty without one) and a dump.
pub struct Settled {
    /// Whether there is a baseline.
    pub baseline: bool,
    pub old: String,
    pub new: String,
}

/// The baseline text and the dump text to compare: snapshots until the
/// wanted kinds of change are gone or the retries are used up; no pause at
/// all when the first snapshot matches.
pub fn settled_texts(context: &Context, wanted: Wanted, retry: bool) -> Result<Settled, Error> {
    let rules = context.rules()?;
    let baseline = baseline::read(&context.db)?;
    let present = baseline.is_some();
    let retry = retry && present;
    let old = baseline.map_or(String::new(), |b| b.text);
    let mut sleeps = RETRY_SLEEPS.iter().filter(|_| retry);
    loop {
        let new = context.view(&rules)?.text();
        // Only diff here when a pause is left to decide on; the caller
        // diffs the texts it is given.
        match sleeps.next() {
            Some(pause) if !report::changes(&old, &new, wanted).is_empty() => {
                std::thread::sleep(*pause)
            }
            _ => {
                return Ok(Settled {
                    baseline: present,
                    old,
                    new,
                });
            }
        }
    }
}
