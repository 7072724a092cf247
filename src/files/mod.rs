//! `psdiff files`: every file a process tree opens and closes, live, with
//! how long it stayed open. fanotify reports the opens and closes on the
//! watched mounts; the proc connector reports forks, so a child born
//! after the watch began is followed (without it, unknown pids are placed
//! by their parents in /proc).

mod descriptors;
mod ebpf;
mod follow;
mod handles;
mod opens;
mod output;
mod traced;
mod watch;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::snapshot::ProcRoot;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::proc_events::{Connector, ProcEvent};
use follow::Follow;
use opens::Opens;
use output::{Line, Output};
pub use watch::WatchError;
use watch::{Event, Kind, Watch};

pub struct Settings {
    /// Where processes are read (`--proc-root`).
    pub proc_root: PathBuf,
    /// Who names users (`--passwd`, else NSS).
    pub users: crate::snapshot::UserNames,
    pub pids: Vec<u32>,
    pub names: Vec<String>,
    /// `-- CMD ARGS`: started by psdiff, which ends when it does.
    pub command: Vec<String>,
    pub depth: Option<u32>,
    pub paths: Vec<PathBuf>,
    pub json: bool,
    /// Open files remembered for durations; see `opens`.
    pub max_open_files: usize,
    pub backend: Backend,
    /// The eBPF ring buffer's size, a power of two.
    pub ring_bytes: u32,
}

/// Where the events come from (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// eBPF where this kernel and psdiff's privileges allow, else fanotify.
    Auto,
    /// eBPF tracepoints: threads, descriptors and failed opens.
    Ebpf,
    /// fanotify: processes and files, no descriptors.
    Fanotify,
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("no process with pid {0}")]
    NoSuchPid(u32),
    #[error("{0} does not exist; --path takes a file or folder to watch")]
    NoSuchPath(PathBuf),
    #[error("give what to watch: --pid PID, --name NAME, or -- CMD ARGS")]
    NoTarget,
    #[error("cannot run {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("cannot read /proc: {0}")]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("cannot read events: {0}")]
    Read(std::io::Error),
    #[error("--backend ebpf: {0}")]
    Ebpf(#[from] ebpf::EbpfError),
}

impl FilesError {
    /// Whether what the operator gave is wrong (exit 2), rather than the
    /// machine failing (exit 3).
    pub fn is_usage(&self) -> bool {
        match self {
            FilesError::Watch(e) => matches!(e, WatchError::NotPermitted),
            FilesError::NoSuchPid(_)
            | FilesError::NoSuchPath(_)
            | FilesError::NoTarget
            | FilesError::Spawn { .. } => true,
            FilesError::Ebpf(e) => matches!(e, ebpf::EbpfError::NoCapability),
            FilesError::Snapshot(_) | FilesError::Read(_) => false,
        }
    }
}

/// Counts for the summary.
#[derive(Default)]
struct Summary {
    events: u64,
    overflows: u64,
    process_events_lost: u64,
}

pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Watches until the command ends, every followed process has ended (with
/// --pid only), or SIGINT/SIGTERM. Returns the exit status: the command's,
/// else 0.
pub fn run(mut settings: Settings) -> Result<i32, FilesError> {
    if settings.pids.is_empty() && settings.names.is_empty() && settings.command.is_empty() {
        return Err(FilesError::NoTarget);
    }
    let paths: Vec<PathBuf> = settings
        .paths
        .iter()
        .map(|p| std::fs::canonicalize(p).map_err(|_| FilesError::NoSuchPath(p.clone())))
        .collect::<Result<_, _>>()?;
    let root = ProcRoot::open(&settings.proc_root).map_err(|source| {
        FilesError::Snapshot(crate::snapshot::SnapshotError::Unreadable {
            root: settings.proc_root.clone(),
            source,
        })
    })?;
    let mut follow = Follow::new(root, settings.names.clone(), settings.depth);
    for &pid in &settings.pids {
        if !follow.add_target(pid) {
            return Err(FilesError::NoSuchPid(pid));
        }
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(signal, request_stop as *const () as libc::sighandler_t);
        }
    }
    let fallback = match settings.backend {
        Backend::Fanotify => None,
        Backend::Ebpf => {
            let tracer = traced::load(&settings, &paths)?;
            return traced::run(&mut settings, &paths, follow, tracer);
        }
        Backend::Auto => match traced::load(&settings, &paths) {
            Ok(tracer) => return traced::run(&mut settings, &paths, follow, tracer),
            Err(e) => Some(e.to_string()),
        },
    };
    run_fanotify(settings, paths, follow, fallback)
}

