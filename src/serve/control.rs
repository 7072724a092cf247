//! The control routes: signal, renice, and run an allowed command. Each is
//! refused for pid 1, the server and its ancestors, kernel threads, and
//! processes read from another machine's /proc; each is logged.

use std::collections::HashMap;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::reply::ApiError;
use super::tokens::random_id;
use crate::app::context::Context;
use crate::check::actions::Guard;
use crate::pidfd::PidFd;
use crate::snapshot::{Fields, ProcRoot, Snapshot};

/// How long a command may run before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `psdiff contain` may take past the limit to kill and reap.
const CONTAIN_GRACE: Duration = Duration::from_secs(5);
/// The first bytes of stdout and of stderr kept per command.
pub const OUTPUT_CAP: usize = 64 * 1024;
/// How long a finished command's output can be fetched.
pub const OUTPUT_TTL: Duration = Duration::from_secs(600);
/// Commands running at once.
pub const MAX_RUNNING: usize = 8;
/// Outputs kept at once, running or finished.
pub const MAX_OUTPUTS: usize = 64;

pub struct Control {
    guard: Guard,
    runs: Arc<Mutex<HashMap<String, Run>>>,
}

/// The process a control action is aimed at, held by a pidfd: actions
/// reach it or nothing, never a process that took its pid since.
pub struct Target {
    pub pid: u32,
    pub comm: String,
    process: PidFd,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.comm)
    }
}

struct Run {
    pid: u32,
    cmd: Vec<String>,
    started: SystemTime,
    out: Arc<Mutex<Captured>>,
    err: Arc<Mutex<Captured>>,
    end: Option<End>,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

struct End {
    at: Instant,
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
}

impl Control {
    pub fn new(context: &Context) -> Control {
        Control {
            guard: Guard::for_this_process(&context.proc_root),
            runs: Arc::default(),
        }
    }

    /// The process `pid` names, if it may be acted on.
    pub fn target(&self, context: &Context, pid: i64) -> Result<Target, ApiError> {
        if !self.guard.local() {
            return Err(ApiError::forbidden(format!(
                "processes are read from {}, not this machine's /proc; they cannot be controlled from here",
                context.proc_root.display()
            )));
        }
        let pid = u32::try_from(pid)
            .ok()
            .filter(|&p| p >= 1 && p <= i32::MAX as u32)
            .ok_or_else(|| {
                ApiError::bad_request(format!("pid {pid} is not a process id (1 or more)"))
            })?;
        if self.guard.protects(pid) {
            return Err(ApiError::forbidden(format!(
                "pid {pid} is protected: it is pid 1, psdiff serve or one of its ancestors"
            )));
        }
        // A thread's id reaches its whole process with kill(); only
        // processes are targets.
        let root = ProcRoot::open(&context.proc_root)
            .map_err(|_| ApiError::internal("cannot read the processes"))?;
        match root.process(pid).and_then(|d| d.tgid()) {
            Some(tgid) if tgid != pid => {
                return Err(ApiError::forbidden(format!(
                    "{pid} is a thread of process {tgid}, not a process; act on the process"
                )));
            }
            Some(_) => {}
            None => return Err(ApiError::not_found(format!("no process with pid {pid}"))),
        }
        let process = Snapshot::take_one(
            &context.proc_root,
            &mut context.users()?,
            Fields::default(),
            pid,
        )
        .map_err(|e| {
            eprintln!("psdiff serve: control: reading pid {pid}: {e}");
            ApiError::internal("cannot read the process")
        })?
        .ok_or_else(|| ApiError::not_found(format!("no process with pid {pid}")))?;
        if process.kernel_thread {
            return Err(ApiError::forbidden(format!(
                "pid {pid} is a kernel thread; those are never controlled"
            )));
        }
        // Held from here; still the process read above (same start), or
        // it ended and its pid was taken meanwhile.
        let held = PidFd::open(pid)
            .map_err(|_| ApiError::not_found(format!("no process with pid {pid}")))?;
        if root.stat(pid).map(|s| s.start_time) != Some(process.start_time) {
            return Err(ApiError::not_found(format!("no process with pid {pid}")));
        }
        Ok(Target {
            pid,
            comm: String::from_utf8_lossy(&process.comm).into_owned(),
            process: held,
        })
    }

    pub fn signal(&self, target: &Target, signal: Signal) -> Result<Value, ApiError> {
        target.process.signal(signal).map_err(|e| {
            eprintln!("psdiff serve: control: cannot send {signal} to {target}: {e}");
            ApiError::internal(format!("cannot send {signal} to {target}"))
        })?;
        Ok(json!({"pid": target.pid, "signal": signal.as_str(), "result": "sent"}))
    }

