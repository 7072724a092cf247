//! Running a command so that nothing it starts outlives its time limit.
//!
//! A process group is not enough: `setsid` or a double fork leaves it, and
//! a child whose parent died is handed to init. `psdiff serve` runs each
//! `POST /api/ps` command under `psdiff contain`, which marks itself a
//! child subreaper (PR_SET_CHILD_SUBREAPER): every descendant that loses
//! its parent is handed to it instead of init, so all of them stay its
//! descendants. At the limit it kills every descendant, and it ends only
//! when none is left. No namespace or cgroup is needed, so this works
//! under the capabilities the serve unit keeps.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::pidfd::PidFd;
use crate::snapshot::ProcRoot;

/// The exit code when the limit was reached, as timeout(1) has it.
pub const TIMED_OUT: u8 = 124;

/// How a contained command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// The limit came first; everything was killed.
    TimedOut,
}

/// Runs `argv` with the caller's stdio and waits for it and for every
/// process it started, killing all of them at `limit`.
pub fn run(argv: &[String], limit: Duration) -> std::io::Result<Outcome> {
    let deadline = Instant::now() + limit;
    nix::sys::prctl::set_child_subreaper(true)?;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command given"))?;
    let child = std::process::Command::new(program).args(args).spawn()?;
    let main = Pid::from_raw(child.id() as i32);
    let mut outcome = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => {
                outcome = Some(Outcome::Exited(code));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == main => {
                outcome = Some(Outcome::Signaled(signal as i32));
            }
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    kill_descendants();
                    reap_all();
                    return Ok(Outcome::TimedOut);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(_) => {}
            Err(Errno::ECHILD) => {
                return Ok(outcome.unwrap_or(Outcome::Exited(0)));
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The exit status of `psdiff contain` for `outcome`: the command's own
/// code, or its signal raised again on ourselves, so the caller sees what
/// it would have seen without us.
pub fn exit_with(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Exited(code) => code as u8,
        Outcome::TimedOut => TIMED_OUT,
        Outcome::Signaled(signal) => {
            if let Ok(signal) = Signal::try_from(signal) {
                // SAFETY: restoring the default action for a valid signal.
                unsafe { libc::signal(signal as libc::c_int, libc::SIG_DFL) };
                let _ = nix::sys::signal::raise(signal);
            }
            128u8.saturating_add(signal as u8)
        }
    }
}

/// SIGKILLs every descendant until none is left running: stopped first,
/// so a forking loop cannot outrun the killing.
fn kill_descendants() {
    for _ in 0..100 {
        let found = descendants();
        if found.is_empty() {
            return;
        }
        let mut held: Vec<PidFd> = found
            .iter()
            .filter_map(|&pid| PidFd::open(pid).ok())
            .collect();
        // Opened by pid: each must still be one of ours.
        let still = descendants();
        held.retain(|fd| still.contains(&fd.pid()));
        for fd in &held {
            let _ = fd.signal(Signal::SIGSTOP);
        }
        for fd in &held {
            let _ = fd.signal(Signal::SIGKILL);
        }
        reap_ready();
    }
}

/// Pids of our living descendants (zombies are already dead).
fn descendants() -> HashSet<u32> {
    let me = std::process::id();
    let Ok(proc) = ProcRoot::open(Path::new("/proc")) else {
        return HashSet::new();
    };
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in proc.pids().unwrap_or_default() {
        if let Some(stat) = proc.stat(pid)
            && stat.state != 'Z'
            && stat.state != 'X'
        {
            children.entry(stat.ppid).or_default().push(pid);
        }
    }
    let mut found = HashSet::new();
    let mut queue = vec![me];
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            if found.insert(child) {
                queue.push(child);
            }
        }
    }
    found
}

fn reap_ready() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Waits for every child; the killed ones and those handed to us.
fn reap_all() {
    loop {
        match waitpid(None, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}
