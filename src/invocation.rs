//! psdiff's own invocation: the processes that exist only because
//! monitoring is running psdiff right now. NRPE forks a handler per
//! request (and re-parents it under INIT), which runs `sh -c psdiff ...`;
//! a shell runs `psdiff show-extra | cut -c1-150`; Nagios asks for the
//! missing and the extra processes at the same moment. None of them is an
//! alarm.
//!
//! What counts, and why no user can use it to hide a process:
//! - psdiff's ancestors that started at most `WINDOW` before it (the
//!   invoker's request handler and shells, forked for this request a
//!   moment before; never a long-lived daemon, which is older, nor pid 1),
//!   and its pipeline partners: siblings that started as recently and
//!   read the pipe psdiff writes its output (or errors) to, or write the
//!   pipe it reads (`| cut`), or likewise to such a partner, which the
//!   kernel attests (sharing an inherited output pipe is no partnership);
//!   and, for another run, what its ancestors ran before it started
//!   (sudo's PAM helper), which only the watcher sees;
//! - the same for other psdiff runs of the same executable, under the
//!   same effective user, that started less than `RUN` ago (a concurrent
//!   check), but not `psdiff watch` or `psdiff serve`, which are daemons. A user cannot run processes as the monitoring account, and
//!   a psdiff of their own only hides their tree from their own run.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::snapshot::{ProcRoot, Process};

/// How long before psdiff its invoker's processes may have started: they
/// fork and exec one another within milliseconds; a daemon that started
/// a moment before psdiff (right after boot) is hidden for that run only.
const WINDOW_SECONDS: u64 = 2;
/// How young another psdiff must be to count as a concurrent check (and
/// not a long-running `psdiff serve`).
const RUN_SECONDS: u64 = 60;

/// This psdiff, as /proc says.
#[derive(Debug, Clone)]
pub struct Me {
    pub ppid: u32,
    pub start_time: u64,
    pub euid: u32,
    pub exe: Option<PathBuf>,
    /// The pipes of its standard streams.
    pub pipes: Pipes,
}

/// The pipes a process reads (standard input) and writes (standard output
/// and error), by inode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipes {
    pub reads: Vec<u64>,
    pub writes: Vec<u64>,
}

impl Pipes {
    /// Whether one of the two reads what the other writes.
    fn joined(&self, other: &Pipes) -> bool {
        self.writes.iter().any(|p| other.reads.contains(p))
            || self.reads.iter().any(|p| other.writes.contains(p))
    }
}

impl Me {
    /// This process, when `proc_root` is this machine's /proc.
    pub fn read(proc_root: &Path) -> Option<Me> {
        let root = ProcRoot::open(proc_root).ok()?;
        let pid = root.own_pid()?;
        let dir = root.process(pid)?;
        let stat = dir.stat(&mut Vec::new())?;
        Some(Me {
            ppid: stat.ppid,
            start_time: stat.start_time,
            euid: nix::unistd::geteuid().as_raw(),
            exe: dir.read_link("exe"),
            pipes: standard_pipes(&dir),
        })
    }
}

