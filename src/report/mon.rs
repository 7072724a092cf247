//! ps.monitor's report of the checks (etbemon's mon).

use crate::check::{Check, Kind, Outcome};

/// ps.monitor's output: nothing when all hold; else one summary line of
/// `name:count` for each failure, then one detail line each.
pub fn checks(checks: &[Check], outcomes: &[Outcome]) -> String {
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
            Kind::Count { .. } | Kind::Restarts { .. } | Kind::Starts { .. } => {
                format!("{}:{}", g.label, g.value)
            }
            Kind::Resources { .. } => match g.resource {
                Some(r) => format!("{}={}", g.label, r.show(g.value)),
                None => g.label.clone(),
            },
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
