//! `psdiff files --backend ebpf`: the session that turns the kernel
//! side's events into lines. The kernel follows the tree and sends every
//! open, failed open, close, copy and directory change of the watched
//! processes, with thread and descriptor; psdiff keeps their descriptor
//! tables (`descriptors`) to name what a close closed and for how long.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::descriptors::{Descriptor, Descriptors};
use super::ebpf::{self, Filter, KernelEvent, Kind, Tracer};
use super::follow::Follow;
use super::output::{Line, Output};
use super::{FilesError, STOP, Settings};

const O_CLOEXEC: u32 = 0o2000000;

/// Loads the kernel side for these settings: the --path prefixes and
/// --name names it can compare itself, --depth, the ring buffer's size.
pub fn load(settings: &Settings, paths: &[PathBuf]) -> Result<Tracer, ebpf::EbpfError> {
    // With more or longer prefixes than the kernel side holds, psdiff
    // filters them all itself.
    let in_kernel = paths.len() <= ebpf::MAX_PREFIXES
        && paths.iter().all(|p| p.as_os_str().len() < ebpf::PREFIX_MAX);
    let prefixes: Vec<&Path> = if in_kernel {
        paths.iter().map(PathBuf::as_path).collect()
    } else {
        Vec::new()
    };
    let names: Vec<String> = settings
        .names
        .iter()
        .take(ebpf::MAX_NAMES)
        .cloned()
        .collect();
    Tracer::load(&Filter {
        max_depth: settings.depth,
        prefixes: &prefixes,
        names: &names,
        ring_bytes: settings.ring_bytes,
    })
}

/// Watches with `tracer` until the command ends, every target has ended
/// (without --name), or SIGINT/SIGTERM; returns the exit status.
pub fn run(
    settings: &mut Settings,
    paths: &[PathBuf],
    mut follow: Follow,
    mut tracer: Tracer,
) -> Result<i32, FilesError> {
    let mut session = Session {
        processes: HashMap::new(),
        descriptors: Descriptors::new(settings.max_open_files),
        out: Output::new(settings.json),
        paths: paths.to_vec(),
        clock: Clock::now(),
        events: 0,
        lost: 0,
        me: std::process::id(),
        running: 0,
        root: crate::snapshot::ProcRoot::open(&settings.proc_root).ok(),
    };
    // The targets given by pid first, then the program attached, then
    // their descendants found in /proc: a fork in between is seen by the
    // kernel, as the child of a watched process.
    for (pid, f) in follow.followed() {
        tracer.watch(pid, f.depth)?;
    }
    tracer.start()?;
    let snapshot = crate::snapshot::Snapshot::take(
        &settings.proc_root,
        &mut settings.users,
        crate::snapshot::Fields {
            exe: !settings.names.is_empty(),
            ..Default::default()
        },
    )?;
    follow.scan(&snapshot.processes);
    drop(snapshot);
    for (pid, f) in follow.followed() {
        if pid == session.me {
            continue;
        }
        tracer.watch(pid, f.depth)?;
        session.known(pid, f.ppid, &f.comm);
        if let Some(dir) = session.root.as_ref().and_then(|r| r.process(pid)) {
            session
                .descriptors
                .seed(pid, dir.descriptors(), dir.read_link("cwd"));
        }
    }
    let child = match settings.command.split_first() {
        Some((program, args)) => Some(spawn_watched(&mut tracer, &mut session, program, args)?),
        None => None,
    };
    eprintln!(
        "psdiff files: backend ebpf; watching {} processes{}; Ctrl-C ends the watch",
        session.running,
        if settings.names.is_empty() {
            ""
        } else {
            " (and any that start with a watched name)"
        },
    );
    let status = session.watch(&mut tracer, child, settings.names.is_empty());
    session.out.flush();
    let lost = tracer.lost();
    eprintln!(
        "psdiff files: backend ebpf; {} events; {} events lost (ring buffer full); {} descriptors still open; {} forgotten past --max-open-files",
        session.events,
        lost,
        session.descriptors.len(),
        session.descriptors.forgotten,
    );
    Ok(status)
}

