//! Nagios plugin output: a status line with perfdata, then details; the
//! exit code is the state.

use super::Change;
use super::Wanted;
use super::text;
use crate::check::{Check, Level, Outcome};
use crate::exit::NagiosState;
use crate::line_diff::Kind as ChangeKind;

/// The Nagios plugin output: a status line with perfdata, then the changed
/// lines. Missing daemons are CRITICAL, extra processes a WARNING; `note`
/// (the rules changed) is said in the status line and is at least a
/// WARNING, as it asks for a look.
pub fn changes(changes: &[Change], wanted: Wanted, note: Option<&str>) -> (String, NagiosState) {
    let missing = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Missing)
        .count();
    let extra = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Extra)
        .count();
    let state = if missing > 0 {
        NagiosState::Critical
    } else if extra > 0 || note.is_some() {
        NagiosState::Warning
    } else {
        NagiosState::Ok
    };
    let mut summary = Vec::new();
    let mut perfdata = Vec::new();
    if wanted.missing {
        summary.push(format!("{missing} missing"));
        perfdata.push(format!("missing={missing};;1;0;"));
    }
    if wanted.extra {
        summary.push(format!("{extra} extra"));
        perfdata.push(format!("extra={extra};1;;0;"));
    }
    if let Some(note) = note {
        summary.push(note.to_string());
    }
    let mut out = format!(
        "PSDIFF {} - {} | {}\n",
        state.label(),
        plugin_text(&summary.join(", ")),
        perfdata.join(" ")
    );
    // In the long output too, a `|` would start performance data.
    out.push_str(&plugin_text(&text(changes)));
    (out, state)
}

/// Text for a plugin's output: a `|` would start performance data, so it
/// becomes `/` (a process titled `x | evil=1` must not add a metric).
pub fn plugin_text(text: &str) -> String {
    text.replace('|', "/")
}

/// The Nagios status line for an error: UNKNOWN, with what went wrong.
pub fn unknown(error: &dyn std::fmt::Display) -> String {
    format!("PSDIFF UNKNOWN - {}\n", plugin_text(&error.to_string()))
}

/// `PROCS OK|WARNING|CRITICAL - ... | perfdata`, then the failures.
pub fn checks(checks: &[Check], outcomes: &[Outcome]) -> (String, NagiosState) {
    let worst = outcomes.iter().filter_map(Outcome::level).max();
    let state = match worst {
        Some(Level::Critical) => NagiosState::Critical,
        Some(Level::Warning) => NagiosState::Warning,
        None => NagiosState::Ok,
    };
    let failing: Vec<&str> = outcomes
        .iter()
        .flat_map(|o| o.groups.iter())
        .filter(|g| g.level.is_some())
        .map(|g| g.detail.as_deref().unwrap_or(&g.label))
        .collect();
    let mut text = if outcomes.is_empty() {
        "no check applies on this host".to_string()
    } else if failing.is_empty() {
        let counted: usize = outcomes
            .iter()
            .filter(|o| o.not_applicable.is_none())
            .count();
        format!("{counted} of {} checks hold", outcomes.len())
    } else {
        failing.join(", ")
    };
    for line in super::mon::not_applicable(checks, outcomes) {
        text.push_str("; ");
        text.push_str(&line);
    }
    let mut perf = Vec::new();
    for o in outcomes {
        let check = &checks[o.check];
        match &check.kind {
            kind if kind.has_values() => {
                for g in &o.groups {
                    let (warn, crit) = g.perf.clone().unwrap_or_default();
                    let unit = g.resource.map_or("", |r| r.perf_unit());
                    perf.push(format!(
                        "{}={}{unit};{warn};{crit};0;",
                        perf_label(&g.label),
                        g.value
                    ));
                }
            }
            _ if o.not_applicable.is_none() => {
                perf.push(format!(
                    "{}={};;;0;",
                    perf_label(&check.name),
                    o.groups.len()
                ));
            }
            _ => {}
        }
    }
    let mut out = format!(
        "PROCS {} - {} | {}\n",
        state.label(),
        plugin_text(&text),
        perf.join(" ")
    );
    for line in failing {
        out.push_str(&plugin_text(line));
        out.push('\n');
    }
    (out, state)
}

/// Perfdata labels with spaces, `=` or quotes must be single-quoted, with
/// `'` doubled (Nagios plugin guidelines).
fn perf_label(label: &str) -> String {
    if label.chars().any(|c| c == ' ' || c == '=' || c == '\'') {
        format!("'{}'", label.replace('\'', "''"))
    } else {
        label.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample_changes;

    #[test]
    fn states_and_perfdata() {
        let both = Wanted {
            missing: true,
            extra: true,
        };
        let (out, state) = changes(&sample_changes(), both, None);
        assert_eq!(state, NagiosState::Critical);
        assert!(out.starts_with("PSDIFF CRITICAL - 1 missing, 1 extra | missing=1;;1;0; extra=1;1;;0;\n-     /usr/sbin/cron"));
        let (out, state) = changes(&sample_changes()[1..], both, None);
        assert_eq!(state, NagiosState::Warning);
        assert!(out.starts_with("PSDIFF WARNING - 0 missing, 1 extra |"));
        let only_missing = Wanted {
            missing: true,
            extra: false,
        };
        let (out, state) = changes(&[], only_missing, Some("the rules changed"));
        assert_eq!(state, NagiosState::Warning);
        assert!(out.starts_with("PSDIFF WARNING - 0 missing, the rules changed |"));
        let (out, state) = changes(&[], only_missing, None);
        assert_eq!(
            (out.as_str(), state),
            ("PSDIFF OK - 0 missing | missing=0;;1;0;\n", NagiosState::Ok)
        );
    }
}