/// The pipes of a process's standard streams (`pipe:[12345]` links).
pub fn standard_pipes(dir: &crate::snapshot::ProcDir) -> Pipes {
    let pipe = |fd: u32| -> Option<u64> {
        let target = dir.read_link(&format!("fd/{fd}"))?;
        target
            .to_str()?
            .strip_prefix("pipe:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    };
    Pipes {
        reads: pipe(0).into_iter().collect(),
        writes: [1, 2].into_iter().filter_map(pipe).collect(),
    }
}

/// The indexes of `processes` that are an invocation of psdiff: `parent`
/// gives a process's parent index, `pipes` the pipes of a process's
/// standard streams. Other psdiff runs are known by their executable, so
/// this needs the exe links read.
pub fn members(
    processes: &[Process],
    parent: &dyn Fn(usize) -> Option<usize>,
    pipes: &dyn Fn(u32) -> Pipes,
    me: &Me,
) -> HashSet<usize> {
    let ticks = procfs::ticks_per_second();
    let window = WINDOW_SECONDS * ticks;
    let eldest = eldest_of_groups(processes);
    let is_daemon = |p: &Process| {
        p.pid == 1 || (p.ppid == 1 && eldest.get(&p.pgrp) == Some(&(p.start_time, p.pid)))
    };
    let mut members = HashSet::new();
    // Each ancestor of another run taken, with that run's start.
    let mut ancestors: Vec<(usize, u64)> = Vec::new();
    let mut chain_above =
        |mut at: Option<usize>, started: u64, members: &mut HashSet<usize>, other_run: bool| {
            while let Some(i) = at {
                let old = processes[i].start_time + window < started;
                if old || is_daemon(&processes[i]) || !members.insert(i) {
                    break;
                }
                if other_run {
                    ancestors.push((i, started));
                }
                at = parent(i);
            }
        };
    // Our own chain starts at our parent (psdiff is not in the snapshot).
    let my_parent = processes.iter().position(|p| p.pid == me.ppid);
    chain_above(my_parent, me.start_time, &mut members, false);
    // Pipeline partners, and theirs (`psdiff | grep | cut`).
    let siblings: Vec<usize> = (0..processes.len())
        .filter(|&i| {
            let p = &processes[i];
            p.ppid == me.ppid && p.start_time + window >= me.start_time
        })
        .collect();
    let mut partners = vec![me.pipes.clone()];
    let mut sibling_pipes: Vec<Option<Pipes>> = vec![None; siblings.len()];
    let mut joined = true;
    while joined {
        joined = false;
        for (k, &i) in siblings.iter().enumerate() {
            if members.contains(&i) {
                continue;
            }
            let theirs = sibling_pipes[k].get_or_insert_with(|| pipes(processes[i].pid));
            if partners.iter().any(|p| p.joined(theirs)) {
                members.insert(i);
                partners.push(theirs.clone());
                joined = true;
            }
        }
    }
    let newest = me.start_time.saturating_sub(RUN_SECONDS * ticks);
    let other_runs: Vec<usize> = processes
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.uids.effective == me.euid
                && p.start_time >= newest
                && me.exe.is_some()
                && p.exe.as_deref() == me.exe.as_deref()
                && !runs_a_daemon(p)
        })
        .map(|(i, _)| i)
        .collect();
    for i in other_runs {
        members.insert(i);
        chain_above(parent(i), processes[i].start_time, &mut members, true);
    }
    // What another run's ancestor ran on the way to it, before it started:
    // sudo's PAM helper (`unix_chkpwd USER chkexpiry`). Only the watcher,
    // which journals it as it ends, sees one; a poll comes after.
    for i in 0..processes.len() {
        let Some(p) = parent(i) else { continue };
        let started = processes[i].start_time;
        if ancestors
            .iter()
            .any(|&(a, run)| a == p && started >= processes[a].start_time && started <= run)
        {
            members.insert(i);
        }
    }
    members
}

/// A psdiff that runs as a daemon (`watch`, `serve`) is no check, even in
/// its first minute; its arguments can be believed, since only whoever
/// runs psdiff as that user can give them.
fn runs_a_daemon(process: &Process) -> bool {
    process
        .argv()
        .skip(1)
        .any(|arg| matches!(arg, b"watch" | b"serve"))
}