/// Starts `-- CMD` watched from its first instruction: psdiff itself is
/// watched while it forks (at the depth just above 0, so the child is a
/// target), and unwatched after.
fn spawn_watched(
    tracer: &mut Tracer,
    session: &mut Session,
    program: &str,
    args: &[String],
) -> Result<Child, FilesError> {
    tracer.watch(session.me, u32::MAX)?;
    let spawned = Command::new(program).args(args).spawn();
    tracer.unwatch(session.me);
    let child = spawned.map_err(|source| FilesError::Spawn {
        cmd: program.into(),
        source,
    })?;
    let comm: String = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    session.known(child.id(), session.me, &comm);
    // It starts where psdiff is, with psdiff's descriptors (open before
    // the watch, so their closes are not reported).
    session
        .descriptors
        .seed(child.id(), Vec::new(), std::env::current_dir().ok());
    Ok(child)
}

/// Kernel time (CLOCK_MONOTONIC) to wall-clock time, as text made once
/// per millisecond (its precision): events come hundreds to the millisecond.
struct Clock {
    boot_offset: Duration,
    /// The millisecond last written.
    written_ms: Option<u128>,
}

impl Clock {
    fn now() -> Clock {
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(Duration::from)
            .unwrap_or_default();
        Clock {
            boot_offset: wall.saturating_sub(monotonic),
            written_ms: None,
        }
    }

    /// Makes `text` the time of `ns`.
    fn write(&mut self, ns: u64, text: &mut String) {
        let wall = self.boot_offset + Duration::from_nanos(ns);
        let ms = Some(wall.as_millis());
        if ms != self.written_ms {
            self.written_ms = ms;
            *text = crate::clock::format(SystemTime::UNIX_EPOCH + wall);
        }
    }
}

struct Session {
    /// pid → (ppid, comm) of every process watched.
    processes: HashMap<u32, (u32, String)>,
    descriptors: Descriptors,
    out: Output,
    paths: Vec<PathBuf>,
    clock: Clock,
    events: u64,
    lost: u64,
    me: u32,
    /// Processes watched and not yet exited.
    running: usize,
    /// Where a process whose exit was lost is found gone.
    root: Option<crate::snapshot::ProcRoot>,
}

impl Session {
    fn known(&mut self, pid: u32, ppid: u32, comm: &str) {
        if self.processes.insert(pid, (ppid, comm.into())).is_none() {
            self.running += 1;
        }
    }

