//! `psdiff check`: process counts (ps.monitor, PIKT, check_procs), per-
//! process CPU, and credential checks, evaluated on one snapshot.

pub mod actions;
mod compile;
pub mod port;
pub mod range;
pub mod restarts;
mod storms;
pub mod usage;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::machine::Machine;
use crate::select::{Command, Population, Selector, Subjects};
use crate::snapshot::{Ids, Process};
pub use compile::{DEFAULT_GRACE, compile_all, needs_restart, parse_spec};
use range::{Bounds, NagiosRange};
pub use usage::Resource;
use usage::Usage;

/// One compiled check.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub selector: Selector,
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
        /// Resource ranges a process must be in to be counted (`state =
        /// "Z"` with `age = "1m:"`: zombies not reaped for a minute).
        only: Vec<Limit>,
    },
    /// Resources of each matching process, or their sum over the check.
    Resources {
        limits: Vec<Limit>,
        sum: bool,
        allow: Allow,
    },
    /// How many times the matched daemon's main processes were replaced
    /// within `within` seconds (kept in the ledger of `restarts`).
    Restarts {
        bounds: Bounds,
        within: f64,
        window: String,
    },
    /// How many matching programs started within `within` seconds, as
    /// the watcher journaled them (`storms.rs`), per command (and user).
    Starts {
        bounds: Bounds,
        within: f64,
        window: String,
        per_user: bool,
    },
    /// A listening socket held by a matched process, and what answers.
    Port {
        listen: Option<port::Listen>,
        probe: Option<port::Probe>,
    },
    /// Each matching process still running a deleted or replaced
    /// executable or library (needrestart, checkrestart).
    Deleted {
        allow: Allow,
        /// Files, or folders ending in `/`, left alone.
        allow_files: Vec<String>,
    },
    /// Each matching process's CPU use over the sampling interval.
    Cpu { max_percent: f64, allow: Allow },
    /// Each matching process's ids.
    Credential { test: Credential, allow: Allow },
}

/// A resource's warning and critical ranges.
#[derive(Debug, Clone)]
pub struct Limit {
    pub resource: Resource,
    pub warn: Option<NagiosRange>,
    pub crit: Option<NagiosRange>,
}

impl Kind {
    /// Whether its groups carry values worth graphing (perfdata, series).
    pub fn has_values(&self) -> bool {
        matches!(
            self,
            Kind::Count { .. }
                | Kind::Resources { .. }
                | Kind::Port { .. }
                | Kind::Restarts { .. }
                | Kind::Starts { .. }
        )
    }
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
            || sample
                .names(i)
                .iter()
                .any(|n| self.commands.iter().any(|c| c == n))
    }
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
    /// Nagios perfdata thresholds, for counts and resources.
    pub perf: Option<(String, String)>,
    /// The resource measured, for a resource check's group.
    pub resource: Option<Resource>,
}

/// A snapshot prepared for evaluating many checks: each process's parent,
/// and (when first asked) its names and cmdline are worked out once, not
/// once per check.
pub struct Sample<'a> {
    pub processes: &'a [Process],
    /// Per process (same index), CPU % over the interval, when measured.
    pub cpu: Option<&'a [Option<f64>]>,
    pub selinux_enabled: bool,
    usage: Usage,
    /// Where restarts are counted, when a check counts them.
    ledger: Option<&'a std::cell::RefCell<restarts::Ledger>>,
    population: Population<'a>,
    cmdlines: Vec<std::cell::OnceCell<String>>,
    /// The socket tables of each network namespace, read once for all
    /// `listen` checks.
    sockets: std::cell::RefCell<crate::sockets::SocketTables>,
    /// Every listening socket any process holds, with its holder: found
    /// when a `listen` check first fails, for all that fail.
    listeners: std::cell::OnceCell<Vec<(usize, crate::sockets::Socket)>>,
}

/// Every process's parent index, by index.
pub fn parents(processes: &[Process]) -> Vec<Option<usize>> {
    let index: std::collections::HashMap<u32, usize> = processes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.pid, i))
        .collect();
    processes
        .iter()
        .map(|p| index.get(&p.ppid).copied())
        .collect()
}

impl<'a> Sample<'a> {
    /// `parents` as `parents(processes)` gives them.
    pub fn new(
        processes: &'a [Process],
        parents: &'a [Option<usize>],
        machine: &'a Machine,
        cpu: Option<&'a [Option<f64>]>,
        selinux_enabled: bool,
        proc_root: &std::path::Path,
        ledger: Option<&'a std::cell::RefCell<restarts::Ledger>>,
    ) -> Self {
        Sample {
            processes,
            cpu,
            selinux_enabled,
            usage: Usage::new(proc_root),
            ledger,
            population: Population::new(processes, parents, machine),
            cmdlines: processes
                .iter()
                .map(|_| std::cell::OnceCell::new())
                .collect(),
            sockets: Default::default(),
            listeners: std::cell::OnceCell::new(),
        }
    }

