//! What a failed check does, when its TOML asks: append to a log, run a
//! command (mail, a pager), or kill the processes it counted. Every action
//! is reported; `--dry-run` reports without acting. `kill` never touches
//! pid 1, psdiff itself or its ancestors, nor a kernel thread, and checks
//! that a pid still names the process it counted before signalling it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::DEFAULT_GRACE;
use super::{Group, Level};
use crate::config::schema::ActionsDef;
use crate::pidfd::PidFd;
use crate::snapshot::ProcRoot;

/// How long an `exec` command may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    pub log: Option<PathBuf>,
    pub exec: Option<Vec<String>>,
    pub kill: bool,
    pub grace: Duration,
}

impl Actions {
    pub fn from_def(def: &ActionsDef) -> Result<Actions, String> {
        if def.exec.as_ref().is_some_and(|argv| argv.is_empty()) {
            return Err(
                "`exec` needs a command, e.g. exec = [\"/usr/local/bin/page\", \"oncall\"]".into(),
            );
        }
        if def.log.is_none() && def.exec.is_none() && def.kill != Some(true) {
            return Err("an action table needs `log`, `exec` or `kill = true`".into());
        }
        Ok(Actions {
            log: def.log.clone(),
            exec: def.exec.clone(),
            kill: def.kill.unwrap_or(false),
            grace: def.grace.map_or(DEFAULT_GRACE, Duration::from_secs),
        })
    }
}

/// Where the action runs: which /proc to re-read before signalling, and
/// the processes that must never be signalled.
pub struct Guard {
    pub proc_root: PathBuf,
    pub protected: Vec<u32>,
}

impl Guard {
    /// pid 1, psdiff and every ancestor of psdiff, read from our own /proc.
    pub fn for_this_process(proc_root: &Path) -> Guard {
        let me = std::process::id();
        let mut protected = vec![1, me];
        let mut pid = me;
        let own = ProcRoot::open(Path::new("/proc")).ok();
        while let Some(stat) = own.as_ref().and_then(|root| root.stat(pid)) {
            if stat.ppid == 0 || protected.contains(&stat.ppid) {
                break;
            }
            protected.push(stat.ppid);
            pid = stat.ppid;
        }
        Guard {
            proc_root: proc_root.to_path_buf(),
            protected,
        }
    }

    /// Pids under another /proc (a host's, from a container) are not ours
    /// to signal.
    pub fn local(&self) -> bool {
        self.proc_root == Path::new("/proc")
    }

    /// Whether `pid` is pid 1, psdiff or an ancestor of psdiff.
    pub fn protects(&self, pid: u32) -> bool {
        self.protected.contains(&pid)
    }
}