    pub fn renice(&self, target: &Target, priority: i32) -> Result<Value, ApiError> {
        // setpriority takes a pid, not a pidfd: the held pidfd keeps the pid
        // from being taken while the process lives; one that ended is no
        // target.
        if target.process.ended() {
            return Err(ApiError::not_found(format!(
                "no process with pid {}",
                target.pid
            )));
        }
        // SAFETY: setpriority reads no memory of ours; it only takes numbers.
        let done =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, target.pid as libc::id_t, priority) };
        if done != 0 {
            let error = std::io::Error::last_os_error();
            return Err(ApiError::internal(format!(
                "cannot renice {target} to {priority}: {error}"
            )));
        }
        Ok(json!({"pid": target.pid, "priority": priority, "result": "set"}))
    }

    /// Starts `cmd`, which must begin with an entry of `run_allow`, without
    /// a shell. Its output is kept under a new id; `log` is told how it ends.
    pub fn run(
        &self,
        run_allow: &[Vec<String>],
        cmd: Vec<String>,
        log: impl FnOnce(String) + Send + 'static,
    ) -> Result<Value, ApiError> {
        // Every run_allow entry has a program, so an empty cmd matches none.
        if !run_allow.iter().any(|entry| allows(entry, &cmd)) {
            return Err(ApiError::forbidden(format!(
                "{cmd:?} is not an entry of [serve] run_allow in psdiff.toml"
            )));
        }
        let mut runs = self.runs.lock().expect("no panic holds this lock");
        make_room(&mut runs)?;
        let mut child = spawn_contained(&cmd)?;
        let pid = child.id().unwrap_or_default();
        let id = random_id();
        let out = Arc::new(Mutex::new(Captured::default()));
        let err = Arc::new(Mutex::new(Captured::default()));
        let readers = [
            tokio::spawn(capture(child.stdout.take(), out.clone())),
            tokio::spawn(capture(child.stderr.take(), err.clone())),
        ];
        runs.insert(
            id.clone(),
            Run {
                pid,
                cmd,
                started: SystemTime::now(),
                out,
                err,
                end: None,
            },
        );
        let store = self.runs.clone();
        let run_id = id.clone();
        tokio::spawn(async move {
            let end = wait_for_end(child, pid, readers).await;
            log(end.describe(pid));
            if let Some(run) = store
                .lock()
                .expect("no panic holds this lock")
                .get_mut(&run_id)
            {
                run.end = Some(end);
            }
        });
        Ok(json!({"pid": pid, "id": id}))
    }

    /// What the command with output id `id` printed, and how it ended.
    pub fn output(&self, id: &str) -> Result<Value, ApiError> {
        let runs = self.runs.lock().expect("no panic holds this lock");
        let run = runs
            .get(id)
            .filter(|r| r.end.as_ref().is_none_or(|e| e.at.elapsed() < OUTPUT_TTL))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no output with id `{id}`; outputs are kept {} minutes after their command ends",
                    OUTPUT_TTL.as_secs() / 60
                ))
            })?;
        let text = |c: &Arc<Mutex<Captured>>| {
            let c = c.lock().expect("no panic holds this lock");
            (String::from_utf8_lossy(&c.bytes).into_owned(), c.truncated)
        };
        let (out, out_truncated) = text(&run.out);
        let (err, err_truncated) = text(&run.err);
        let started = run
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Ok(json!({
            "id": id,
            "pid": run.pid,
            "cmd": run.cmd,
            "started": started,
            "running": run.end.is_none(),
            "exit_code": run.end.as_ref().and_then(|e| e.code),
            "signal": run.end.as_ref().and_then(|e| e.signal),
            "timed_out": run.end.as_ref().is_some_and(|e| e.timed_out),
            "out": out,
            "err": err,
            "out_truncated": out_truncated,
            "err_truncated": err_truncated,
        }))
    }
}

/// Whether `entry` of `run_allow` allows `cmd`: exactly that argv, or,
/// when the entry ends with `"..."`, anything after its other arguments.
fn allows(entry: &[String], cmd: &[String]) -> bool {
    match entry.split_last() {
        Some((last, fixed)) if last == "..." => {
            cmd.len() > fixed.len() && cmd[..fixed.len()] == *fixed
        }
        _ => cmd == entry,
    }
}

/// Keeps the first `OUTPUT_CAP` bytes of `stream` and reads the rest
/// away, so the command never blocks on a full pipe.
async fn capture(stream: Option<impl AsyncRead + Unpin>, into: Arc<Mutex<Captured>>) {
    let Some(mut stream) = stream else { return };
    let mut buffer = [0u8; 8192];
    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
        let mut captured = into.lock().expect("no panic holds this lock");
        let room = OUTPUT_CAP - captured.bytes.len();
        captured.bytes.extend_from_slice(&buffer[..n.min(room)]);
        captured.truncated |= n > room;
    }
}