    /// Reads `resources` of the processes `matching` ahead (see
    /// `Usage::prefetch`).
    fn prefetch(&self, matching: &[usize], resources: &[Resource]) {
        let processes: Vec<&Process> = matching.iter().map(|&i| &self.processes[i]).collect();
        self.usage.prefetch(&processes, resources);
    }

    /// The sockets process `i` holds.
    fn sockets_of(&self, i: usize) -> Vec<crate::sockets::Socket> {
        let Some(dir) = self.usage.process_dir(self.processes[i].pid) else {
            return Vec::new();
        };
        let held = self.sockets.borrow_mut().held_by(&dir);
        held.into_iter().map(|(_, socket)| socket).collect()
    }

    /// Every listening socket of every process, in process order.
    fn listeners(&self) -> &[(usize, crate::sockets::Socket)] {
        self.listeners.get_or_init(|| {
            (0..self.processes.len())
                .flat_map(|i| {
                    self.sockets_of(i)
                        .into_iter()
                        .filter(|s| s.is_listening())
                        .map(move |s| (i, s))
                })
                .collect()
        })
    }

    fn names(&self, i: usize) -> &[String] {
        self.population.names(i)
    }

    /// The one name a process is counted under by a `*` check.
    fn canonical_name(&self, i: usize) -> &str {
        self.names(i).first().map_or("", String::as_str)
    }
}

impl Subjects for Sample<'_> {
    fn population(&self) -> &Population<'_> {
        &self.population
    }

    fn cmdline(&self, i: usize) -> &str {
        self.cmdlines[i].get_or_init(|| crate::render::cmdline(&self.processes[i]))
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
    if check.selector.needs().selinux && !sample.selinux_enabled {
        outcome.not_applicable = Some("SELinux is not enabled on this host".into());
        return outcome;
    }
    let wildcard = check.selector.command() == Some(&Command::Any);
    let matching: Vec<usize> = sample
        .population
        .candidates(&check.selector)
        .filter(|&i| {
            check.selector.matches(sample, i)
                && (!wildcard || !sample.names(i).iter().any(|n| named.contains(n)))
        })
        .collect();
    let groups = match &check.kind {
        Kind::Count { .. } => Ok(counted(check, sample, matching, wildcard)),
        Kind::Resources { limits, sum, allow } => {
            Ok(over_limits(check, sample, matching, limits, *sum, allow))
        }
        Kind::Restarts {
            bounds,
            within,
            window,
        } => restarted(check, sample, &matching, *bounds, *within, window),
        Kind::Starts {
            bounds,
            within,
            window,
            per_user,
        } => storms::started(check, sample, *bounds, *within, window, *per_user),
        Kind::Port { listen, probe } => {
            let listening = listen
                .as_ref()
                .map(|listen| listening(check, sample, &matching, listen));
            let answering = probe.as_ref().map(|probe| answering(check, probe));
            Ok(listening.into_iter().chain(answering).collect())
        }
        Kind::Deleted { allow, allow_files } => Ok(running_deleted(
            check,
            sample,
            &matching,
            allow,
            allow_files,
        )),
        Kind::Cpu { max_percent, allow } => over_cpu(check, sample, &matching, *max_percent, allow),
        Kind::Credential { test, allow } => {
            Ok(wrong_credentials(check, sample, &matching, *test, allow))
        }
    };
    match groups {
        Ok(groups) => outcome.groups = groups,
        Err(why) => outcome.not_applicable = Some(why),
    }
    outcome
}

/// A count check: one group per command (and user), after the `only`
/// limits have left out the processes they exclude.
fn counted(check: &Check, sample: &Sample, mut matching: Vec<usize>, wildcard: bool) -> Vec<Group> {
    let Kind::Count {
        bounds,
        warn,
        crit,
        per_user,
        only,
    } = &check.kind
    else {
        return Vec::new();
    };
    if !only.is_empty() {
        let resources: Vec<Resource> = only.iter().map(|l| l.resource).collect();
        sample.prefetch(&matching, &resources);
    }
    matching.retain(|&i| {
        only.iter().all(|l| {
            sample
                .usage
                .of(&sample.processes[i], l.resource)
                .is_some_and(|v| l.crit.as_ref().is_none_or(|r| !r.alerts(v)))
        })
    });
    count_groups(sample, &matching, wildcard, *per_user)
        .into_iter()
        .map(|((command, _), (user, pids))| {
            let mut label = check.name.clone();
            if !command.is_empty() {
                label = format!("{label}[{command}]");
            }
            if let Some(u) = &user {
                label = format!("{label}@{u}");
            }
            judge_count(label, user, pids, *bounds, warn, crit)
        })
        .collect()
}

