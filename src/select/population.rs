//! What a selector is tested against: one snapshot's processes with their
//! parents, on their machine, and what is worked out about them once.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::{Command, Selector, names, self_held};
use crate::machine::Machine;
use crate::snapshot::Process;
use crate::snapshot::attest::Doubt;

/// The indices under each key, in the order given.
fn index<'k>(keyed: impl Iterator<Item = (&'k str, usize)>) -> HashMap<String, Vec<usize>> {
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (key, i) in keyed {
        index.entry(key.to_string()).or_default().push(i);
    }
    index
}

/// Process indices, ascending, that a selector may match.
pub enum Candidates<'a> {
    All(Range<usize>),
    Some(&'a [usize]),
    One(Option<usize>),
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Candidates::All(range) => range.next(),
            Candidates::Some(slice) => {
                let (&first, rest) = slice.split_first()?;
                *slice = rest;
                Some(first)
            }
            Candidates::One(one) => one.take(),
        }
    }
}

/// The processes a selector is tested against: the population, and each
/// process's cmdline as printed (in `[[rule]]`s, after the rewrites that
/// come before the rule being tried).
pub trait Subjects {
    fn population(&self) -> &Population<'_>;
    fn cmdline(&self, i: usize) -> &str;
}

/// The processes of one snapshot with their parents, on their machine,
/// and what is worked out about them when first asked for: ps.monitor's
/// names, psdiff's own invocation, the login sessions that still hold a
/// process.
pub struct Population<'a> {
    pub processes: &'a [Process],
    parents: &'a [Option<usize>],
    pub machine: &'a Machine,
    /// Each process's names, worked out when first asked for; the table
    /// itself too, as most rule sets never ask.
    names: OnceCell<Vec<OnceCell<Vec<String>>>>,
    invocation: OnceCell<HashSet<usize>>,
    /// Why each executable may not be what the host runs, when asked.
    doubts: OnceCell<Vec<OnceCell<Vec<Doubt>>>>,
    occupied_sessions: OnceCell<HashSet<String>>,
    self_held: OnceCell<HashSet<String>>,
    /// The processes answering to each name and running each exe, in
    /// index order: what `candidates` narrows to.
    by_name: OnceCell<HashMap<String, Vec<usize>>>,
    by_exe: OnceCell<HashMap<String, Vec<usize>>>,
}

impl<'a> Population<'a> {
    /// `parents[i]` is the index of process `i`'s parent among
    /// `processes`.
    pub fn new(
        processes: &'a [Process],
        parents: &'a [Option<usize>],
        machine: &'a Machine,
    ) -> Self {
        Population {
            processes,
            parents,
            machine,
            names: OnceCell::new(),
            invocation: OnceCell::new(),
            doubts: OnceCell::new(),
            occupied_sessions: OnceCell::new(),
            self_held: OnceCell::new(),
            by_name: OnceCell::new(),
            by_exe: OnceCell::new(),
        }
    }

    pub fn parent(&self, i: usize) -> Option<usize> {
        self.parents[i]
    }

    /// ps.monitor's names of the process (`names()`).
    pub fn names(&self, i: usize) -> &[String] {
        self.names
            .get_or_init(|| (0..self.processes.len()).map(|_| OnceCell::new()).collect())[i]
            .get_or_init(|| names(&self.processes[i]))
    }