/// Runs `actions` for one failing group of check `rule`. Returns what was
/// done (or would be, with `dry_run`), one line each, also appended to the
/// log file when there is one.
pub fn run(
    actions: &Actions,
    rule: &str,
    level: Level,
    group: &Group,
    start_times: &dyn Fn(u32) -> Option<u64>,
    guard: &Guard,
    dry_run: bool,
) -> Vec<String> {
    let level_name = match level {
        Level::Warning => "warning",
        Level::Critical => "critical",
    };
    let user = group.user.as_deref().unwrap_or("");
    let detail = group.detail.clone().unwrap_or_default();
    let mut done = Vec::new();
    let prefix = if dry_run { "would " } else { "" };

    if let Some(log) = &actions.log {
        let line = format!(
            "{} rule={rule} level={level_name} user={user} count={} {detail}\n",
            crate::clock::timestamp(),
            group.value
        );
        if dry_run {
            done.push(format!(
                "would append to {}: {}",
                log.display(),
                line.trim_end()
            ));
        } else {
            let result = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            done.push(match result {
                Ok(()) => format!("logged to {}", log.display()),
                Err(e) => format!("could not log to {}: {e}", log.display()),
            });
        }
    }

    if let Some(argv) = &actions.exec {
        let pids: Vec<String> = group.pids.iter().map(u32::to_string).collect();
        if dry_run {
            done.push(format!("would run {argv:?}"));
        } else {
            let spawned = Command::new(&argv[0])
                .args(&argv[1..])
                .env("PSDIFF_RULE", rule)
                .env("PSDIFF_LEVEL", level_name)
                .env("PSDIFF_USER", user)
                .env("PSDIFF_COUNT", group.value.to_string())
                .env("PSDIFF_LABEL", &group.label)
                .env("PSDIFF_DETAIL", &detail)
                .env("PSDIFF_PIDS", pids.join(" "))
                .stdin(Stdio::null())
                .spawn();
            done.push(match spawned {
                Err(e) => format!("could not run {argv:?}: {e}"),
                Ok(mut child) => {
                    let started = Instant::now();
                    loop {
                        match child.try_wait() {
                            Ok(Some(status)) => break format!("ran {argv:?}: {status}"),
                            Ok(None) if started.elapsed() < EXEC_TIMEOUT => {
                                std::thread::sleep(Duration::from_millis(20))
                            }
                            _ => {
                                let _ = child.kill();
                                let _ = child.wait();
                                break format!(
                                    "ran {argv:?}: killed after {}s",
                                    EXEC_TIMEOUT.as_secs()
                                );
                            }
                        }
                    }
                }
            });
        }
    }

    if actions.kill {
        if !group.killable {
            done.push("kill does not apply: the count is not above its maximum".into());
        } else {
            done.extend(kill_all(
                &group.pids,
                start_times,
                guard,
                actions.grace,
                prefix,
                dry_run,
            ));
        }
    }
    if let Some(log) = actions.log.as_ref().filter(|_| !dry_run) {
        // What kill and exec did belongs in the log too.
        let extra: String = done
            .iter()
            .skip(1)
            .map(|d| format!("{} rule={rule} action: {d}\n", crate::clock::timestamp()))
            .collect();
        if !extra.is_empty() {
            let _ = OpenOptions::new()
                .append(true)
                .open(log)
                .and_then(|mut f| f.write_all(extra.as_bytes()));
        }
    }
    done
}

/// SIGTERM to each pid, then SIGKILL to those alive after `grace`, each
/// through a pidfd opened and checked (same start time, a process and
/// not a kernel thread) before the first signal: a pid freed and taken
/// again meanwhile is never signalled.
fn kill_all(
    pids: &[u32],
    start_times: &dyn Fn(u32) -> Option<u64>,
    guard: &Guard,
    grace: Duration,
    prefix: &str,
    dry_run: bool,
) -> Vec<String> {
    let mut done = Vec::new();
    if !guard.local() {
        done.push(format!(
            "will not kill: the processes were read from {}, not this machine's /proc",
            guard.proc_root.display()
        ));
        return done;
    }
    let root = ProcRoot::open(&guard.proc_root).ok();
    let mut targets = Vec::new();
    for &pid in pids {
        if guard.protects(pid) {
            done.push(format!(
                "will not signal pid {pid}: it is pid 1, psdiff or an ancestor of psdiff"
            ));
            continue;
        }
        let held = PidFd::open(pid).ok().filter(|_| {
            // Checked once the pidfd holds it: still the one counted.
            root.as_ref()
                .and_then(|r| r.stat(pid))
                .is_some_and(|s| Some(s.start_time) == start_times(pid) && !s.is_kernel_thread())
        });
        match held {
            Some(process) => targets.push(process),
            None => done.push(format!("pid {pid} has exited; nothing to signal")),
        }
    }
    for process in &targets {
        let pid = process.pid();
        if dry_run {
            done.push(format!("{prefix}send SIGTERM to pid {pid}"));
        } else {
            done.push(match process.signal(Signal::SIGTERM) {
                Ok(()) => format!("sent SIGTERM to pid {pid}"),
                Err(e) => format!("could not signal pid {pid}: {e}"),
            });
        }
    }
    if dry_run {
        if !targets.is_empty() {
            done.push(format!(
                "{prefix}send SIGKILL after {}s to those still running",
                grace.as_secs()
            ));
        }
        return done;
    }
    let deadline = Instant::now() + grace;
    for process in &targets {
        let left = deadline.saturating_duration_since(Instant::now());
        if process.wait_end(left) {
            continue;
        }
        let pid = process.pid();
        done.push(match process.signal(Signal::SIGKILL) {
            Ok(()) => format!(
                "sent SIGKILL to pid {pid} (still running after {}s)",
                grace.as_secs()
            ),
            Err(e) => format!("could not SIGKILL pid {pid}: {e}"),
        });
    }
    done
}
