//! The Prometheus text format, for node_exporter's textfile collector and
//! the API's /metrics.

use super::Change;
use super::Wanted;
use crate::check::{Check, Kind, Outcome};
use crate::line_diff::Kind as ChangeKind;

/// The Prometheus text format of a show, for node_exporter's textfile
/// collector.
pub fn changes(changes: &[Change], wanted: Wanted, baseline: bool, rules_changed: bool) -> String {
    let count = |kind| changes.iter().filter(|c| c.kind == kind).count() as f64;
    let mut out = String::new();
    if wanted.missing {
        let help = "Lines of the baseline that are not running.";
        metric(
            &mut out,
            "psdiff_missing_lines",
            help,
            &[("", count(ChangeKind::Missing))],
        );
    }
    if wanted.extra {
        let help = "Running processes that are not in the baseline.";
        metric(
            &mut out,
            "psdiff_extra_lines",
            help,
            &[("", count(ChangeKind::Extra))],
        );
    }
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metric(
        &mut out,
        "psdiff_baseline_present",
        "1 when a baseline exists and is not empty.",
        &[("", flag(baseline))],
    );
    metric(
        &mut out,
        "psdiff_rules_changed",
        "1 when the rules in force print processes differently from those the baseline was written with (run psdiff write -v).",
        &[("", flag(rules_changed))],
    );
    out.push_str(&up("psdiff"));
    out
}

/// The Prometheus text format: per check whether it failed (and whether it
/// could apply), and the value of each counted group.
pub fn checks(checks: &[Check], outcomes: &[Outcome]) -> String {
    let label = |check: &str| format!("{{check=\"{}\"}}", label_value(check));
    let mut failed = Vec::new();
    let mut not_applicable = Vec::new();
    let mut values = Vec::new();
    let mut resources = Vec::new();
    for o in outcomes {
        let name = &checks[o.check].name;
        failed.push((label(name), if o.level().is_some() { 1.0 } else { 0.0 }));
        not_applicable.push((
            label(name),
            if o.not_applicable.is_some() { 1.0 } else { 0.0 },
        ));
        if matches!(checks[o.check].kind, Kind::Resources { .. }) {
            for g in &o.groups {
                let Some(resource) = g.resource else { continue };
                let labels = format!(
                    "{{check=\"{}\",group=\"{}\",resource=\"{}\"}}",
                    label_value(name),
                    label_value(&g.label),
                    resource.key()
                );
                resources.push((labels, g.value));
            }
        }
        if matches!(checks[o.check].kind, Kind::Count { .. }) {
            for g in &o.groups {
                let labels = format!(
                    "{{check=\"{}\",group=\"{}\"}}",
                    label_value(name),
                    label_value(&g.label)
                );
                values.push((labels, g.value));
            }
        }
    }
    let mut out = String::new();
    metric(
        &mut out,
        "psdiff_check_failed",
        "1 when the check fails.",
        &as_refs(&failed),
    );
    metric(
        &mut out,
        "psdiff_check_not_applicable",
        "1 when the check cannot apply here (SELinux off).",
        &as_refs(&not_applicable),
    );
    metric(
        &mut out,
        "psdiff_check_count",
        "Processes counted, per check and group.",
        &as_refs(&values),
    );
    if !resources.is_empty() {
        metric(
            &mut out,
            "psdiff_check_resource",
            "A resource of a matched process (or summed over the check): bytes for rss, vsz and swap, seconds for age and cpu_time, a count or a ratio for the rest.",
            &as_refs(&resources),
        );
    }
    out.push_str(&up("psdiff_check"));
    out
}

fn as_refs(samples: &[(String, f64)]) -> Vec<(&str, f64)> {
    samples.iter().map(|(l, x)| (l.as_str(), *x)).collect()
}

/// What a failed run writes: `PREFIX_up 0`, so that the last good numbers
/// are not served as if they were fresh. `show` and `check` have prefixes
/// of their own (`psdiff`, `psdiff_check`), as node_exporter refuses a
/// series that two textfiles both define.
pub fn down(prefix: &str) -> String {
    up_value(prefix, 0.0)
}

/// What a successful run adds: `PREFIX_up 1` and the time.
pub fn up(prefix: &str) -> String {
    up_value(prefix, 1.0)
}

fn up_value(prefix: &str, value: f64) -> String {
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
