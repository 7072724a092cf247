//! Transient extras: processes the watcher journaled that the rules
//! showed, that are not the baseline's, and that started and ended since
//! a consumer's previous look. A poll cannot see them; `show` reports
//! them beside the extras that run, marked `(transient: ...)`. Two kinds
//! are no one's news: a fork that ran no other program (its parent's
//! work, which the parent's line stands for), and a service's helpers.

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
        if t.origin == "fork" || helpers_work(&journal, &t)? {
            continue;
        }
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

/// How long a service's helper may run (ExecStartPre, ExecReload, ...).
const HELPER_SECONDS: f64 = 60.0;

/// How far up the tree a helper is looked for.
const HELPER_DEPTH: usize = 8;

/// Whether `t` is a service's own helper, or root's work below one: what
/// systemd runs beside a daemon for a moment (`nginx -t` before it
/// starts, `nginx -s reload`, `start-stop-daemon --stop`, a forking
/// daemon's starter). Only its lifetime tells a helper from the daemon it
/// starts (both are root's, children of pid 1, in the unit's cgroup), so
/// this is decided here, over the journal, not by a rule: a poll sees a
/// live process. The chain up to the helper must be root's alone, so a
/// daemon's worker of another user (a web shell's parent) ends it.
fn helpers_work(journal: &Journal, t: &Transient) -> Result<bool, Error> {
    let mut image = t.clone();
    for _ in 0..HELPER_DEPTH {
        if image.ppid == 1 {
            return Ok(is_helper(&image));
        }
        if image.ppid == 0 {
            return Ok(false);
        }
        match journal.parent_of(&image)? {
            Some(parent) if parent.user.as_deref() == Some("root") => image = parent,
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// Root's own program, started by systemd in a system service, that ran
/// less than `HELPER_SECONDS` (or runs still, and is younger). A setuid
/// or setgid program is not root's own: it may be a user's, lent root.
fn is_helper(image: &Transient) -> bool {
    use std::os::unix::fs::MetadataExt;
    let lifetime = image.ended.unwrap_or_else(crate::clock::unix_now) - image.started;
    image.user.as_deref() == Some("root")
        && image
            .unit
            .as_deref()
            .is_some_and(|u| u.ends_with(".service") && !u.starts_with("user@"))
        && lifetime < HELPER_SECONDS
        && image.exe.as_deref().is_some_and(|exe| {
            std::fs::metadata(exe.trim_end_matches(" (deleted)"))
                .is_ok_and(|m| m.uid() == 0 && m.mode() & 0o6022 == 0)
        })
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