/// A restarts check: the matched main processes (whose parent it does
/// not match) against the ledger, and systemd's NRestarts of their units.
fn restarted(
    check: &Check,
    sample: &Sample,
    matching: &[usize],
    bounds: Bounds,
    within: f64,
    window: &str,
) -> Result<Vec<Group>, String> {
    let Some(ledger) = sample.ledger else {
        return Err("restarts are counted by `psdiff check`".into());
    };
    let matched: HashSet<usize> = matching.iter().copied().collect();
    let mains: Vec<usize> = matching
        .iter()
        .copied()
        .filter(|&i| {
            sample
                .population
                .parent(i)
                .is_none_or(|p| !matched.contains(&p))
        })
        .collect();
    let units: BTreeMap<String, u64> = mains
        .iter()
        .filter_map(|&i| sample.processes[i].cgroup.as_ref()?.unit.clone())
        .filter(|u| u.ends_with(".service"))
        .filter_map(|u| Some((u.clone(), restarts::systemd_restarts(&u)?)))
        .collect();
    let seen: Vec<(u32, u64)> = mains
        .iter()
        .map(|&i| (sample.processes[i].pid, sample.processes[i].start_time))
        .collect();
    let signatures: Vec<restarts::Signature> = mains
        .iter()
        .filter_map(|&i| {
            let p = &sample.processes[i];
            Some(restarts::Signature {
                exe: p.exe_path()?.to_string(),
                argv: crate::render::cmdline(p),
                unit: p.cgroup.as_ref().and_then(|c| c.unit.clone()),
                uid: p.uids.effective,
            })
        })
        .collect();
    let count = ledger
        .borrow_mut()
        .observe(&check.name, seen, units, within, &signatures) as u64;
    let label = format!("{}:restarts", check.name);
    let detail = bounds
        .violation(count)
        .map(|(sign, bound)| format!("{label}:{count} {sign} {bound} ({bounds}) within {window}"));
    Ok(vec![Group {
        label,
        user: None,
        value: count as f64,
        level: detail.as_ref().map(|_| Level::Critical),
        detail,
        pids: mains.iter().map(|&i| sample.processes[i].pid).collect(),
        killable: false,
        perf: Some((String::new(), bounds.as_nagios())),
        resource: None,
    }])
}

