//! The three ways `psdiff check` reports: ps.monitor's (mon), a Nagios
//! plugin's, and JSON.

use serde::Serialize;

use super::{Check, Kind, Level, Outcome};
use crate::error::NagiosState;
use crate::report;

/// ps.monitor's output: nothing when all hold; else one summary line of
/// `name:count` for each failure, then one detail line each.
pub fn mon(checks: &[Check], outcomes: &[Outcome]) -> String {
    let failing: Vec<_> = outcomes
        .iter()
        .flat_map(|o| {
            o.groups
                .iter()
                .filter(|g| g.level.is_some())
                .map(move |g| (o, g))
        })
        .collect();
    if failing.is_empty() {
        return String::new();
    }
    let summary: Vec<String> = failing
        .iter()
        .map(|(o, g)| match checks[o.check].kind {
            Kind::Count { .. } => format!("{}:{}", g.label, g.value),
            _ => g.label.clone(),
        })
        .collect();
    let mut out = summary.join(" ");
    out.push('\n');
    for (_, g) in &failing {
        out.push_str(g.detail.as_deref().unwrap_or(&g.label));
        out.push('\n');
    }
    out
}

/// Lines for stderr about checks that could not apply here.
pub fn not_applicable(checks: &[Check], outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| {
            let why = o.not_applicable.as_ref()?;
            Some(format!(
                "check {:?}: not applicable: {why}",
                checks[o.check].name
            ))
        })
        .collect()
}

/// `PROCS OK|WARNING|CRITICAL - ... | perfdata`, then the failures.
pub fn nagios(checks: &[Check], outcomes: &[Outcome]) -> (String, NagiosState) {
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
    let mut text = if failing.is_empty() {
        let counted: usize = outcomes
            .iter()
            .filter(|o| o.not_applicable.is_none())
            .count();
        format!("{counted} of {} checks hold", outcomes.len())
    } else {
        failing.join(", ")
    };
    for line in not_applicable(checks, outcomes) {
        text.push_str("; ");
        text.push_str(&line);
    }
    let mut perf = Vec::new();
    for o in outcomes {
        let check = &checks[o.check];
        match &check.kind {
            Kind::Count { .. } => {
                for g in &o.groups {
                    let (warn, crit) = g.perf.clone().unwrap_or_default();
                    perf.push(format!(
                        "{}={};{warn};{crit};0;",
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
    let mut out = format!("PROCS {} - {text} | {}\n", state.label(), perf.join(" "));
    for line in failing {
        out.push_str(line);
        out.push('\n');
    }
    (out, state)
}

/// The Prometheus text format: per check whether it failed (and whether it
/// could apply), and the value of each counted group.
pub fn prometheus(checks: &[Check], outcomes: &[Outcome]) -> String {
    let label = |check: &str| format!("{{check=\"{}\"}}", report::label_value(check));
    let mut failed = Vec::new();
    let mut not_applicable = Vec::new();
    let mut values = Vec::new();
    for o in outcomes {
        let name = &checks[o.check].name;
        failed.push((label(name), if o.level().is_some() { 1.0 } else { 0.0 }));
        not_applicable.push((
            label(name),
            if o.not_applicable.is_some() { 1.0 } else { 0.0 },
        ));
        if matches!(checks[o.check].kind, Kind::Count { .. }) {
            for g in &o.groups {
                let labels = format!(
                    "{{check=\"{}\",group=\"{}\"}}",
                    report::label_value(name),
                    report::label_value(&g.label)
                );
                values.push((labels, g.value));
            }
        }
    }
    let mut out = String::new();
    report::metric(
        &mut out,
        "psdiff_check_failed",
        "1 when the check fails.",
        &as_refs(&failed),
    );
    report::metric(
        &mut out,
        "psdiff_check_not_applicable",
        "1 when the check cannot apply here (SELinux off).",
        &as_refs(&not_applicable),
    );
    report::metric(
        &mut out,
        "psdiff_check_count",
        "Processes counted, per check and group.",
        &as_refs(&values),
    );
    out.push_str(&report::prometheus_up("psdiff_check"));
    out
}

fn as_refs(samples: &[(String, f64)]) -> Vec<(&str, f64)> {
    samples.iter().map(|(l, x)| (l.as_str(), *x)).collect()
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
}

fn verdict(level: Option<Level>) -> &'static str {
    match level {
        None => "ok",
        Some(Level::Warning) => "warning",
        Some(Level::Critical) => "critical",
    }
}

/// Every check with its counts, bounds and verdict.
pub fn json(checks: &[Check], outcomes: &[Outcome]) -> String {
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
                    .map(|g| JsonGroup {
                        label: &g.label,
                        user: g.user.as_deref(),
                        value: g.value,
                        verdict: verdict(g.level),
                        detail: g.detail.as_deref(),
                        pids: &g.pids,
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