    /// The processes `selector` may match, in index order: those with the
    /// name, exe or pid it requires, found in an index built once, or
    /// all. Many checks over many processes each name one command; this
    /// spares testing every process against each.
    pub fn candidates(&self, selector: &Selector) -> Candidates<'_> {
        let all = || Candidates::All(0..self.processes.len());
        fn some(found: Option<&Vec<usize>>) -> Candidates<'_> {
            Candidates::Some(found.map_or(&[], Vec::as_slice))
        }
        if let Some(pid) = selector.pid() {
            let at = self.processes.binary_search_by_key(&pid, |p| p.pid);
            return match at {
                Ok(i) => Candidates::One(Some(i)),
                // Not sorted by pid (a test's population): look through all.
                Err(_) if !self.processes.is_sorted_by_key(|p| p.pid) => all(),
                Err(_) => Candidates::One(None),
            };
        }
        match selector.command() {
            Some(Command::Name(name)) => {
                some(
                    self.by_name
                        .get_or_init(|| {
                            index((0..self.processes.len()).flat_map(|i| {
                                self.names(i).iter().map(move |name| (name.as_str(), i))
                            }))
                        })
                        .get(name),
                )
            }
            Some(Command::Exe(path)) => some(
                self.by_exe
                    .get_or_init(|| {
                        index(
                            self.processes
                                .iter()
                                .enumerate()
                                .filter_map(|(i, p)| Some((p.exe_path()?, i))),
                        )
                    })
                    .get(path),
            ),
            _ => all(),
        }
    }

    /// Why the executable /proc names for process `i` may not be what
    /// it runs (`snapshot::attest`), looked at when first asked.
    pub fn doubts(&self, i: usize) -> &[Doubt] {
        self.doubts
            .get_or_init(|| (0..self.processes.len()).map(|_| OnceCell::new()).collect())[i]
            .get_or_init(|| self.machine.doubts(&self.processes[i]))
    }

    /// Whether the process runs only to run psdiff (`crate::invocation`).
    pub fn invocation(&self, i: usize) -> bool {
        self.invocation
            .get_or_init(|| match self.machine.me() {
                Some(me) => {
                    let pipes = |pid| self.machine.standard_pipes(pid);
                    crate::invocation::members(self.processes, &|j| self.parents[j], &pipes, me)
                }
                None => HashSet::new(),
            })
            .contains(&i)
    }

    /// Whether `cgroup` is part of a login that is open: a session scope
    /// of an opening, active or online session, or the manager (`user@UID`) of a
    /// user logged in. A user who logged out keeps a manager for a few
    /// seconds (UserStopDelaySec): it is still part of the login while
    /// none of that user's sessions holds a process; what a user left
    /// running in a session is no login of anyone.
    ///
    /// A session that holds itself open (`self_held`) is no login, and a
    /// user whose open sessions all do so is not logged in.
    ///
    /// A manager's process that ended (as the watcher saw) when logind
    /// no longer knows its user ended with the manager: that login, shorter
    /// than a batch, closed and its user was stopped at once
    /// (UserStopDelaySec=0). Only logind starts a user's manager, and
    /// nothing leaves its cgroup while it runs.
    pub fn in_open_login(&self, process: &Process) -> bool {
        let Some(cgroup) = process.cgroup.as_deref() else {
            return false;
        };
        let logins = self.machine.logins();
        if let Some(session) = &cgroup.session {
            return logins.session_open(session) && !self.self_held().contains(session);
        }
        let Some(uid) = cgroup.user_manager else {
            return false;
        };
        // Logged in: a person's session is open, and a person is behind
        // one (the user manager's own session, systemd 256 on, is none).
        let person_behind = {
            let mut open = logins
                .sessions_of(uid)
                .filter(|s| logins.session_open(s))
                .peekable();
            if open.peek().is_none() {
                !logins.knows_sessions()
            } else {
                open.any(|s| !self.self_held().contains(s))
            }
        };
        (logins.user_logged_in(uid) && person_behind)
            || (process.state == 'X' && logins.user_gone(uid))
            || (logins.user_closing(uid)
                && !logins
                    .sessions_of(uid)
                    .any(|s| self.occupied_sessions().contains(s)))
    }

    /// The open sessions no person is behind (`self_held`).
    pub fn self_held(&self) -> &HashSet<String> {
        self.self_held.get_or_init(|| {
            let logins = self.machine.logins();
            self_held::sessions(self.processes, self.machine, &|s| logins.session_open(s))
        })
    }

    fn occupied_sessions(&self) -> &HashSet<String> {
        self.occupied_sessions.get_or_init(|| {
            self.processes
                .iter()
                .filter_map(|p| p.cgroup.as_ref()?.session.clone())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Cgroup, test_process};

    /// A login shorter than the watcher's batch, with no stop delay: by
    /// the batch logind knows nothing of the user, and what ended with
    /// the manager was part of the login; what still runs there is not.
    #[test]
    fn a_managers_process_that_ended_with_its_unknown_user_was_in_the_login() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run/systemd");
        std::fs::create_dir_all(run.join("sessions")).unwrap();
        std::fs::create_dir_all(run.join("users")).unwrap();
        let manager = |state| crate::snapshot::Process {
            state,
            cgroup: Some(std::sync::Arc::new(Cgroup::parse(
                "/user.slice/user-1001.slice/user@1001.service/init.scope",
            ))),
            ..test_process(400, 1)
        };
        let processes = [manager('X'), manager('S')];
        let machine = Machine::at(tmp.path().to_path_buf());
        let population = Population::new(&processes, &[None, None], &machine);
        assert!(population.in_open_login(&processes[0]));
        assert!(!population.in_open_login(&processes[1]));
        // A lingering user is known: what ended is no login's.
        std::fs::write(run.join("users/1001"), "STATE=lingering\n").unwrap();
        let machine = Machine::at(tmp.path().to_path_buf());
        let population = Population::new(&processes, &[None, None], &machine);
        assert!(!population.in_open_login(&processes[0]));
    }
}
