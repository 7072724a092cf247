//! Storms: `starts = "0-30"` with `within = "1m"` counts the programs
//! the check matches that started in the window, from the watcher's
//! journal, so PIKT's imapd and ypserv storms are caught while they
//! happen, not only when a poll lands in one. The journaled programs are
//! matched by the same selector as running ones, on what the journal
//! recorded when each started (exe, comm, argv, user, cgroup); they are
//! gone, so conditions on their parent, resources or state see nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::range::Bounds;
use super::{Check, Group, Level, Sample};
use crate::journal::Started;
use crate::select::{Population, Subjects};
use crate::snapshot::{Cgroup, Ids, Process};

/// An id no user or group has, for what the journal did not record.
const UNKNOWN_ID: u32 = u32::MAX;

pub fn started(
    check: &Check,
    sample: &Sample,
    bounds: Bounds,
    within: f64,
    window: &str,
    per_user: bool,
) -> Result<Vec<Group>, String> {
    let journal = sample
        .ledger
        .and_then(|l| {
            l.borrow()
                .journal()
                .map(|j| j.started_since(crate::clock::unix_now() - within))
        })
        .ok_or("starts are counted from the journal of `psdiff watch`, which is not running")?
        .map_err(|e| e.to_string())?;
    let processes: Vec<Process> = journal.iter().map(as_process).collect();
    let parents = vec![None; processes.len()];
    let ended = Ended {
        population: Population::new(&processes, &parents, sample.population.machine),
        cmdlines: processes.iter().map(crate::render::cmdline).collect(),
    };
    // What the journal holds was read from the kernel as each started;
    // a strict selector's look at /proc would find nothing, or a reused pid.
    let mut selector = check.selector.clone();
    selector.strict = false;
    let mut groups: BTreeMap<(String, Option<Arc<str>>), Vec<u32>> = BTreeMap::new();
    for (i, process) in processes.iter().enumerate() {
        if selector.matches(&ended, i) {
            let command = crate::render::printable(&process.comm);
            let user = per_user.then(|| process.user.clone());
            groups.entry((command, user)).or_default().push(process.pid);
        }
    }
    if groups.is_empty() {
        groups.insert((String::new(), None), Vec::new());
    }
    Ok(groups
        .into_iter()
        .map(|((command, user), pids)| {
            let mut label = check.name.clone();
            if !command.is_empty() {
                label = format!("{label}[{command}]");
            }
            if let Some(u) = &user {
                label = format!("{label}@{u}");
            }
            let count = pids.len() as u64;
            let detail = bounds.violation(count).map(|(sign, bound)| {
                format!("{label}:starts:{count} {sign} {bound} ({bounds}) within {window}")
            });
            Group {
                label: format!("{label}:starts"),
                user,
                value: count as f64,
                level: detail.as_ref().map(|_| Level::Critical),
                detail,
                pids,
                killable: false,
                perf: Some((String::new(), bounds.as_nagios())),
                resource: None,
            }
        })
        .collect())
}

/// The journaled programs as a population the selector can read.
struct Ended<'a> {
    population: Population<'a>,
    cmdlines: Vec<String>,
}

impl Subjects for Ended<'_> {
    fn population(&self) -> &Population<'_> {
        &self.population
    }

    fn cmdline(&self, i: usize) -> &str {
        &self.cmdlines[i]
    }
}

/// A journaled start as a `Process`: what was recorded, and ids no one
/// has for what was not (the journal keeps the effective uid only).
fn as_process(started: &Started) -> Process {
    let uid = started.uid.unwrap_or(UNKNOWN_ID);
    let unknown = Ids {
        real: UNKNOWN_ID,
        effective: UNKNOWN_ID,
        saved: UNKNOWN_ID,
        fs: UNKNOWN_ID,
    };
    Process {
        pid: started.pid,
        ppid: started.ppid,
        pgrp: 0,
        user: Arc::from(started.user.as_deref().unwrap_or("?")),
        uids: Ids {
            effective: uid,
            ..unknown
        },
        gids: unknown,
        comm: started.comm.as_deref().unwrap_or("").as_bytes().into(),
        exe: started.exe.as_deref().map(|e| Path::new(e).into()),
        selinux: None,
        cgroup: started
            .cgroup
            .as_deref()
            .map(|c| Arc::new(Cgroup::parse(c))),
        disguised: None,
        cmdline: started
            .argv
            .as_deref()
            .unwrap_or("")
            .replace(' ', "\0")
            .into_bytes()
            .into(),
        state: 'X',
        kernel_thread: false,
        start_time: started.start_ticks,
        utime: 0,
        stime: 0,
        nice: 0,
        num_threads: 1,
        attested: None,
    }
}