/// The fanotify backend; `fallback` says why eBPF is not used, when it
/// was the choice of `--backend auto`.
fn run_fanotify(
    mut settings: Settings,
    paths: Vec<PathBuf>,
    mut follow: Follow,
    fallback: Option<String>,
) -> Result<i32, FilesError> {
    let watch = Watch::new(&paths)?;
    // Forks are subscribed to before the tree is read, so none falls
    // between the two.
    let connector = match Connector::open() {
        Ok(c) => {
            follow.forks_reported = true;
            Some(c)
        }
        Err(e) => {
            eprintln!(
                "psdiff files: no process events from the kernel ({e}); children are found through /proc, and one that exits at once may be missed"
            );
            None
        }
    };
    let fields = crate::snapshot::Fields {
        exe: !settings.names.is_empty(),
        ..Default::default()
    };
    let snapshot =
        crate::snapshot::Snapshot::take(&settings.proc_root, &mut settings.users, fields)?;
    follow.scan(&snapshot.processes);
    drop(snapshot);

    let child =
        match settings.command.split_first() {
            Some((program, args)) => {
                let child = Command::new(program).args(args).spawn().map_err(|source| {
                    FilesError::Spawn {
                        cmd: program.clone(),
                        source,
                    }
                })?;
                follow.add_target(child.id());
                Some(child)
            }
            None => None,
        };
    let backend = match &fallback {
        Some(why) => format!("backend fanotify (not eBPF: {why})"),
        None => "backend fanotify".to_string(),
    };
    eprintln!(
        "psdiff files: {backend}; watching {} processes{} on {} mounts; Ctrl-C ends the watch",
        follow.count,
        if settings.names.is_empty() {
            ""
        } else {
            " (and any that start with a watched name)"
        },
        watch.mounts
    );
    let mut session = Session {
        watch,
        connector,
        follow,
        opens: Opens::new(settings.max_open_files),
        out: Output::new(settings.json),
        summary: Summary::default(),
        paths,
        child,
        end_with_targets: settings.names.is_empty(),
    };
    let status = session.run()?;
    session.out.flush();
    eprintln!(
        "psdiff files: {backend}; {} events; {} queue overflows (events dropped); {} times process events lost; {} processes followed; {} files still open",
        session.summary.events,
        session.summary.overflows,
        session.summary.process_events_lost,
        session.follow.count,
        session.opens.len(),
    );
    Ok(status)
}

/// The status psdiff exits with for its command's: its code, or 128 +
/// the signal that ended it, as a shell gives.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Whether `path` is reported under the --path folders `dirs`: any path
/// when there are none. Both backends ask it of every event.
fn wanted(dirs: &[PathBuf], path: &Path) -> bool {
    dirs.is_empty() || dirs.iter().any(|dir| under(path, dir))
}

