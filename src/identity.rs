//! Who each baseline line was: the executable, systemd unit and container
//! of its process when `psdiff write` ran, kept beside the baseline
//! (`psdiff.ids` beside `psdiff.db`), so the line format stays upstream's.
//!
//! A baseline line is then kept only by a process of the same identity.
//! A stand-in titled like a stopped daemon (a setuid file, a user's own
//! copy, a process in a login or a container), or the daemon's own
//! process held stopped by a signal, reads `LINE` no more: its line
//! gains what differs (`(running /usr/bin/passwd, unit session-3.scope)`,
//! `(stopped)`), so the comparison prints `- LINE` and `+ LINE (...)`.
//! Fields that could not be read on either side are not compared, and
//! lines the file does not name (added with `psdiff manual`, or a
//! baseline of the Python psdiff) are kept by their text alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::render;
use crate::rules::View;
use crate::snapshot::{self, Process};

/// What a snapshot must read for `Identity::of`.
pub const FIELDS: snapshot::Fields = snapshot::Fields {
    exe: true,
    selinux: false,
    cgroup: true,
    disguise: false,
};

/// What a line's process is, beyond its text. `None` is "not known"
/// (not read, or not readable); an empty string is "known: none".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl Identity {
    /// The identity of `process`, as read by the snapshot.
    pub fn of(process: &Process) -> Identity {
        let cgroup = process.cgroup.as_deref();
        let container = cgroup.map(|c| {
            c.container
                .as_ref()
                .map_or_else(String::new, |id| id.runtime.to_string())
        });
        // A container's scope is named by its id, new on every start: the
        // runtime says what it is.
        let unit = cgroup.map(|c| match (&c.container, &c.unit) {
            (Some(_), _) | (None, None) => String::new(),
            (None, Some(unit)) => {
                let mut unit = stable_unit(unit);
                if let Some(user_unit) = &c.user_unit {
                    unit.push('/');
                    unit.push_str(&stable_unit(user_unit));
                }
                unit
            }
        });
        Identity {
            exe: process.exe_path().map(str::to_string),
            unit,
            container,
        }
    }

    /// What in `self` differs from `recorded`, as a line's mark says it:
    /// `running EXE`, `unit U`, `container C`; empty when nothing known does.
    fn differences(&self, recorded: &Identity) -> Vec<String> {
        let differs = |now: &Option<String>, then: &Option<String>| matches!((now, then), (Some(a), Some(b)) if a != b);
        let mut out = Vec::new();
        if differs(&self.exe, &recorded.exe) {
            out.push(format!(
                "running {}",
                self.exe.as_deref().unwrap_or_default()
            ));
        }
        if differs(&self.unit, &recorded.unit) {
            out.push(match self.unit.as_deref() {
                Some("") | None => "no unit".to_string(),
                Some(unit) => format!("unit {unit}"),
            });
        }
        if differs(&self.container, &recorded.container) {
            out.push(match self.container.as_deref() {
                Some("") | None => "no container".to_string(),
                Some(runtime) => format!("container of {runtime}"),
            });
        }
        out
    }

    fn same_as(&self, recorded: &Identity) -> bool {
        self.differences(recorded).is_empty()
    }
}

/// A unit's name without the part systemd makes up per start: logins
/// (`session-4.scope`) and `systemd-run`'s units (`run-r3f2.service`)
/// have a new name each time, the daemon's unit keeps its own.
fn stable_unit(unit: &str) -> String {
    for (prefix, generated) in [("session-", "session-*"), ("run-", "run-*")] {
        if unit.starts_with(prefix) {
            let suffix = unit.rfind('.').map_or("", |dot| &unit[dot..]);
            return format!("{generated}{suffix}");
        }
    }
    unit.to_string()
}

/// One line of a view and who prints it.
pub struct LiveLine {
    pub identity: Identity,
    /// Held stopped: by a signal (state T), or by a tracer that is not
    /// root (state t); an admin's debugger is no outage.
    pub stopped: bool,
}

impl LiveLine {
    pub fn of(process: &Process, proc_root: &Path) -> LiveLine {
        LiveLine {
            identity: Identity::of(process),
            stopped: snapshot::held_stopped(proc_root, process),
        }
    }
}

/// Who prints each line of `view`, in the view's order.
pub fn of_view(view: &View, proc_root: &Path) -> Vec<LiveLine> {
    view.lines
        .iter()
        .map(|line| match view.tree.index_of(line.pid) {
            Some(i) => LiveLine::of(&view.tree.processes[i], proc_root),
            None => LiveLine {
                identity: Identity::default(),
                stopped: false,
            },
        })
        .collect()
}

