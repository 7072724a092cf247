//! `psdiff check`: process counts (ps.monitor, PIKT, check_procs), per-
//! process CPU, and credential checks, evaluated on one snapshot.

pub mod actions;
pub mod load;
pub mod output;
pub mod range;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use regex::Regex;

use crate::render;
use crate::rules::Origin;
use crate::snapshot::Process;
use range::{Bounds, NagiosRange};

/// One compiled check.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    /// Where it was written; `None` for a `NAME:MIN-MAX` argument.
    pub origin: Option<Origin>,
    pub matcher: Matcher,
    pub kind: Kind,
    pub on_warn: Option<actions::Actions>,
    pub on_crit: Option<actions::Actions>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// How many processes match: `count` (MIN-MAX, critical when
    /// outside), `warn` and `crit` (Nagios ranges), per user or in all.
    Count {
        bounds: Option<Bounds>,
        warn: Option<NagiosRange>,
        crit: Option<NagiosRange>,
        per_user: bool,
    },
    /// Each matching process's CPU use over the sampling interval.
    Cpu { max_percent: f64, allow: Allow },
    /// Each matching process's ids.
    Credential { test: Credential, allow: Allow },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A real, effective or saved gid is 0 while no uid is 0.
    Gid0NotUid0,
    /// Real, effective and saved ids disagree.
    IdsDiffer,
}

/// Users and commands a per-process check leaves alone.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    pub uids: Vec<u32>,
    pub commands: Vec<String>,
}

impl Allow {
    fn allows(&self, sample: &Sample, i: usize) -> bool {
        self.uids.contains(&sample.processes[i].uids.effective)
            || sample.names[i]
                .iter()
                .any(|n| self.commands.iter().any(|c| c == n))
    }
}

/// Which processes a check looks at; every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub command: Option<Command>,
    pub comm: Option<String>,
    pub argv0: Option<String>,
    pub exe: Option<String>,
    pub cmdline: Option<Regex>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub selinux: Option<Regex>,
    pub selinux_domain: Option<String>,
    pub state: Option<String>,
    pub parent: Option<Regex>,
}

/// ps.monitor's NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Matches comm, argv[0] or argv[0]'s basename; for an interpreter,
    /// the script's basename.
    Name(String),
    /// A NAME with a `/`: /proc/PID/exe, which a user cannot fake.
    Exe(String),
    /// `*`: each command that no other check names, counted on its own.
    Any,
}

impl Matcher {
    pub fn needs_exe(&self) -> bool {
        self.exe.is_some() || matches!(self.command, Some(Command::Exe(_)))
    }

    pub fn needs_selinux(&self) -> bool {
        self.selinux.is_some() || self.selinux_domain.is_some()
    }

    fn matches(&self, sample: &Sample, i: usize) -> bool {
        let process = &sample.processes[i];
        let printable_argv0 = || {
            process
                .argv()
                .next()
                .map(render::printable)
                .unwrap_or_default()
        };
        self.command.as_ref().is_none_or(|c| match c {
            Command::Name(name) => sample.names[i].iter().any(|n| n == name),
            Command::Exe(path) => process.exe_path() == Some(path.as_str()),
            Command::Any => true,
        }) && self
            .comm
            .as_deref()
            .is_none_or(|c| render::printable(&process.comm) == c)
            && self.argv0.as_deref().is_none_or(|a| printable_argv0() == a)
            && self
                .exe
                .as_deref()
                .is_none_or(|e| process.exe_path() == Some(e))
            && self.uid.is_none_or(|u| process.uids.effective == u)
            && self.gid.is_none_or(|g| process.gids.effective == g)
            && self
                .state
                .as_deref()
                .is_none_or(|s| s.contains(process.state))
            && self
                .cmdline
                .as_ref()
                .is_none_or(|re| re.is_match(sample.cmdline(i)))
            && self
                .parent
                .as_ref()
                .is_none_or(|re| sample.parent[i].is_some_and(|p| re.is_match(sample.cmdline(p))))
            && self
                .selinux
                .as_ref()
                .is_none_or(|re| process.selinux.as_deref().is_some_and(|c| re.is_match(c)))
            && self
                .selinux_domain
                .as_deref()
                .is_none_or(|d| process.selinux.as_deref().and_then(selinux_type) == Some(d))
    }
}