/// Whether `path` is `dir` or lies under it, as `Path::starts_with` says
/// for absolute, normal paths (no `.`, `..` or doubled `/`; psdiff makes
/// them so), compared as bytes.
fn under(path: &Path, dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (path, dir) = (path.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    path.first() == Some(&b'/')
        && path.starts_with(dir)
        && matches!(path.get(dir.len()), None | Some(b'/'))
}

/// One watch from start to end: the event sources, who is followed, the
/// files open, and what is written.
struct Session {
    watch: Watch,
    connector: Option<Connector>,
    follow: Follow,
    opens: Opens,
    out: Output,
    summary: Summary,
    /// Only files under these are reported (all, when empty).
    paths: Vec<PathBuf>,
    /// The command psdiff started, if any; the watch ends with it.
    child: Option<Child>,
    /// Whether the watch ends when every target has ended (no `--name`).
    end_with_targets: bool,
}

impl Session {
    /// Reads and reports events until the watch should end; returns the
    /// exit status.
    fn run(&mut self) -> Result<i32, FilesError> {
        let mut file_events = Vec::new();
        let mut last_check = Instant::now();
        let mut exit_status = None;
        loop {
            self.wait_for_events()?;
            // File events first, then process events: a fork happens
            // before the child's opens, so every child whose events were
            // just read has its fork queued by now.
            self.watch
                .read(&mut file_events)
                .map_err(FilesError::Read)?;
            self.process_events();
            self.report(&mut file_events);
            if !self.out.flush() {
                // Whoever read our output went away.
                return Ok(exit_status.unwrap_or(0));
            }
            if exit_status.is_some() || STOP.load(Ordering::SeqCst) {
                return Ok(exit_status.unwrap_or(0));
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                // One more round reads the events it caused, all queued by now.
                exit_status = Some(exit_code(status));
                continue;
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                self.follow.prune();
                if self.child.is_none() && self.end_with_targets && !self.follow.any_running() {
                    eprintln!("psdiff files: every watched process has ended");
                    return Ok(0);
                }
            }
        }
    }

    /// Waits up to 200 ms for a file or process event.
    fn wait_for_events(&self) -> Result<(), FilesError> {
        let mut fds = vec![PollFd::new(self.watch.fd(), PollFlags::POLLIN)];
        if let Some(c) = &self.connector {
            use std::os::fd::AsFd;
            fds.push(PollFd::new(c.fd().as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(FilesError::Read(e.into())),
        }
    }

    /// Forks, execs and exits, as the kernel reported them.
    fn process_events(&mut self) {
        let Some(connector) = &mut self.connector else {
            return;
        };
        let mut events = Vec::new();
        if let Err(e) = connector.read(&mut events) {
            self.summary.process_events_lost += 1;
            eprintln!(
                "psdiff files: process events were lost ({e}); placing processes through /proc from now on"
            );
            self.follow.forks_reported = false;
        }
        for event in events {
            match event {
                ProcEvent::Fork { parent, child } => self.follow.fork(parent, child),
                ProcEvent::Exec { pid } => self.follow.exec(pid),
                ProcEvent::Exit { pid, .. } => self.follow.exit(pid),
            }
        }
    }

    /// Writes the file events of followed processes, with durations.
    fn report(&mut self, file_events: &mut Vec<Event>) {
        let me = std::process::id();
        let now = Instant::now();
        if !file_events.is_empty() {
            // One reading of the clock for what was read together.
            self.out.time = crate::clock::timestamp();
        }
        for event in file_events.drain(..) {
            let (pid, path, kinds) = match event {
                Event::Overflow => {
                    self.summary.overflows += 1;
                    eprintln!(
                        "psdiff files: the kernel's event queue overflowed: events were lost"
                    );
                    self.out.lost(None);
                    continue;
                }
                Event::File { pid, path, kinds } => (pid, path, kinds),
            };
            if kinds.contains(&Kind::Exec) {
                self.follow.exec_of(pid, &path);
            }
            if pid == me || !wanted(&self.paths, &path) {
                continue;
            }
            let Some(process) = self.follow.lookup(pid) else {
                continue;
            };
            let (ppid, comm) = (process.ppid, process.comm.clone());
            let path: Arc<std::ffi::OsStr> = Arc::from(path.into_os_string());
            for kind in kinds {
                let duration = match kind {
                    Kind::Open => {
                        self.opens.open(pid, path.clone(), now);
                        None
                    }
                    Kind::Close => self.opens.close(pid, &path, now),
                    // Reported as its open.
                    Kind::Exec => continue,
                };
                self.summary.events += 1;
                self.out.write(&Line {
                    event: match kind {
                        Kind::Close => "close",
                        Kind::Open | Kind::Exec => "open",
                    },
                    pid,
                    ppid,
                    // fanotify reports processes, not threads.
                    tid: None,
                    comm: &comm,
                    path: Path::new(&path),
                    fd: None,
                    from_fd: None,
                    flags: None,
                    error: None,
                    duration,
                    closed_by: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_is_starts_with_on_normal_paths() {
        let dirs = ["/", "/etc", "/etc/ssh", "/var/lib/psdiff"];
        let paths = [
            "/",
            "/etc",
            "/etc/",
            "/etcetera",
            "/etc/ssh",
            "/etc/sshd",
            "/etc/ssh/x",
            "/var",
            "/var/lib/psdiff.db",
            "/var/lib/psdiff/a",
            "relative",
            "",
        ];
        for dir in dirs {
            for path in paths {
                let (dir, path) = (Path::new(dir), Path::new(path));
                assert_eq!(
                    under(path, dir),
                    path.starts_with(dir),
                    "{path:?} under {dir:?}"
                );
            }
        }
    }
}