/// A signal from JSON: a number (15) or a name (`TERM`, `SIGTERM`).
pub fn parse_signal(value: Option<&Value>) -> Result<Signal, ApiError> {
    let invalid = |shown: &dyn std::fmt::Display| {
        ApiError::bad_request(format!(
            "unknown signal {shown}; give a name such as TERM, HUP, INT or KILL, or its number"
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(Signal::SIGTERM),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .and_then(|n| Signal::try_from(n).ok())
            .ok_or_else(|| invalid(n)),
        Some(Value::String(name)) => {
            let upper = name.trim().to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            Signal::from_str(&full).map_err(|_| invalid(&format!("`{name}`")))
        }
        Some(other) => Err(invalid(other)),
    }
}

/// Drops outputs past their time and, at the bound, the oldest ended
/// one; refuses a new run while `MAX_RUNNING` run.
fn make_room(runs: &mut HashMap<String, Run>) -> Result<(), ApiError> {
    runs.retain(|_, r| r.end.as_ref().is_none_or(|e| e.at.elapsed() < OUTPUT_TTL));
    if runs.values().filter(|r| r.end.is_none()).count() >= MAX_RUNNING {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_RUNNING} commands are running; try again when one has finished"),
        ));
    }
    while runs.len() >= MAX_OUTPUTS {
        let oldest = runs
            .iter()
            .filter_map(|(id, r)| Some((r.end.as_ref()?.at, id.clone())))
            .min();
        let Some((_, id)) = oldest else { break };
        runs.remove(&id);
    }
    Ok(())
}

/// Starts `cmd` under `psdiff contain`, so what it starts cannot outlive
/// the limit by leaving the process group (`setsid`, a double fork).
fn spawn_contained(cmd: &[String]) -> Result<tokio::process::Child, ApiError> {
    tokio::process::Command::new("/proc/self/exe")
        .arg0("psdiff")
        .arg("contain")
        .arg("--seconds")
        .arg(RUN_TIMEOUT.as_secs().to_string())
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| ApiError::internal(format!("cannot run {:?}: {e}", cmd[0])))
}

/// Waits for a run to end and for what it printed, and says how it ended.
async fn wait_for_end(
    mut child: tokio::process::Child,
    pid: u32,
    readers: [tokio::task::JoinHandle<()>; 2],
) -> End {
    let started = Instant::now();
    // contain keeps the limit itself; this only guards against it hanging.
    let (status, hung) = match tokio::time::timeout(RUN_TIMEOUT + CONTAIN_GRACE, child.wait()).await
    {
        Ok(status) => (status, false),
        Err(_) => {
            let group = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
            (child.wait().await, true)
        }
    };
    let timed_out = hung
        || (started.elapsed() >= RUN_TIMEOUT
            && status
                .as_ref()
                .is_ok_and(|s| s.code() == Some(i32::from(crate::contain::TIMED_OUT))));
    // A child left running may hold the pipes open; what came in a
    // moment after the end is all that is kept.
    let aborts = readers.each_ref().map(|r| r.abort_handle());
    let both = async {
        for reader in readers {
            let _ = reader.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(1), both)
        .await
        .is_err()
    {
        aborts.iter().for_each(|a| a.abort());
    }
    use std::os::unix::process::ExitStatusExt;
    End {
        at: Instant::now(),
        // Timed out: what was run died of SIGKILL, as the API says.
        code: status
            .as_ref()
            .ok()
            .and_then(|s| s.code())
            .filter(|_| !timed_out),
        signal: if timed_out {
            Some(Signal::SIGKILL as i32)
        } else {
            status.as_ref().ok().and_then(|s| s.signal())
        },
        timed_out,
    }
}

impl End {
    /// How the run ended, for the log.
    fn describe(&self, pid: u32) -> String {
        match self {
            End {
                timed_out: true, ..
            } => format!("pid {pid} killed after {}s", RUN_TIMEOUT.as_secs()),
            End { code: Some(c), .. } => format!("pid {pid} exited with {c}"),
            End {
                signal: Some(s), ..
            } => format!("pid {pid} ended by signal {s}"),
            _ => format!("pid {pid} ended"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_allow_is_exact_unless_it_ends_with_dots() {
        let entry = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let restart = entry(&["/usr/bin/systemctl", "restart", "nginx"]);
        let status = entry(&["/usr/bin/systemctl", "status", "..."]);
        assert!(allows(&restart, &restart));
        assert!(!allows(
            &restart,
            &entry(&["/usr/bin/systemctl", "restart", "nginx", "sshd"])
        ));
        assert!(allows(
            &status,
            &entry(&["/usr/bin/systemctl", "status", "nginx"])
        ));
        assert!(!allows(&status, &entry(&["/usr/bin/systemctl", "status"])));
        assert!(!allows(
            &status,
            &entry(&["/usr/bin/systemctl", "stop", "x"])
        ));
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal(None).unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal(Some(&json!("hup"))).unwrap(), Signal::SIGHUP);
        assert_eq!(
            parse_signal(Some(&json!("SIGKILL"))).unwrap(),
            Signal::SIGKILL
        );
        assert_eq!(parse_signal(Some(&json!(2))).unwrap(), Signal::SIGINT);
        for bad in [json!(0), json!(999), json!("BOOM"), json!([15]), json!(-9)] {
            let e = parse_signal(Some(&bad)).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }
}