/// The type (domain) of an SELinux context `user:role:type:level`.
fn selinux_type(context: &str) -> Option<&str> {
    context.split(':').nth(2)
}

/// Interpreters whose process is named after the script they run.
fn is_interpreter(name: &str) -> bool {
    let versioned = |prefix: &str| {
        name.strip_prefix(prefix).is_some_and(|v| {
            !v.is_empty()
                && v.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    matches!(
        name,
        "perl" | "python" | "python2" | "python3" | "ruby" | "bash" | "sh"
    ) || versioned("python3.")
        || versioned("python2.")
        || versioned("lua")
        || versioned("perl5.")
        || versioned("ruby")
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The names ps.monitor-style NAMEs match: comm, argv[0] and its basename;
/// for an interpreter running a script, only the script's basename.
pub fn names(process: &Process) -> Vec<String> {
    let comm = render::printable(&process.comm);
    let mut argv = process.argv().map(render::printable);
    let Some(argv0) = argv.next() else {
        return vec![comm];
    };
    if is_interpreter(&comm) || is_interpreter(basename(&argv0)) {
        // The script is the first argument that is not an option; `-m
        // MODULE` names a module; `-c`/`-e` code has no name of its own.
        while let Some(arg) = argv.next() {
            match arg.as_str() {
                "-c" | "-e" | "-E" => break,
                "-m" => return argv.next().map(|m| vec![m]).unwrap_or_default(),
                a if a.starts_with('-') || a.is_empty() => continue,
                script => return vec![basename(script).to_string()],
            }
        }
    }
    let base = basename(&argv0).to_string();
    let mut names = vec![comm];
    for name in [argv0, base] {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Critical,
}

/// What a check found in one snapshot.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub check: usize,
    /// Set when the check cannot apply here (SELinux off).
    pub not_applicable: Option<String>,
    pub groups: Vec<Group>,
}

impl Outcome {
    /// The worst level among the groups.
    pub fn level(&self) -> Option<Level> {
        self.groups.iter().filter_map(|g| g.level).max()
    }
}

/// One counted group (all matches, one user, or one command), or one
/// offending process for a per-process check.
#[derive(Debug, Clone)]
pub struct Group {
    /// `NAME`, `NAME@USER`, `NAME[COMMAND]` or `NAME:PID`.
    pub label: String,
    pub user: Option<Arc<str>>,
    pub value: f64,
    pub level: Option<Level>,
    /// The failure as ps.monitor prints it, e.g. `sshd:0 < 1 (1-)`.
    pub detail: Option<String>,
    pub pids: Vec<u32>,
    /// Processes the `kill` action may act on: for a count, only when it
    /// is above its maximum.
    pub killable: bool,
    /// Nagios perfdata thresholds, for counts.
    pub perf: Option<(String, String)>,
}

/// Counted groups by (command, user): the user's name and the pids.
type Groups = BTreeMap<(String, String), (Option<Arc<str>>, Vec<u32>)>;

/// A snapshot prepared for evaluating many checks: each process's names,
/// parent and (when first asked) cmdline are worked out once, not once per
/// check.
pub struct Sample<'a> {
    pub processes: &'a [Process],
    /// Per process (same index), CPU % over the interval, when measured.
    pub cpu: Option<&'a [Option<f64>]>,
    pub selinux_enabled: bool,
    names: Vec<Vec<String>>,
    parent: Vec<Option<usize>>,
    cmdlines: Vec<std::cell::OnceCell<String>>,
}

impl<'a> Sample<'a> {
    pub fn new(
        processes: &'a [Process],
        cpu: Option<&'a [Option<f64>]>,
        selinux_enabled: bool,
    ) -> Self {
        let index: std::collections::HashMap<u32, usize> = processes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.pid, i))
            .collect();
        Sample {
            processes,
            cpu,
            selinux_enabled,
            names: processes.iter().map(names).collect(),
            parent: processes
                .iter()
                .map(|p| index.get(&p.ppid).copied())
                .collect(),
            cmdlines: processes
                .iter()
                .map(|_| std::cell::OnceCell::new())
                .collect(),
        }
    }

    fn cmdline(&self, i: usize) -> &str {
        self.cmdlines[i].get_or_init(|| render::cmdline(&self.processes[i]))
    }

    /// The one name a process is counted under by a `*` check.
    fn canonical_name(&self, i: usize) -> &str {
        self.names[i].first().map_or("", String::as_str)
    }
}

/// Evaluates `checks[index]`. `named` holds every command that a check
/// names, which a `*` check leaves out.
pub fn evaluate(
    checks: &[Check],
    index: usize,
    sample: &Sample,
    named: &HashSet<String>,
) -> Outcome {
    let check = &checks[index];
    let mut outcome = Outcome {
        check: index,
        not_applicable: None,
        groups: Vec::new(),
    };
    if check.matcher.needs_selinux() && !sample.selinux_enabled {
        outcome.not_applicable = Some("SELinux is not enabled on this host".into());
        return outcome;
    }
    let matching: Vec<usize> = (0..sample.processes.len())
        .filter(|&i| {
            check.matcher.matches(sample, i)
                && (check.matcher.command != Some(Command::Any)
                    || !sample.names[i].iter().any(|n| named.contains(n)))
        })
        .collect();
    match &check.kind {
        Kind::Count {
            bounds,
            warn,
            crit,
            per_user,
        } => {
            let mut groups: Groups = BTreeMap::new();
            let wildcard = check.matcher.command == Some(Command::Any);
            for &i in &matching {
                let p = &sample.processes[i];
                let command = if wildcard {
                    sample.canonical_name(i).to_string()
                } else {
                    String::new()
                };
                let user = if *per_user {
                    Some(p.user.clone())
                } else {
                    None
                };
                let key = (command, user.as_deref().unwrap_or("").to_string());
                groups
                    .entry(key)
                    .or_insert_with(|| (user, Vec::new()))
                    .1
                    .push(p.pid);
            }
            if groups.is_empty() && !wildcard && !*per_user {
                groups.insert((String::new(), String::new()), (None, Vec::new()));
            }
            for ((command, _), (user, pids)) in groups {
                let mut label = check.name.clone();
                if !command.is_empty() {
                    label = format!("{label}[{command}]");
                }
                if let Some(u) = &user {
                    label = format!("{label}@{u}");
                }
                let count = pids.len() as u64;
                let value = count as f64;
                let (mut level, mut detail, mut killable) = (None, None, false);
                if let Some((sign, bound)) = bounds.and_then(|b| b.violation(count)) {
                    level = Some(Level::Critical);
                    detail = Some(format!(
                        "{label}:{count} {sign} {bound} ({})",
                        bounds.unwrap()
                    ));
                    killable = sign == '>';
                } else if let Some(r) = crit.as_ref().filter(|r| r.alerts(value)) {
                    level = Some(Level::Critical);
                    detail = Some(format!("{label}:{count} outside the critical range {r}"));
                    killable = r.end.is_some_and(|e| value > e) || r.inside;
                } else if let Some(r) = warn.as_ref().filter(|r| r.alerts(value)) {
                    level = Some(Level::Warning);
                    detail = Some(format!("{label}:{count} outside the warning range {r}"));
                    killable = r.end.is_some_and(|e| value > e) || r.inside;
                }
                let crit_text = bounds
                    .map(|b| b.as_nagios())
                    .or(crit.as_ref().map(|r| r.to_string()));
                outcome.groups.push(Group {
                    label,
                    user,
                    value,
                    level,
                    detail,
                    pids,
                    killable,
                    perf: Some((
                        warn.as_ref().map_or(String::new(), |r| r.to_string()),
                        crit_text.unwrap_or_default(),
                    )),
                });
            }
        }
        Kind::Cpu { max_percent, allow } => {
            let Some(cpu) = sample.cpu else {
                outcome.not_applicable = Some("CPU was not sampled".into());
                return outcome;
            };
            for &i in &matching {
                let p = &sample.processes[i];
                let Some(percent) = cpu[i] else { continue };
                if percent > *max_percent && !allow.allows(sample, i) {
                    let name = sample.canonical_name(i);
                    outcome.groups.push(offender(
                        check,
                        p,
                        percent,
                        format!(
                            "{}:{} {name} (user {}) used {percent:.1}% CPU > {max_percent}%",
                            check.name, p.pid, p.user
                        ),
                    ));
                }
            }
        }
        Kind::Credential { test, allow } => {
            for &i in &matching {
                let p = &sample.processes[i];
                let ids = |x: &crate::snapshot::Ids| [x.real, x.effective, x.saved];
                let (uids, gids) = (ids(&p.uids), ids(&p.gids));
                let failed = match test {
                    Credential::Gid0NotUid0 => gids.contains(&0) && !uids.contains(&0),
                    Credential::IdsDiffer => {
                        uids.iter().any(|&u| u != uids[0]) || gids.iter().any(|&g| g != gids[0])
                    }
                };
                if failed && !p.kernel_thread && !allow.allows(sample, i) {
                    let why = format!(
                        "{}:{} {} (user {}) has uids {}/{}/{} and gids {}/{}/{} (real/effective/saved)",
                        check.name,
                        p.pid,
                        sample.canonical_name(i),
                        p.user,
                        uids[0],
                        uids[1],
                        uids[2],
                        gids[0],
                        gids[1],
                        gids[2]
                    );
                    outcome.groups.push(offender(check, p, 1.0, why));
                }
            }
        }
    }
    outcome
}

/// A per-process finding; per-process checks are critical.
fn offender(check: &Check, p: &Process, value: f64, detail: String) -> Group {
    Group {
        label: format!("{}:{}", check.name, p.pid),
        user: Some(p.user.clone()),
        value,
        level: Some(Level::Critical),
        detail: Some(detail),
        pids: vec![p.pid],
        killable: true,
        perf: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Ids;

    fn process(comm: &str, argv: &[&str]) -> Process {
        Process {
            pid: 10,
            ppid: 1,
            user: Arc::from("root"),
            uids: Ids::default(),
            gids: Ids::default(),
            comm: comm.as_bytes().to_vec(),
            exe: None,
            cmdline: argv.join("\0").into_bytes(),
            selinux: None,
            state: 'S',
            kernel_thread: false,
            start_time: 1,
            utime: 0,
            stime: 0,
            nice: 0,
            num_threads: 1,
        }
    }

    #[test]
    fn names_follow_ps_monitor() {
        assert_eq!(
            names(&process("sshd", &["/usr/sbin/sshd", "-D"])),
            ["sshd", "/usr/sbin/sshd"]
        );
        assert_eq!(
            names(&process(
                "python3",
                &["/usr/bin/python3", "-u", "/opt/app/worker.py"]
            )),
            ["worker.py"]
        );
        assert_eq!(
            names(&process(
                "perl",
                &["perl", "/usr/lib/mon/mon-local.d/ps.monitor"]
            )),
            ["ps.monitor"]
        );
        assert_eq!(names(&process("lua5.3", &["lua5.3", "x.lua"])), ["x.lua"]);
        assert_eq!(names(&process("bash", &["-bash"])), ["bash", "-bash"]);
        assert_eq!(names(&process("kworker/0:1", &[])), ["kworker/0:1"]);
        assert_eq!(
            names(&process("python3", &["python3", "-m", "http.server"])),
            ["http.server"]
        );
        assert_eq!(
            names(&process("python3", &["python3", "-c", "pass"])),
            ["python3"]
        );
        assert!(
            is_interpreter("python3.11") && !is_interpreter("python3.") && !is_interpreter("shx")
        );
    }
}
