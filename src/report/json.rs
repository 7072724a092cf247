//! JSON reports: the changes of `show` and `diff`, and every check with
//! its verdict.

use serde::Serialize;

use super::Change;
use crate::check::{Check, Kind, Level, Outcome};
use crate::line_diff::Kind as ChangeKind;
use crate::render;

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
/// cmdline and line: `psdiff diff`.
pub fn changes_json(changes: &[Change]) -> String {
    let mut out = serde_json::to_string(&json_report(changes)).expect("report serializes");
    out.push('\n');
    out
}

/// What `show` prints: `baseline` (`present`, `absent` or `empty`: with
/// either of the last two nothing can be missing), `rules_note` (when the
/// rules in force are not the baseline's, else null), and the changes.
pub fn comparison(
    changes: &[Change],
    baseline: &str,
    rules_note: Option<String>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(json_report(changes)).expect("report serializes");
    value["baseline"] = baseline.into();
    value["rules_note"] = rules_note.into();
    value
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
        missing: of(ChangeKind::Missing),
        extra: of(ChangeKind::Extra),
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

#[derive(Serialize)]
struct JsonCheck<'a> {
    name: &'a str,
    kind: &'static str,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bounds: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crit: Option<String>,
    groups: Vec<JsonGroup<'a>>,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    value: f64,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    pids: &'a [u32],
    /// For a resource check: which resource `value` is (bytes, seconds,
    /// a count or a ratio), with its ranges.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crit: Option<&'a str>,
}

pub fn verdict(level: Option<Level>) -> &'static str {
    match level {
        None => "ok",
        Some(Level::Warning) => "warning",
        Some(Level::Critical) => "critical",
    }
}

/// Every check with its counts, bounds and verdict.
pub fn checks(checks: &[Check], outcomes: &[Outcome]) -> String {
    let entries: Vec<JsonCheck> = outcomes
        .iter()
        .map(|o| {
            let check = &checks[o.check];
            let (kind, bounds, warn, crit) = match &check.kind {
                Kind::Count {
                    bounds, warn, crit, ..
                } => (
                    "count",
                    bounds.map(|b| b.to_string()),
                    warn.as_ref().map(|r| r.to_string()),
                    crit.as_ref().map(|r| r.to_string()),
                ),
                Kind::Cpu { max_percent, .. } => {
                    ("cpu", None, None, Some(format!("{max_percent}%")))
                }
                Kind::Credential { .. } => ("credential", None, None, None),
                Kind::Resources { .. } => ("resources", None, None, None),
                Kind::Deleted { .. } => ("deleted", None, None, None),
                Kind::Restarts { bounds, window, .. } => (
                    "restarts",
                    Some(format!("{bounds} within {window}")),
                    None,
                    None,
                ),
                Kind::Starts { bounds, window, .. } => (
                    "starts",
                    Some(format!("{bounds} within {window}")),
                    None,
                    None,
                ),
                Kind::Port { listen, .. } => {
                    ("port", None, None, listen.as_ref().map(|l| l.to_string()))
                }
            };
            JsonCheck {
                name: &check.name,
                kind,
                verdict: if o.not_applicable.is_some() {
                    "not-applicable"
                } else {
                    verdict(o.level())
                },
                reason: o.not_applicable.as_deref(),
                bounds,
                warn,
                crit,
                groups: o
                    .groups
                    .iter()
                    .map(|g| {
                        // A resource group's ranges, as perfdata has them.
                        let (warn, crit) = match (&g.perf, g.resource) {
                            (Some((w, c)), Some(_)) => (
                                Some(w.as_str()).filter(|w| !w.is_empty()),
                                Some(c.as_str()).filter(|c| !c.is_empty()),
                            ),
                            _ => (None, None),
                        };
                        JsonGroup {
                            label: &g.label,
                            user: g.user.as_deref(),
                            value: g.value,
                            verdict: verdict(g.level),
                            detail: g.detail.as_deref(),
                            pids: &g.pids,
                            resource: g.resource.map(|r| r.key()),
                            warn,
                            crit,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let mut out =
        serde_json::to_string(&serde_json::json!({ "checks": entries })).expect("serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_entries() {
        let json = changes_json(&super::super::sample_changes());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["missing"][0]["depth"], 2);
        assert_eq!(v["missing"][0]["cmdline"], "/usr/sbin/cron -f");
        assert_eq!(v["extra"][0]["user"], "www-data");
    }
}