/// A deleted-files check: each matched process that runs or maps a file
/// deleted or replaced since it started, but for the allowed ones.
fn running_deleted(
    check: &Check,
    sample: &Sample,
    matching: &[usize],
    allow: &Allow,
    allow_files: &[String],
) -> Vec<Group> {
    let mut groups = Vec::new();
    for &i in matching {
        let p = &sample.processes[i];
        if p.kernel_thread || allow.allows(sample, i) {
            continue;
        }
        let files: Vec<String> = sample
            .usage
            .deleted_files(p)
            .into_iter()
            .filter(|f| {
                !allow_files
                    .iter()
                    .any(|a| f == a || (a.ends_with('/') && f.starts_with(a.as_str())))
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        let unit = p
            .cgroup
            .as_ref()
            .and_then(|c| c.unit.as_deref())
            .map_or(String::new(), |u| format!(", unit {u}"));
        let more = match files.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        let why = format!(
            "{}:{} {} (user {}{unit}) runs deleted {}{more}: restart it",
            check.name,
            p.pid,
            sample.canonical_name(i),
            p.user,
            files[0],
        );
        groups.push(offender(check, p, files.len() as f64, why));
    }
    groups
}

/// Counted groups by (command, user): the user's name and the pids.
type Groups = BTreeMap<(String, String), (Option<Arc<str>>, Vec<u32>)>;

/// The matching processes in groups: one per command for a `*` check, one
/// per user with `per = "user"`, else one. A plain count with nothing
/// matching is one empty group, so that a minimum can fail.
fn count_groups(sample: &Sample, matching: &[usize], wildcard: bool, per_user: bool) -> Groups {
    let mut groups: Groups = BTreeMap::new();
    for &i in matching {
        let p = &sample.processes[i];
        let command = if wildcard {
            sample.canonical_name(i).to_string()
        } else {
            String::new()
        };
        let user = per_user.then(|| p.user.clone());
        let key = (command, user.as_deref().unwrap_or("").to_string());
        groups
            .entry(key)
            .or_insert_with(|| (user, Vec::new()))
            .1
            .push(p.pid);
    }
    if groups.is_empty() && !wildcard && !per_user {
        groups.insert((String::new(), String::new()), (None, Vec::new()));
    }
    groups
}

/// A group's count against the check's bounds: ps.monitor's MIN-MAX
/// first, then the Nagios critical and warning ranges.
fn judge_count(
    label: String,
    user: Option<Arc<str>>,
    pids: Vec<u32>,
    bounds: Option<Bounds>,
    warn: &Option<NagiosRange>,
    crit: &Option<NagiosRange>,
) -> Group {
    let count = pids.len() as u64;
    let value = count as f64;
    let above = |r: &NagiosRange| r.end.is_some_and(|e| value > e) || r.inside;
    let (level, detail, killable) =
        if let Some((sign, bound)) = bounds.and_then(|b| b.violation(count)) {
            let b = bounds.expect("a violation has bounds");
            (
                Some(Level::Critical),
                Some(format!("{label}:{count} {sign} {bound} ({b})")),
                sign == '>',
            )
        } else if let Some(r) = crit.as_ref().filter(|r| r.alerts(value)) {
            (
                Some(Level::Critical),
                Some(format!("{label}:{count} outside the critical range {r}")),
                above(r),
            )
        } else if let Some(r) = warn.as_ref().filter(|r| r.alerts(value)) {
            (
                Some(Level::Warning),
                Some(format!("{label}:{count} outside the warning range {r}")),
                above(r),
            )
        } else {
            (None, None, false)
        };
    let crit_text = bounds
        .map(|b| b.as_nagios())
        .or(crit.as_ref().map(|r| r.to_string()));
    Group {
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
        resource: None,
    }
}

/// Whether a matched process listens at `listen`; if none does, who
/// does instead, in any network namespace.
fn listening(check: &Check, sample: &Sample, matching: &[usize], listen: &port::Listen) -> Group {
    let pids: Vec<u32> = matching
        .iter()
        .filter(|&&i| sample.sockets_of(i).iter().any(|s| listen.accepts(s)))
        .map(|&i| sample.processes[i].pid)
        .collect();
    let label = format!("{}:listen", check.name);
    let detail = pids.is_empty().then(|| {
        let mut holders: Vec<usize> = sample
            .listeners()
            .iter()
            .filter(|(i, s)| !matching.contains(i) && listen.accepts(s))
            .map(|(i, _)| *i)
            .collect();
        holders.dedup();
        let others: Vec<String> = holders
            .into_iter()
            .take(3)
            .map(|i| {
                let p = &sample.processes[i];
                format!(
                    "pid {} ({}, user {})",
                    p.pid,
                    sample.canonical_name(i),
                    p.user
                )
            })
            .collect();
        let instead = if others.is_empty() {
            "nothing listens there".to_string()
        } else {
            format!("{} listens there instead", others.join(", "))
        };
        format!(
            "{}: no process it matches listens on {listen} ({} matched); {instead}",
            check.name,
            matching.len()
        )
    });
    Group {
        label,
        user: None,
        value: pids.len() as f64,
        level: detail.as_ref().map(|_| Level::Critical),
        detail,
        pids,
        killable: false,
        perf: Some((String::new(), "1:".into())),
        resource: None,
    }
}

/// Whether the probe's answer is what it should be; the value is the
/// seconds it took.
fn answering(check: &Check, probe: &port::Probe) -> Group {
    let (value, detail) = match probe.run() {
        Ok(took) => (took.as_secs_f64(), None),
        Err(what) => (
            probe.timeout.as_secs_f64(),
            Some(format!("{}: {what}", check.name)),
        ),
    };
    Group {
        label: format!("{}:answer", check.name),
        user: None,
        value,
        level: detail.as_ref().map(|_| Level::Critical),
        detail,
        pids: Vec::new(),
        killable: false,
        perf: None,
        resource: None,
    }
}

/// One group per matched process and limit, or per limit with `sum`.
fn resource_groups(
    check: &Check,
    sample: &Sample,
    matching: &[usize],
    limits: &[Limit],
    sum: bool,
) -> Vec<Group> {
    if sum {
        let pids: Vec<u32> = matching.iter().map(|&i| sample.processes[i].pid).collect();
        return limits
            .iter()
            .map(|limit| {
                let value: f64 = matching
                    .iter()
                    .filter_map(|&i| sample.usage.of(&sample.processes[i], limit.resource))
                    .sum();
                let label = format!("{}:{}", check.name, limit.resource.key());
                judge_limit(label, None, pids.clone(), value, limit, false)
            })
            .collect();
    }
    let mut groups = Vec::new();
    // Process by process, so each one's folder is opened once.
    for &i in matching {
        let p = &sample.processes[i];
        for limit in limits {
            let Some(value) = sample.usage.of(p, limit.resource) else {
                continue; // it ended, or is not ours to read
            };
            let label = format!("{}:{}:{}", check.name, p.pid, limit.resource.key());
            groups.push(judge_limit(
                label,
                Some(p.user.clone()),
                vec![p.pid],
                value,
                limit,
                true,
            ));
        }
    }
    groups
}

/// A resource's value against its critical, then its warning range.
fn judge_limit(
    label: String,
    user: Option<Arc<str>>,
    pids: Vec<u32>,
    value: f64,
    limit: &Limit,
    killable: bool,
) -> Group {
    let shown = limit.resource.show(value);
    let (level, detail) = if let Some(r) = limit.crit.as_ref().filter(|r| r.alerts(value)) {
        (
            Some(Level::Critical),
            Some(format!("{label} {shown} outside the critical range {r}")),
        )
    } else if let Some(r) = limit.warn.as_ref().filter(|r| r.alerts(value)) {
        (
            Some(Level::Warning),
            Some(format!("{label} {shown} outside the warning range {r}")),
        )
    } else {
        (None, None)
    };
    let plain =
        |r: &Option<NagiosRange>| r.as_ref().map_or(String::new(), |r| r.plain().to_string());
    Group {
        label,
        user,
        value,
        killable: killable && level.is_some(),
        level,
        detail,
        pids,
        perf: Some((plain(&limit.warn), plain(&limit.crit))),
        resource: Some(limit.resource),
    }
}

/// A resources check: the matching processes (no kernel threads, none
/// allowed) over a limit, each alone or, with `sum`, as one.
fn over_limits(
    check: &Check,
    sample: &Sample,
    mut matching: Vec<usize>,
    limits: &[Limit],
    sum: bool,
    allow: &Allow,
) -> Vec<Group> {
    matching.retain(|&i| !sample.processes[i].kernel_thread && !allow.allows(sample, i));
    let resources: Vec<Resource> = limits.iter().map(|l| l.resource).collect();
    sample.prefetch(&matching, &resources);
    resource_groups(check, sample, &matching, limits, sum)
}

/// A CPU check: each matching process over `max_percent` over the sample.
fn over_cpu(
    check: &Check,
    sample: &Sample,
    matching: &[usize],
    max_percent: f64,
    allow: &Allow,
) -> Result<Vec<Group>, String> {
    let Some(cpu) = sample.cpu else {
        return Err("CPU was not sampled".into());
    };
    Ok(matching
        .iter()
        .filter_map(|&i| {
            let p = &sample.processes[i];
            let percent = cpu[i]?;
            (percent > max_percent && !allow.allows(sample, i)).then(|| {
                let name = sample.canonical_name(i);
                let why = format!(
                    "{}:{} {name} (user {}) used {percent:.1}% CPU > {max_percent}%",
                    check.name, p.pid, p.user
                );
                offender(check, p, percent, why)
            })
        })
        .collect())
}

/// A credential check: each matching process whose ids fail `test`.
fn wrong_credentials(
    check: &Check,
    sample: &Sample,
    matching: &[usize],
    test: Credential,
    allow: &Allow,
) -> Vec<Group> {
    matching
        .iter()
        .filter(|&&i| {
            let p = &sample.processes[i];
            credential_fails(test, p) && !p.kernel_thread && !allow.allows(sample, i)
        })
        .map(|&i| {
            let p = &sample.processes[i];
            let ids = |x: &Ids| format!("{}/{}/{}", x.real, x.effective, x.saved);
            let why = format!(
                "{}:{} {} (user {}) has uids {} and gids {} (real/effective/saved)",
                check.name,
                p.pid,
                sample.canonical_name(i),
                p.user,
                ids(&p.uids),
                ids(&p.gids),
            );
            offender(check, p, 1.0, why)
        })
        .collect()
}

fn credential_fails(test: Credential, p: &Process) -> bool {
    let ids = |x: &Ids| [x.real, x.effective, x.saved];
    let (uids, gids) = (ids(&p.uids), ids(&p.gids));
    match test {
        Credential::Gid0NotUid0 => gids.contains(&0) && !uids.contains(&0),
        Credential::IdsDiffer => {
            uids.iter().any(|&u| u != uids[0]) || gids.iter().any(|&g| g != gids[0])
        }
    }
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
        resource: None,
    }
}