/// The eldest living member of each process group, as (start time, pid).
///
/// A daemon init started is pid 1 itself, or a child of pid 1 that is the
/// eldest of its process group: it leads the group (a unit's main
/// process), or the leader is gone (a daemon that forked twice, as
/// zabbix_agentd's init script starts it). Such a process is the invoker
/// itself (zabbix_agentd a moment after a restart), never part of one
/// request; a request's handler that was re-parented to init (NRPE's)
/// stays in its daemon's group, below the daemon.
fn eldest_of_groups(processes: &[Process]) -> HashMap<u32, (u64, u32)> {
    let mut eldest: HashMap<u32, (u64, u32)> = HashMap::new();
    for p in processes {
        let candidate = (p.start_time, p.pid);
        eldest
            .entry(p.pgrp)
            .and_modify(|e| *e = (*e).min(candidate))
            .or_insert(candidate);
    }
    eldest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_process;

    fn at(pid: u32, ppid: u32, start_seconds: u64) -> Process {
        Process {
            start_time: start_seconds * procfs::ticks_per_second(),
            ..test_process(pid, ppid)
        }
    }

    #[test]
    fn the_chain_stops_at_the_first_old_ancestor() {
        // nrpe (long-lived) > handler (re-parented to init) > sh > psdiff.
        let processes = vec![
            at(1, 0, 0),
            at(100, 1, 50), // nrpe daemon
            // The handler, 2 s before psdiff, in nrpe's process group.
            Process {
                pgrp: 100,
                ..at(200, 1, 1000)
            },
            at(201, 200, 1001),
            at(203, 201, 1002), // grep, reading psdiff's output
            at(204, 201, 1002), // cut, reading grep's
            at(205, 201, 1002), // started with psdiff, but no pipe of it
            at(206, 201, 900),  // an old child of the shell: not ours
            at(300, 1, 1001),   // a process that merely started then
        ];
        let me = Me {
            ppid: 201,
            start_time: 1002 * procfs::ticks_per_second(),
            euid: 0,
            exe: Some(PathBuf::from("/usr/bin/psdiff")),
            pipes: Pipes {
                reads: vec![1],
                writes: vec![7, 2],
            },
        };
        let parent = |i: usize| {
            let ppid = processes[i].ppid;
            processes.iter().position(|p| p.pid == ppid)
        };
        let pipes = |pid: u32| {
            let (reads, writes) = match pid {
                203 => (vec![7], vec![8, 2]),
                204 => (vec![8], vec![2]),
                // Writes where psdiff writes its errors: inherited.
                205 => (vec![9], vec![2]),
                _ => (vec![], vec![]),
            };
            Pipes { reads, writes }
        };
        let mut found: Vec<u32> = members(&processes, &parent, &pipes, &me)
            .into_iter()
            .map(|i| processes[i].pid)
            .collect();
        found.sort();
        assert_eq!(found, [200, 201, 203, 204]);
    }

    /// The pids of the invocation of a root psdiff started at second
    /// `started` below `ppid`, sorted.
    fn members_below(processes: &[Process], ppid: u32, started: u64) -> Vec<u32> {
        sorted_members(processes, &root_psdiff(ppid, started, None))
    }

    /// A root psdiff (`exe`, if known) started at second `started`.
    fn root_psdiff(ppid: u32, started: u64, exe: Option<&str>) -> Me {
        Me {
            ppid,
            start_time: started * procfs::ticks_per_second(),
            euid: 0,
            exe: exe.map(PathBuf::from),
            pipes: Pipes::default(),
        }
    }

    /// The pids of `me`'s invocation, sorted; no process has pipes.
    fn sorted_members(processes: &[Process], me: &Me) -> Vec<u32> {
        let parent = |i: usize| processes.iter().position(|p| p.pid == processes[i].ppid);
        let mut found: Vec<u32> = members(processes, &parent, &|_| Pipes::default(), me)
            .into_iter()
            .map(|i| processes[i].pid)
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_psdiff_daemon_started_a_moment_ago_is_no_concurrent_check() {
        let psdiff = |pid: u32, args: &[u8]| Process {
            exe: Some(PathBuf::from("/usr/bin/psdiff").into()),
            cmdline: args.into(),
            ..at(pid, 1, 990)
        };
        let processes = vec![
            at(1, 0, 0),
            psdiff(10, b"/usr/bin/psdiff\0watch"),
            psdiff(11, b"/usr/bin/psdiff\0serve\0--listen\0:9753"),
            psdiff(12, b"/usr/bin/psdiff\0show-missing\0--retry"),
        ];
        let me = root_psdiff(1, 1000, Some("/usr/bin/psdiff"));
        assert_eq!(sorted_members(&processes, &me), [12]);
    }

    #[test]
    fn what_another_runs_sudo_ran_before_it_is_that_run() {
        // A handler > sh > sudo > psdiff show-missing, sudo's PAM
        // helper before it; a process sudo started after psdiff is not.
        let processes = vec![
            at(1, 0, 0),
            at(200, 1, 999),
            at(201, 200, 999),
            at(202, 201, 999), // sudo
            at(203, 202, 999), // unix_chkpwd nagios chkexpiry
            Process {
                exe: Some(PathBuf::from("/usr/bin/psdiff").into()),
                cmdline: b"/usr/bin/psdiff\0show-missing".as_slice().into(),
                ..at(204, 202, 1000)
            },
            at(205, 202, 1001),
        ];
        let me = root_psdiff(1, 1001, Some("/usr/bin/psdiff"));
        assert_eq!(sorted_members(&processes, &me), [201, 202, 203, 204]);
    }

    #[test]
    fn a_daemon_init_started_a_moment_ago_is_not_the_request() {
        // zabbix_agentd restarted 1 s ago > its collector > sh > sudo > psdiff.
        let processes = vec![
            at(1, 0, 0),
            at(500, 1, 1001),
            Process {
                pgrp: 500,
                ..at(501, 500, 1001)
            },
            at(502, 501, 1002),
            Process {
                pgrp: 502,
                ..at(503, 502, 1002)
            },
        ];
        assert_eq!(members_below(&processes, 503, 1002), [501, 502, 503]);
    }

    #[test]
    fn a_daemon_that_forked_twice_is_not_the_request() {
        // zabbix_agentd by its init script: the session leader (700) has
        // exited, its child 701 (ppid 1, group 700) is the daemon; a
        // listener > sh > sudo > psdiff. NRPE's handler, in the group of
        // the older nrpe, stays part of its request (the test above).
        let in_group = |pid, ppid, start| Process {
            pgrp: 700,
            ..at(pid, ppid, start)
        };
        let processes = vec![
            at(1, 0, 0),
            in_group(701, 1, 1001),
            in_group(702, 701, 1001),
            at(703, 702, 1002),
            at(704, 703, 1002),
        ];
        assert_eq!(members_below(&processes, 704, 1002), [702, 703, 704]);
    }
}
