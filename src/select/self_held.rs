//! Logins that no person is behind: a session whose every connection
//! comes from a process of the same user on this host that is itself in
//! no open login. A user service running `ssh -N USER@localhost` keeps a
//! session open after its user logged out, and logind calls it active;
//! it is no one logged in, so what it holds is shown.
//!
//! Nor is anyone behind a session whose incoming connection is held by a
//! stopped process: the user's `sshd: USER@notty` stopped by SIGSTOP
//! keeps its session open after the client has gone, and talks to no one.

use std::collections::{HashMap, HashSet};

use crate::machine::Machine;
use crate::snapshot::Process;
use crate::sockets::{self, SocketTables};

/// The open sessions (as `open` says) that hold themselves open.
pub fn sessions(
    processes: &[Process],
    machine: &Machine,
    open: &dyn Fn(&str) -> bool,
) -> HashSet<String> {
    let mut members: HashMap<&str, Vec<&Process>> = HashMap::new();
    for p in processes {
        if let Some(session) = p.cgroup.as_ref().and_then(|c| c.session.as_deref())
            && open(session)
        {
            members.entry(session).or_default().push(p);
        }
    }
    let mut tables = SocketTables::default();
    // For each session whose connections all come from its own user
    // here: the sessions its clients run in (None: in no open login).
    let mut held_from: HashMap<&str, Vec<Option<String>>> = HashMap::new();
    'sessions: for (&session, procs) in &members {
        let Some(uid) = machine.logins().session_user(session) else {
            continue;
        };
        // (A connection the session opened, `ssh` suspended by ~^Z, is
        // someone at work.)
        let connection_stopped = procs.iter().any(|p| {
            machine.held_stopped(p)
                && machine
                    .live_process(p.pid)
                    .is_some_and(|dir| !tables.accepted_by(&dir).is_empty())
        });
        if connection_stopped {
            held_from.insert(session, vec![None]);
            continue;
        }
        let mut clients = Vec::new();
        for p in procs {
            let Some(dir) = machine.live_process(p.pid) else {
                continue 'sessions;
            };
            for (_, socket) in tables.held_by(&dir) {
                if socket.status != "ESTABLISHED" {
                    continue;
                }
                let peer = tables
                    .of(&dir)
                    .iter()
                    .find(|(_, s)| s.local == socket.remote && s.remote == socket.local)
                    .map(|(&inode, _)| inode);
                // From another host, or a peer here that is not the
                // user's own: someone is behind it.
                let Some(peer) = peer else {
                    continue 'sessions;
                };
                let Some(client) = holder(processes, machine, uid, peer) else {
                    continue 'sessions;
                };
                clients.push(
                    client
                        .cgroup
                        .as_ref()
                        .and_then(|c| c.session.clone())
                        .filter(|s| s != session && open(s)),
                );
            }
        }
        if !clients.is_empty() {
            held_from.insert(session, clients);
        }
    }
    // A client in an open session that is a person's makes this one a
    // person's too; repeat until nothing changes.
    let mut held: HashSet<&str> = held_from.keys().copied().collect();
    loop {
        let person: Vec<&str> = held
            .iter()
            .copied()
            .filter(|s| {
                held_from[s]
                    .iter()
                    .any(|c| c.as_deref().is_some_and(|c| !held.contains(c)))
            })
            .collect();
        if person.is_empty() {
            break;
        }
        for s in person {
            held.remove(s);
        }
    }
    held.into_iter().map(str::to_string).collect()
}

/// The process of user `uid` that holds the socket `inode`.
fn holder<'p>(
    processes: &'p [Process],
    machine: &Machine,
    uid: u32,
    inode: u64,
) -> Option<&'p Process> {
    processes
        .iter()
        .filter(|p| p.uids.real == uid && !p.kernel_thread)
        .find(|p| {
            machine.live_process(p.pid).is_some_and(|dir| {
                dir.descriptors()
                    .iter()
                    .any(|(_, target)| sockets::inode(target) == Some(inode))
            })
        })
}