/// The identities recorded for a baseline, by line text: as many as the
/// baseline has lines of that text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded(HashMap<String, Vec<Identity>>);

impl Recorded {
    /// Pairs `text` (a dump) with the identities of its lines.
    #[cfg(test)]
    pub fn from_view(text: &str, lives: &[LiveLine]) -> Recorded {
        let mut by_line: HashMap<String, Vec<Identity>> = HashMap::new();
        for (line, live) in text.lines().zip(lives) {
            by_line
                .entry(line.to_string())
                .or_default()
                .push(live.identity.clone());
        }
        Recorded(by_line)
    }

    /// What `explain` says of `line` printed by `live`: how it stands to
    /// the identities recorded for that line; `None` when none are.
    pub fn explain(&self, line: &str, live: &LiveLine) -> Option<String> {
        if live.stopped {
            return Some(
                "stopped: while it stays stopped, its line in the baseline counts as missing"
                    .to_string(),
            );
        }
        let ids = self.0.get(line)?;
        if ids.iter().any(|id| live.identity.same_as(id)) {
            return Some("as recorded with the baseline (exe, unit, container)".to_string());
        }
        let first = ids.first()?;
        Some(format!(
            "not as recorded with the baseline: {}; its line there counts as missing",
            live.identity.differences(first).join(", ")
        ))
    }

    /// Whether a process of `identity` may print `line` as the baseline's:
    /// no identity is recorded for the line, or one of them is its own.
    pub fn admits(&self, line: &str, identity: &Identity) -> bool {
        self.0
            .get(line)
            .is_none_or(|ids| ids.iter().any(|id| identity.same_as(id)))
    }

