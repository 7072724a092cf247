//! Output formats for the changes `show` and `diff` find.

use serde::Serialize;

pub use crate::diff::Change;
use crate::diff::Kind;
use crate::error::NagiosState;
use crate::render;

/// Which kinds of change were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub missing: bool,
    pub extra: bool,
}

impl Wanted {
    pub fn includes(self, kind: Kind) -> bool {
        match kind {
            Kind::Missing => self.missing,
            Kind::Extra => self.extra,
        }
    }
}

/// The changes of the wanted kinds from one dump text to another.
pub fn changes<'a>(old: &'a str, new: &'a str, wanted: Wanted) -> Vec<Change<'a>> {
    if old == new {
        return Vec::new();
    }
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut changes = crate::diff::diff(&old, &new);
    changes.retain(|c| wanted.includes(c.kind));
    changes
}

/// `- LINE` for missing and `+ LINE` for extra, as the Python psdiff.
pub fn text(changes: &[Change]) -> String {
    let mut out = String::with_capacity(changes.iter().map(|c| c.line.len() + 3).sum());
    for change in changes {
        out.push_str(match change.kind {
            Kind::Missing => "- ",
            Kind::Extra => "+ ",
        });
        out.push_str(change.line);
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    depth: usize,
    user: &'a str,
    cmdline: &'a str,
    line: &'a str,
}

#[derive(Serialize)]
pub struct JsonReport<'a> {
    missing: Vec<JsonEntry<'a>>,
    extra: Vec<JsonEntry<'a>>,
}

/// `{"missing": [...], "extra": [...]}`, each entry with depth, user,
/// cmdline and line.
pub fn json(changes: &[Change]) -> String {
    let mut out = serde_json::to_string(&json_report(changes)).expect("report serializes");
    out.push('\n');
    out
}

/// What `json` prints, for callers that add to it.
pub fn json_report<'a>(changes: &[Change<'a>]) -> JsonReport<'a> {
    let of = |kind| {
        changes
            .iter()
            .filter(|c| c.kind == kind)
            .map(json_entry)
            .collect()
    };
    JsonReport {
        missing: of(Kind::Missing),
        extra: of(Kind::Extra),
    }
}

fn json_entry<'a>(change: &Change<'a>) -> JsonEntry<'a> {
    let parsed = render::parse_line(change.line);
    JsonEntry {
        depth: parsed.as_ref().map_or(0, |p| p.depth),
        user: parsed.as_ref().map_or("", |p| p.user),
        cmdline: parsed.as_ref().map_or(change.line, |p| p.cmdline),
        line: change.line,
    }
}

/// The Nagios plugin output: a status line with perfdata, then the changed
/// lines. Missing daemons are CRITICAL, extra processes a WARNING.
pub fn nagios(changes: &[Change], wanted: Wanted) -> (String, NagiosState) {
    let missing = changes.iter().filter(|c| c.kind == Kind::Missing).count();
    let extra = changes.iter().filter(|c| c.kind == Kind::Extra).count();
    let state = if missing > 0 {
        NagiosState::Critical
    } else if extra > 0 {
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
    let mut out = format!(
        "PSDIFF {} - {} | {}\n",
        state.label(),
        summary.join(", "),
        perfdata.join(" ")
    );
    out.push_str(&text(changes));
    (out, state)
}

/// The Prometheus text format of a show, for node_exporter's textfile
/// collector.
pub fn prometheus(changes: &[Change], wanted: Wanted, baseline: bool) -> String {
    let count = |kind| changes.iter().filter(|c| c.kind == kind).count() as f64;
    let mut out = String::new();
    if wanted.missing {
        let help = "Lines of the baseline that are not running.";
        metric(
            &mut out,
            "psdiff_missing_lines",
            help,
            &[("", count(Kind::Missing))],
        );
    }
    if wanted.extra {
        let help = "Running processes that are not in the baseline.";
        metric(
            &mut out,
            "psdiff_extra_lines",
            help,
            &[("", count(Kind::Extra))],
        );
    }
    let present = if baseline { 1.0 } else { 0.0 };
    metric(
        &mut out,
        "psdiff_baseline_present",
        "1 when a baseline exists.",
        &[("", present)],
    );
    out.push_str(&prometheus_up("psdiff"));
    out
}

/// What a failed run writes: `PREFIX_up 0`, so that the last good numbers
/// are not served as if they were fresh. `show` and `check` have prefixes
/// of their own (`psdiff`, `psdiff_check`), as node_exporter refuses a
/// series that two textfiles both define.
pub fn prometheus_down(prefix: &str) -> String {
    up(prefix, 0.0)
}

/// What a successful run adds: `PREFIX_up 1` and the time.
pub fn prometheus_up(prefix: &str) -> String {
    up(prefix, 1.0)
}

fn up(prefix: &str, value: f64) -> String {
    let mut out = String::new();
    let help = "1 when psdiff could read the processes, rules and baseline.";
    metric(&mut out, &format!("{prefix}_up"), help, &[("", value)]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let help = "When psdiff last ran, in seconds since the epoch.";
    let name = format!("{prefix}_last_run_timestamp_seconds");
    metric(&mut out, &name, help, &[("", now.as_secs() as f64)]);
    out
}

/// One gauge with its HELP and TYPE lines; each sample is `(labels, value)`
/// with the labels already rendered (`{check="x"}`, or empty).
pub fn metric(out: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (labels, value) in samples {
        out.push_str(&format!("{name}{labels} {value}\n"));
    }
}

/// A label value escaped as the Prometheus text format wants it.
pub fn label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// The Nagios status line for an error: UNKNOWN, with what went wrong.
pub fn nagios_unknown(error: &dyn std::fmt::Display) -> String {
    format!("PSDIFF UNKNOWN - {error}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> Vec<Change<'static>> {
        vec![
            Change {
                kind: Kind::Missing,
                line: "    /usr/sbin/cron -f  {user=root}",
            },
            Change {
                kind: Kind::Extra,
                line: "    nc -l 4444  {user=www-data}",
            },
        ]
    }

    #[test]
    fn text_format() {
        assert_eq!(
            text(&changes()),
            "-     /usr/sbin/cron -f  {user=root}\n+     nc -l 4444  {user=www-data}\n"
        );
    }

    #[test]
    fn nagios_states_and_perfdata() {
        let both = Wanted {
            missing: true,
            extra: true,
        };
        let (out, state) = nagios(&changes(), both);
        assert_eq!(state, NagiosState::Critical);
        assert!(out.starts_with("PSDIFF CRITICAL - 1 missing, 1 extra | missing=1;;1;0; extra=1;1;;0;\n-     /usr/sbin/cron"));
        let (out, state) = nagios(&changes()[1..], both);
        assert_eq!(state, NagiosState::Warning);
        assert!(out.starts_with("PSDIFF WARNING - 0 missing, 1 extra |"));
        let (out, state) = nagios(
            &[],
            Wanted {
                missing: true,
                extra: false,
            },
        );
        assert_eq!(
            (out.as_str(), state),
            ("PSDIFF OK - 0 missing | missing=0;;1;0;\n", NagiosState::Ok)
        );
    }

    #[test]
    fn json_entries() {
        let v: serde_json::Value = serde_json::from_str(&json(&changes())).unwrap();
        assert_eq!(v["missing"][0]["depth"], 2);
        assert_eq!(v["missing"][0]["cmdline"], "/usr/sbin/cron -f");
        assert_eq!(v["extra"][0]["user"], "www-data");
    }
}
