//! `psdiff show`, `show-missing`, `show-extra`: what differs from the
//! baseline, looked at again before it is called an alarm.

use super::emit;
use crate::app::Error;
use crate::app::comparison::{self, Presence};
use crate::app::context::Context;
use crate::app::transients;
use crate::cli::{ShowFormat, ShowOptions};
use crate::exit::Exit;
use crate::report::{self, Wanted, json, nagios, prometheus};

pub fn run(context: &Context, wanted: Wanted, options: &ShowOptions) -> Result<Exit, Error> {
    let settled = comparison::settled(context, wanted, options.retry);
    let output = options.output.as_deref();
    let taken = settled.map(|mut compared| {
        if wanted.extra {
            // The comparison stands without the journal: a watcher's
            // trouble is said, never turned into a failed check.
            let consumer = options.consumer.clone().unwrap_or_else(command_line);
            match transients::take(context, &compared, &consumer) {
                Ok((lines, note)) => {
                    if let Some(note) = note {
                        eprintln!("psdiff: {note}");
                    }
                    compared.transients = lines;
                }
                Err(e) => eprintln!(
                    "psdiff: {e}; processes that came and went between two looks are not reported"
                ),
            }
        }
        compared
    });
    let compared = match taken {
        Ok(compared) => compared,
        // Nagios wants a status line, and UNKNOWN for any error.
        Err(e) if options.format == ShowFormat::Nagios => {
            emit(output, &nagios::unknown(&e))?;
            return Ok(Exit::Nagios(crate::exit::NagiosState::Unknown));
        }
        // A scraper must not keep serving the last good numbers.
        Err(e) if options.format == ShowFormat::Prometheus => {
            emit(output, &prometheus::down("psdiff"))?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let blind = blindness(context, compared.baseline);
    if let Some(why) = &blind {
        eprintln!("psdiff: {why}");
    }
    let note = compared.note.as_ref().map(|n| n.to_string());
    if let Some(note) = &note {
        eprintln!("psdiff: {note}");
    }
    let changes = compared.changes(wanted);
    let found = if changes.is_empty() {
        Exit::Clean
    } else {
        Exit::Report
    };
    let (text, exit) = match options.format {
        // A check that cannot see is never OK.
        ShowFormat::Nagios if blind.is_some() => (
            nagios::unknown(&blind.as_deref().unwrap_or_default()),
            Exit::Nagios(crate::exit::NagiosState::Unknown),
        ),
        ShowFormat::Nagios => {
            let (text, state) = nagios::changes(&changes, wanted, note.as_deref());
            (text, Exit::Nagios(state))
        }
        ShowFormat::Prometheus => (
            prometheus::changes(
                &changes,
                wanted,
                compared.baseline.sees(),
                matches!(compared.note, Some(comparison::RulesNote::Changed { .. })),
            ),
            found,
        ),
        ShowFormat::Json => {
            let mut text = json::comparison(&changes, compared.baseline.as_str(), note).to_string();
            text.push('\n');
            (
                text,
                if blind.is_some() {
                    Exit::Runtime
                } else {
                    found
                },
            )
        }
        // As the Python psdiff, whose Zabbix triggers fire on any text:
        // without a baseline show-missing prints nothing, show and
        // show-extra print every line; stderr says why.
        ShowFormat::Text => (report::text(&changes), found),
    };
    emit(output, &text)?;
    Ok(exit)
}

/// This run's command line: one consumer of transient extras per way of
/// asking (Zabbix's item, NRPE's check).
fn command_line() -> String {
    std::env::args().skip(1).collect::<Vec<_>>().join(" ")
}

/// Why nothing can be missing, when the baseline cannot tell.
fn blindness(context: &Context, baseline: Presence) -> Option<String> {
    let db = context.db.display();
    match baseline {
        Presence::Present => None,
        Presence::Absent => Some(format!(
            "no baseline at {db}, so nothing can be missing; run `psdiff write` to store the current processes as the baseline"
        )),
        Presence::Empty => Some(format!(
            "the baseline {db} is empty, so nothing can be missing; run `psdiff write` to store the current processes"
        )),
    }
}