    /// `new` (a dump whose lines `lives` are) with the mark of what
    /// differs on each line that no recorded identity keeps: a line of
    /// the baseline (`old`) whose process is stopped, or whose identity
    /// differs from every one recorded for that line.
    pub fn mark(&self, old: &str, new: &str, lives: &[LiveLine]) -> String {
        let in_baseline: std::collections::HashSet<&str> = old.lines().collect();
        let lines: Vec<&str> = new.lines().collect();
        let mut marks: Vec<Option<Vec<String>>> = vec![None; lines.len()];
        // First the lines a recorded identity keeps, each identity once.
        let mut left: HashMap<&str, Vec<&Identity>> = self
            .0
            .iter()
            .map(|(line, ids)| (line.as_str(), ids.iter().collect()))
            .collect();
        let mut unkept = Vec::new();
        for (i, (line, live)) in lines.iter().zip(lives).enumerate() {
            let kept = !live.stopped
                && left.get_mut(line).is_none_or(|ids| {
                    ids.iter()
                        .position(|id| live.identity.same_as(id))
                        .map(|at| ids.swap_remove(at))
                        .is_some()
                });
            if !kept {
                unkept.push(i);
            }
        }
        for i in unkept {
            let (line, live) = (lines[i], &lives[i]);
            if live.stopped && in_baseline.contains(line) {
                marks[i] = Some(vec!["stopped".to_string()]);
            } else if let Some(first) = self.0.get(line).and_then(|ids| ids.first()) {
                let differences = live.identity.differences(first);
                if !differences.is_empty() {
                    marks[i] = Some(differences);
                }
            }
        }
        if marks.iter().all(Option::is_none) {
            return new.to_string();
        }
        let mut out = String::with_capacity(new.len() + 64);
        for (line, mark) in lines.iter().zip(marks) {
            match mark {
                Some(mark) => out.push_str(&render::marked(line, &mark.join(", "))),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is damaged ({why}); run `psdiff write` to record who each baseline line is", .path.display())]
    Malformed { path: PathBuf, why: String },
    #[error("cannot write {}: {source}; the baseline's lines are checked by their text alone", .path.display())]
    Unwritable {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct File {
    psdiff: String,
    lines: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    line: String,
    #[serde(flatten)]
    identity: Identity,
}

/// Where the identities of the baseline at `db` are kept.
pub fn path(db: &Path) -> PathBuf {
    db.with_extension("ids")
}

/// The identities beside `db`; empty when there are none (a baseline of
/// the Python psdiff, or of a psdiff before this file).
pub fn read(db: &Path) -> Result<Recorded, IdentityError> {
    let path = path(db);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recorded::default()),
        Err(source) => return Err(IdentityError::Unreadable { path, source }),
    };
    let file: File = serde_json::from_slice(&bytes).map_err(|e| IdentityError::Malformed {
        path,
        why: e.to_string(),
    })?;
    let mut by_line: HashMap<String, Vec<Identity>> = HashMap::new();
    for entry in file.lines {
        by_line.entry(entry.line).or_default().push(entry.identity);
    }
    Ok(Recorded(by_line))
}

/// Keeps `text`'s identities beside the baseline at `db`, one entry per
/// line in the baseline's order, with the baseline's mode.
pub fn write(db: &Path, text: &str, lives: &[LiveLine], mode: u32) -> Result<(), IdentityError> {
    let file = File {
        psdiff: env!("CARGO_PKG_VERSION").to_string(),
        lines: text
            .lines()
            .zip(lives)
            .map(|(line, live)| Entry {
                line: line.to_string(),
                identity: live.identity.clone(),
            })
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&file).expect("identities serialize");
    json.push('\n');
    let path = path(db);
    crate::atomic::write(&path, json.as_bytes(), mode)
        .map_err(|source| IdentityError::Unwritable { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(exe: &str, unit: &str) -> Identity {
        Identity {
            exe: Some(exe.to_string()),
            unit: Some(unit.to_string()),
            container: Some(String::new()),
        }
    }

    fn live(identity: Identity, stopped: bool) -> LiveLine {
        LiveLine { identity, stopped }
    }

    const NGINX: &str = "nginx: master process /usr/sbin/nginx  {user=root}";
    const WORKER: &str = "  nginx: worker process  {user=www-data}";

    #[test]
    fn a_stand_in_is_marked_with_what_differs() {
        let old = format!("{NGINX}\n");
        let recorded =
            Recorded::from_view(&old, &[live(id("/usr/sbin/nginx", "nginx.service"), false)]);
        let now = [live(id("/usr/bin/passwd", "session-*.scope"), false)];
        assert_eq!(
            recorded.mark(&old, &old, &now),
            "nginx: master process /usr/sbin/nginx (running /usr/bin/passwd, unit session-*.scope)  {user=root}\n"
        );
        // The daemon itself, restarted, is the same line.
        let again = [live(id("/usr/sbin/nginx", "nginx.service"), false)];
        assert_eq!(recorded.mark(&old, &old, &again), old);
    }

    #[test]
    fn one_stopped_worker_of_two_is_marked() {
        let old = format!("{NGINX}\n{WORKER}\n{WORKER}\n");
        let ids = [
            live(id("/usr/sbin/nginx", "nginx.service"), false),
            live(id("/usr/sbin/nginx", "nginx.service"), false),
            live(id("/usr/sbin/nginx", "nginx.service"), false),
        ];
        let recorded = Recorded::from_view(&old, &ids);
        let now = [
            live(id("/usr/sbin/nginx", "nginx.service"), false),
            live(id("/usr/sbin/nginx", "nginx.service"), true),
            live(id("/usr/sbin/nginx", "nginx.service"), false),
        ];
        let marked = recorded.mark(&old, &old, &now);
        assert_eq!(
            marked.lines().filter(|l| l.contains("(stopped)")).count(),
            1,
            "{marked}"
        );
        // Without any recorded identity, a stopped baseline line is still one.
        let marked = Recorded::default().mark(&old, &old, &now);
        assert!(
            marked.contains("nginx: worker process (stopped)  {user=www-data}"),
            "{marked}"
        );
    }

    #[test]
    fn what_was_not_read_is_not_compared() {
        let old = format!("{NGINX}\n");
        let recorded =
            Recorded::from_view(&old, &[live(id("/usr/sbin/nginx", "nginx.service"), false)]);
        // psdiff as a user who cannot read the exe link, and no cgroups.
        let now = [live(Identity::default(), false)];
        assert_eq!(recorded.mark(&old, &old, &now), old);
        // A line nobody recorded is kept by its text.
        let other = "sshd: /usr/sbin/sshd -D  {user=root}\n";
        let now = [live(id("/tmp/x", ""), false)];
        assert_eq!(recorded.mark(other, other, &now), other);
    }

    #[test]
    fn generated_unit_names_are_one_name() {
        assert_eq!(stable_unit("session-12.scope"), "session-*.scope");
        assert_eq!(stable_unit("run-r0f3a.service"), "run-*.service");
        assert_eq!(stable_unit("nginx.service"), "nginx.service");
        assert_eq!(
            stable_unit("postgresql@15-main.service"),
            "postgresql@15-main.service"
        );
    }
}
