//! Transient extras: processes the watcher journaled that the rules
//! showed, that are not the baseline's, and that started and ended since
//! a consumer's previous look. A poll cannot see them; `show` reports
//! them beside the extras that run, marked `(transient: ...)`.

use crate::app::Error;
use crate::app::comparison::Comparison;
use crate::app::context::Context;
use crate::journal::{Journal, Transient, timeline};

/// The transient extras for `consumer` (marked lines, one per distinct
/// line), and what a reader should know about the watcher: not running,
/// or events lost.
pub fn take(
    context: &Context,
    comparison: &Comparison,
    consumer: &str,
) -> Result<(Vec<String>, Option<String>), Error> {
    let Some(mut journal) = Journal::open_for_cursor(&context.journal)? else {
        return Ok((Vec::new(), None));
    };
    let note = match journal.watcher()? {
        Some(w) if w.running() => None,
        _ => Some(format!(
            "psdiff watch is not running (journal {}): processes that start and end between two looks are not seen",
            context.journal.display()
        )),
    };
    if !comparison.baseline.sees() {
        return Ok((Vec::new(), note));
    }
    let (transients, previous) = journal.take_transients(consumer)?;
    let lost: Vec<(String, u64)> = journal.losses(previous, crate::clock::unix_now())?;
    let note = note.or_else(|| {
        let total: u64 = lost.iter().map(|(_, n)| n).sum();
        let kinds: Vec<String> = lost.iter().map(|(k, n)| format!("{n} {k}")).collect();
        (total > 0).then(|| {
            format!(
                "psdiff watch lost {total} event(s) since this consumer's previous look ({}): a transient among them is not reported",
                kinds.join(", ")
            )
        })
    });
    // Still extra by the baseline as it is now (one written since counts).
    let in_baseline: std::collections::HashSet<&str> = comparison.old.lines().collect();
    let mut groups: Vec<(String, Vec<Transient>)> = Vec::new();
    for t in transients {
        let Some(line) = t.line.clone() else { continue };
        let identity = crate::identity::Identity {
            exe: t.exe.clone(),
            unit: None,
            container: None,
        };
        if in_baseline.contains(line.as_str()) && comparison.recorded.admits(&line, &identity) {
            continue;
        }
        match groups.iter_mut().find(|(l, _)| *l == line) {
            Some((_, group)) => group.push(t),
            None => groups.push((line, vec![t])),
        }
    }
    let lines = groups
        .into_iter()
        .map(|(line, group)| crate::render::marked(&line, &mark(&group)))
        .collect();
    Ok((lines, note))
}

/// `transient: 08:01:02 for 12 s, exit 0`, or for many of one line
/// `transient: 5 times 08:01:02 to 08:05:00, last signal 9`.
fn mark(group: &[Transient]) -> String {
    let clock = |t: f64| crate::clock::format_unix(t)[11..19].to_string();
    let last = group.last().expect("a group has a member");
    let ending = last.ending().unwrap_or_default();
    match group {
        [one] => format!(
            "transient: {} for {}, {ending}",
            clock(one.started),
            timeline::human(one.lifetime().unwrap_or_default())
        ),
        _ => format!(
            "transient: {} times {} to {}, last {ending}",
            group.len(),
            clock(group[0].started),
            clock(last.ended.unwrap_or(last.started))
        ),
    }
}
