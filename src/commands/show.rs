//! `psdiff show`, `show-missing`, `show-extra`: what differs from the
//! baseline, looked at again before it is called an alarm.

use super::emit;
use crate::cli::{ShowFormat, ShowOptions};
use crate::comparison;
use crate::context::Context;
use crate::error::{Error, Exit};
use crate::report::{self, Wanted, json, nagios, prometheus};

pub fn run(context: &Context, wanted: Wanted, options: &ShowOptions) -> Result<Exit, Error> {
    let settled = comparison::settled(context, wanted, options.retry);
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
            nagios::unknown(e),
            Exit::Nagios(nagios::NagiosState::Unknown),
        ),
        (ShowFormat::Nagios, Ok(s)) => {
            let (text, state) = nagios::changes(&s.changes(wanted), wanted);
            (text, Exit::Nagios(state))
        }
        // A scraper must not keep serving the last good numbers.
        (ShowFormat::Prometheus, Err(_)) => {
            emit(output, &prometheus::down("psdiff"))?;
            return settled.map(|_| Exit::Runtime);
        }
        (ShowFormat::Prometheus, Ok(s)) => {
            let changes = s.changes(wanted);
            (
                prometheus::changes(&changes, wanted, s.baseline),
                exit_for(&changes),
            )
        }
        (_, Err(_)) => return settled.map(|_| Exit::Runtime),
        (format, Ok(s)) => {
            let changes = s.changes(wanted);
            let text = match format {
                ShowFormat::Json => json::changes_json(&changes),
                _ => report::text(&changes),
            };
            (text, exit_for(&changes))
        }
    };
    emit(output, &text)?;
    Ok(exit)
}