    fn watch(
        &mut self,
        tracer: &mut Tracer,
        mut child: Option<Child>,
        end_with_targets: bool,
    ) -> i32 {
        let mut exit_status = None;
        let mut last_check = Instant::now();
        loop {
            // Drained every millisecond: the kernel side never wakes us.
            std::thread::sleep(Duration::from_millis(1));
            tracer.drain(|event| self.handle(event));
            let lost = tracer.lost();
            if lost > self.lost {
                eprintln!(
                    "psdiff files: the ring buffer was full: {} events lost (a larger --ring-buffer keeps them)",
                    lost - self.lost
                );
                self.out.lost(Some(lost - self.lost));
                self.lost = lost;
            }
            if !self.out.flush() || exit_status.is_some() || STOP.load(Ordering::SeqCst) {
                return exit_status.unwrap_or(0);
            }
            if let Some(c) = child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                // One more round drains what it did last.
                exit_status = Some(super::exit_code(status));
                continue;
            }
            if last_check.elapsed() >= Duration::from_millis(200) {
                last_check = Instant::now();
                self.forget_vanished();
                if child.is_none() && end_with_targets && self.running == 0 {
                    eprintln!("psdiff files: every watched process has ended");
                    return 0;
                }
            }
        }
    }

    /// Processes that ended while their exit event was lost (a full ring
    /// buffer): gone from /proc, they are forgotten without a report.
    fn forget_vanished(&mut self) {
        if self.lost == 0 {
            return;
        }
        let Some(root) = &self.root else {
            return;
        };
        let gone: Vec<u32> = self
            .processes
            .keys()
            .copied()
            .filter(|&pid| root.process(pid).is_none())
            .collect();
        for pid in gone {
            self.processes.remove(&pid);
            self.descriptors.exit(pid);
            self.running -= 1;
        }
    }

    fn handle(&mut self, e: KernelEvent) {
        let comm = || String::from_utf8_lossy(e.comm);
        if e.pid == self.me {
            return;
        }
        let at = e.time_ns;
        match e.kind {
            Kind::Fork => {
                self.known(e.pid, e.ppid, &comm());
                self.descriptors.fork(e.ppid, e.pid);
            }
            Kind::Exec => {
                match self.processes.get_mut(&e.pid) {
                    Some((_, name)) => *name = comm().into_owned(),
                    None => {
                        // A target by --name: what it holds and where it
                        // is, from /proc, as it starts.
                        self.known(e.pid, e.ppid, &comm());
                        if let Some(dir) = self.root.as_ref().and_then(|r| r.process(e.pid)) {
                            self.descriptors
                                .seed(e.pid, dir.descriptors(), dir.read_link("cwd"));
                        }
                    }
                }
                for (fd, d) in self.descriptors.exec(e.pid) {
                    self.closed(&e, fd, d, Some("exec"));
                }
            }
            Kind::Exit => {
                for (fd, d) in self.descriptors.exit(e.pid) {
                    self.closed(&e, fd, d, Some("exit"));
                }
                if self.processes.remove(&e.pid).is_some() {
                    self.running -= 1;
                }
            }
            Kind::Open | Kind::Failed => {
                let path = self.path(&e);
                if !super::wanted(&self.paths, &path) {
                    return;
                }
                let failed = e.kind == Kind::Failed;
                if !failed {
                    let path: Arc<OsStr> = Arc::from(path.as_os_str());
                    self.descriptors
                        .open(e.pid, e.fd, path, at, e.flags & O_CLOEXEC != 0);
                }
                let error = failed.then(|| errno_name(e.ret));
                self.line(&e, if failed { "error" } else { "open" }, &path, |l| {
                    l.fd = (!failed).then_some(e.fd);
                    l.flags = Some(e.flags);
                    l.error = error;
                });
            }
            Kind::Close => {
                if let Some(d) = self.descriptors.close(e.pid, e.fd) {
                    self.closed(&e, e.fd, d, None);
                }
            }
            Kind::Dup => {
                let (replaced, path) =
                    self.descriptors
                        .dup(e.pid, e.arg, e.fd, at, e.flags & O_CLOEXEC != 0);
                if let Some(d) = replaced {
                    self.closed(&e, e.fd, d, Some("dup2"));
                }
                if let Some(path) = path {
                    self.line(&e, "dup", Path::new(&path), |l| {
                        l.fd = Some(e.fd);
                        l.from_fd = Some(e.arg);
                    });
                }
            }
            Kind::SetCloexec => self
                .descriptors
                .set_cloexec(e.pid, e.fd, e.flags & O_CLOEXEC != 0),
            Kind::CloseRange => {
                for (fd, d) in self.descriptors.close_range(e.pid, e.fd, e.arg, e.flags) {
                    self.closed(&e, fd, d, None);
                }
            }
            Kind::Chdir => self
                .descriptors
                .chdir(e.pid, Path::new(OsStr::from_bytes(e.path))),
            Kind::Fchdir => self.descriptors.fchdir(e.pid, e.fd),
        }
    }

    /// The path an open named, made absolute; as given when the directory
    /// it is relative to is not known.
    fn path(&self, e: &KernelEvent) -> PathBuf {
        let given = Path::new(OsStr::from_bytes(e.path));
        self.descriptors
            .resolve(e.pid, e.arg, given)
            .unwrap_or_else(|| given.to_path_buf())
    }

    /// A descriptor closed: reported when it was opened during the watch
    /// (what was open before has no open to match) and under --path.
    fn closed(&mut self, e: &KernelEvent, fd: i32, d: Descriptor, by: Option<&'static str>) {
        let Some(opened) = d.opened_ns else {
            return;
        };
        let path = Path::new(&d.path);
        if !super::wanted(&self.paths, path) {
            return;
        }
        let duration = Duration::from_nanos(e.time_ns.saturating_sub(opened));
        self.line(e, "close", path, |l| {
            l.fd = Some(fd);
            l.duration = Some(duration);
            l.closed_by = by;
        });
    }

    fn line(
        &mut self,
        e: &KernelEvent,
        event: &'static str,
        path: &Path,
        fill: impl FnOnce(&mut Line),
    ) {
        let ppid = self.processes.get(&e.pid).map_or(0, |(ppid, _)| *ppid);
        let mut line = Line {
            event,
            pid: e.pid,
            ppid,
            tid: Some(e.tid),
            comm: &String::from_utf8_lossy(e.comm),
            path,
            fd: None,
            from_fd: None,
            flags: None,
            error: None,
            duration: None,
            closed_by: None,
        };
        fill(&mut line);
        self.clock.write(e.time_ns, &mut self.out.time);
        self.out.write(&line);
        self.events += 1;
    }
}

/// `ENOENT` for a return of -2.
fn errno_name(ret: i64) -> String {
    // Errno's Debug form is the constant's name.
    format!("{:?}", nix::errno::Errno::from_raw((-ret) as i32))
}
