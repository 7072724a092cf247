//! One reading of every process under a proc root (`/proc`, or a directory
//! laid out like it).

pub mod access;
pub mod attest;
pub mod cgroup;
pub mod parse;
mod procdir;
pub mod usage;
mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use cgroup::{Cgroup, ContainerId};
pub use parse::Ids;
pub use procdir::{ProcDir, ProcRoot, named_by_its_path};
pub use users::UserNames;

/// Below this many processes one thread reads faster than two.
const PARALLEL_MIN: usize = 400;

/// A process as read from /proc, before any rule has looked at it.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// The process group.
    pub pgrp: u32,
    /// The effective user's name (or number, when NSS has no name for it).
    pub user: Arc<str>,
    pub uids: Ids,
    pub gids: Ids,
    pub comm: Box<[u8]>,
    /// The target of /proc/PID/exe, when it can be read.
    pub exe: Option<Box<Path>>,
    /// The SELinux context (/proc/PID/attr/current), when asked for.
    pub selinux: Option<Box<str>>,
    /// Its cgroup and what it says (unit, session, container), when asked
    /// for and readable.
    pub cgroup: Option<Arc<Cgroup>>,
    /// Whether argv[0] names a program file other than the one the kernel
    /// runs (`exec -a /usr/sbin/sshd evil`), when asked for and known.
    pub disguised: Option<bool>,
    /// /proc/PID/cmdline without its trailing NULs: the arguments as
    /// bytes, NUL-separated, empty ones kept. See `argv()`.
    pub cmdline: Box<[u8]>,
    /// As /proc/PID/stat has it; `X` (dead) for one the watcher saw
    /// exit, judged after.
    pub state: char,
    pub kernel_thread: bool,
    /// Clock ticks after boot.
    pub start_time: u64,
    pub utime: u64,
    pub stime: u64,
    pub nice: i64,
    pub num_threads: u64,
    /// The doubts about its executable as judged at its exec (the watcher
    /// judges a program then, as it may end before the rules see it);
    /// taken only once it is gone (`Machine::doubts`).
    pub attested: Option<Arc<[attest::Doubt]>>,
}

impl Process {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }

    /// The executable's path, when read. A binary replaced by a package
    /// upgrade shows as `PATH (deleted)`; it is still the same daemon, so
    /// the suffix is dropped.
    pub fn exe_path(&self) -> Option<&str> {
        let exe = self.exe.as_ref()?.to_str()?;
        Some(exe.strip_suffix(" (deleted)").unwrap_or(exe))
    }

    /// The arguments; none for kernel threads and zombies.
    pub fn argv(&self) -> impl Iterator<Item = &[u8]> {
        let empty = self.cmdline.is_empty();
        self.cmdline.split(|&b| b == 0).filter(move |_| !empty)
    }
}

/// A plain process for unit tests: `p{pid}`, run by root, sleeping.
#[cfg(test)]
pub fn test_process(pid: u32, ppid: u32) -> Process {
    Process {
        pid,
        ppid,
        pgrp: pid,
        user: Arc::from("root"),
        uids: Ids::default(),
        gids: Ids::default(),
        comm: Box::from(&b"x"[..]),
        exe: None,
        selinux: None,
        cgroup: None,
        disguised: None,
        cmdline: format!("p{pid}").into_bytes().into(),
        state: 'S',
        kernel_thread: false,
        start_time: 1,
        utime: 0,
        stime: 0,
        nice: 0,
        num_threads: 1,
        attested: None,
    }
}

/// How long ago a process started, from the system's uptime at `root` and
/// the process's start time in clock ticks. `None` where the proc tree has
/// no `uptime` (synthetic trees).
pub fn age(root: &Path, process: &Process) -> Option<std::time::Duration> {
    use procfs::FromRead;
    let uptime = procfs::Uptime::from_file(root.join("uptime")).ok()?;
    let started = std::time::Duration::from_secs_f64(
        process.start_time as f64 / procfs::ticks_per_second() as f64,
    );
    uptime.uptime_duration().checked_sub(started)
}

/// Whether `process` is held stopped by someone other than the admin: by
/// a signal (state T), or by a tracer that is not root (state t). Root's
/// debugger holding a process is the admin at work. Read at `root`.
pub fn held_stopped(root: &Path, process: &Process) -> bool {
    match process.state {
        'T' => true,
        't' => tracer_uid(root, process.pid).is_none_or(|uid| uid != 0),
        _ => false,
    }
}

/// The effective uid of the process tracing `pid` (TracerPid), read at
/// `root`; `None` when nothing traces it or the tracer is gone.
pub fn tracer_uid(root: &Path, pid: u32) -> Option<u32> {
    let status = |pid: u32| {
        let buf = std::fs::read(root.join(pid.to_string()).join("status")).ok()?;
        parse::parse_status(&buf)
    };
    let tracer = status(pid)?.tracer;
    if tracer == 0 {
        return None;
    }
    Some(status(tracer)?.uids.effective)
}

/// Whether SELinux is on: its file system is mounted beside `root`'s
/// machine. (With `--proc-root`, this is the local machine's answer.)
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// What to read beyond the fields every command needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields {
    /// The /proc/PID/exe link: one more syscall per process, so only when
    /// a rule looks at it.
    pub exe: bool,
    /// /proc/PID/attr/current, for SELinux checks.
    pub selinux: bool,
    /// /proc/PID/cgroup: systemd unit, login session, container.
    pub cgroup: bool,
    /// Whether argv[0] is the program that runs: two more syscalls for a
    /// process whose argv[0] is a path.
    pub disguise: bool,
}

impl Fields {
    /// What either of two readers needs.
    pub fn union(self, other: Fields) -> Fields {
        Fields {
            exe: self.exe || other.exe,
            selinux: self.selinux || other.selinux,
            cgroup: self.cgroup || other.cgroup,
            disguise: self.disguise || other.disguise,
        }
    }
}

/// All processes read in one pass, in ascending pid order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub processes: Vec<Process>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {}: {source}; is it a mounted proc file system?", .root.display())]
    Unreadable {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a proc tree: it has no readable PID/stat entries; point --proc-root at a mounted /proc",
        .root.display()
    )]
    NotProcTree { root: PathBuf },
    #[error(transparent)]
    Hidden(#[from] access::HiddenProcesses),
    #[error(transparent)]
    NoIdentity(#[from] access::NoIdentity),
}

impl Snapshot {
    /// Reads every process under `root`. A process that vanishes or cannot
    /// be read while we read it is left out; it is never an error.
    ///
    /// psdiff leaves itself out: run from a systemd timer or by hand under
    /// INIT, its own line would otherwise be an alarm.
    pub fn take(
        root: &Path,
        users: &mut UserNames,
        fields: Fields,
    ) -> Result<Snapshot, SnapshotError> {
        let root = open_root(root)?;
        // Rules that rest on the executable cannot work without it; the
        // disguise check alone only narrows names, and goes without.
        if fields.exe {
            access::check_identity(&root)?;
        }
        let unreadable = |source| SnapshotError::Unreadable {
            root: root.path().to_path_buf(),
            source,
        };
        let mut pids = root.pids().map_err(unreadable)?;
        if let Some(me) = root.own_pid() {
            pids.retain(|&pid| pid != me);
        }
        let mut processes = read_all(&root, fields, &pids);
        if processes.is_empty() {
            return Err(SnapshotError::NotProcTree {
                root: root.path().to_path_buf(),
            });
        }
        for process in &mut processes {
            process.user = users.name(process.uids.effective);
        }
        Ok(Snapshot { processes })
    }

    /// Reads one process; `None` when there is none with that pid (or it
    /// is psdiff itself, which `take` leaves out too).
    pub fn take_one(
        root: &Path,
        users: &mut UserNames,
        fields: Fields,
        pid: u32,
    ) -> Result<Option<Process>, SnapshotError> {
        let root = open_root(root)?;
        if root.own_pid() == Some(pid) {
            return Ok(None);
        }
        let mut reader = Reader::new(fields, true);
        Ok(root
            .process(pid)
            .and_then(|dir| reader.read(&dir))
            .map(|mut process| {
                process.user = users.name(process.uids.effective);
                process
            }))
    }
}

/// Reads processes one at a time as they appear, for a watcher that
/// learns of each from the kernel: the proc root opened once, the
/// buffers and parsed cgroups kept between reads.
pub struct PidReader {
    root: ProcRoot,
    reader: Reader,
    users: UserNames,
}

impl PidReader {
    pub fn open(root: &Path, users: UserNames, fields: Fields) -> Result<PidReader, SnapshotError> {
        let root = open_root(root)?;
        if fields.exe {
            access::check_identity(&root)?;
        }
        Ok(PidReader {
            root,
            reader: Reader::new(fields, true),
            users,
        })
    }

    /// The process `pid` now; `None` when it is gone (or is this one).
    pub fn read(&mut self, pid: u32) -> Option<Process> {
        if self.root.own_pid() == Some(pid) {
            return None;
        }
        let mut process = self
            .root
            .process(pid)
            .and_then(|dir| self.reader.read(&dir))?;
        process.user = self.users.name(process.uids.effective);
        Some(process)
    }

    /// Names for uids, as this reader names them.
    pub fn users(&mut self) -> &mut UserNames {
        &mut self.users
    }
}

/// Opens a proc tree after checking that this user sees every process.
fn open_root(root: &Path) -> Result<ProcRoot, SnapshotError> {
    access::check_visibility(root)?;
    ProcRoot::open(root).map_err(|source| SnapshotError::Unreadable {
        root: root.to_path_buf(),
        source,
    })
}

/// How many threads read /proc at once: one per CPU, up to four (more
/// only contend in the kernel).
pub fn reading_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Pids a reading thread takes at a time: small enough that the threads
/// finish together, large enough that taking costs nothing.
const CHUNK: usize = 64;

/// Reads the processes of `pids`, in their order, their users not yet
/// named. Threads take chunks of pids as they go, each process read into
/// its own slot of one array (so the processes are never copied between
/// threads' arrays). The cgroup hierarchies, where this machine's are
/// mounted, are walked beside them (a walk is a few long reads, far
/// cheaper than a /proc/PID/cgroup per process) and joined in at the end.
fn read_all(root: &ProcRoot, fields: Fields, pids: &[u32]) -> Vec<Process> {
    let hierarchies = if fields.cgroup && root.is_local() {
        cgroup::Hierarchies::mounted()
    } else {
        None
    };
    let per_process_cgroup = hierarchies.is_none();
    let budget = cgroup::walk_budget(pids.len());
    let threads = reading_threads();
    let mut slots: Vec<Option<Process>> = Vec::new();
    slots.resize_with(pids.len(), || None);
    let work = Mutex::new(pids.chunks(CHUNK).zip(slots.chunks_mut(CHUNK)));
    let read_chunks = || {
        let mut reader = Reader::new(fields, per_process_cgroup);
        loop {
            let Some((pids, slots)) = work.lock().expect("no reader panics").next() else {
                break;
            };
            for (&pid, slot) in pids.iter().zip(slots) {
                *slot = root.process(pid).and_then(|dir| reader.read(&dir));
            }
        }
    };
    let walked = if threads < 2 || pids.len() < PARALLEL_MIN {
        read_chunks();
        hierarchies
            .as_ref()
            .map(|h| (h.read_systemd(budget), h.read_v2(budget)))
    } else {
        std::thread::scope(|scope| {
            let walking = hierarchies.as_ref().map(|h| {
                (
                    scope.spawn(|| h.read_systemd(budget)),
                    scope.spawn(|| h.read_v2(budget)),
                )
            });
            for _ in 0..threads {
                scope.spawn(read_chunks);
            }
            walking.map(|(systemd, v2)| {
                (
                    systemd.join().expect("a cgroup reader thread panicked"),
                    v2.join().expect("a cgroup reader thread panicked"),
                )
            })
        })
    };
    // Option<Process> is the size of Process: this keeps the array.
    let mut processes: Vec<Process> = slots.into_iter().flatten().collect();
    if let Some((systemd, v2)) = walked {
        let mut cgroups = cgroup::Cgroups::default();
        let walked = cgroup::by_pid(systemd, v2, &mut cgroups);
        let unplaced = processes
            .iter_mut()
            .filter(|p| !p.kernel_thread && p.cgroup.is_none());
        for process in unplaced {
            process.cgroup = match walked.get(&process.pid) {
                Some(cgroup) => Some(cgroup.clone()),
                None => late_cgroup(root, process, &mut cgroups),
            };
        }
    }
    processes
}

/// The cgroup of a process the walk did not see (it started meanwhile),
/// from /proc, while its pid still names the same process.
fn late_cgroup(
    root: &ProcRoot,
    process: &Process,
    cgroups: &mut cgroup::Cgroups,
) -> Option<Arc<Cgroup>> {
    let dir = root.process(process.pid)?;
    let mut buf = Vec::new();
    if dir.stat(&mut buf)?.start_time != process.start_time {
        return None;
    }
    cgroups.read(&dir, &mut buf)
}

/// What one reading thread keeps between processes: a buffer, and the
/// cgroups parsed so far.
struct Reader {
    fields: Fields,
    /// Whether to read each process's cgroup from /proc (where no walk of
    /// the cgroup file system tells it).
    per_process_cgroup: bool,
    buf: Vec<u8>,
    cgroups: cgroup::Cgroups,
    /// The user of a process until `Snapshot::take` names it.
    unnamed: Arc<str>,
}

impl Reader {
    fn new(fields: Fields, per_process_cgroup: bool) -> Reader {
        Reader {
            fields,
            per_process_cgroup,
            buf: Vec::with_capacity(4096),
            cgroups: cgroup::Cgroups::default(),
            unnamed: Arc::from(""),
        }
    }

    fn read(&mut self, dir: &ProcDir) -> Option<Process> {
        let (fields, buf) = (self.fields, &mut self.buf);
        let stat = dir.stat(buf)?;
        if stat.is_kernel_thread() {
            // Root's, with no argv, exe or cgroup of their own.
            return Some(self.process(stat, Ids::default(), Ids::default()));
        }
        let status = parse::parse_status(dir.read("status", buf)?)?;
        // A leader that called pthread_exit is a zombie while its other
        // threads run on: the process lives in them, so its state, argv
        // and exe are theirs, never a zombie's nothing.
        let live_thread = (stat.state == 'Z' && stat.num_threads > 1)
            .then(|| dir.live_thread(buf))
            .flatten();
        let task = match &live_thread {
            Some((tid, _)) => format!("task/{tid}/"),
            None => String::new(),
        };
        let task = |file: &str| format!("{task}{file}");
        let cmdline: Box<[u8]> = parse::trim_cmdline(dir.read(&task("cmdline"), buf)?).into();
        let exe = if fields.exe {
            dir.read_link(&task("exe")).map(PathBuf::into_boxed_path)
        } else {
            None
        };
        let selinux = if fields.selinux {
            dir.read("attr/current", buf)
                .map(|c| {
                    String::from_utf8_lossy(c)
                        .trim_end_matches(['\0', '\n'])
                        .to_string()
                })
                .filter(|c| !c.is_empty())
        } else {
            None
        };
        // A zombie is in no cgroup.procs, though its file still tells.
        let cgroup = if fields.cgroup && (self.per_process_cgroup || stat.state == 'Z') {
            self.cgroups.read(dir, buf)
        } else {
            None
        };
        let disguised = if fields.disguise {
            let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
            dir.disguised(argv0, exe.as_deref(), &task(""))
        } else {
            None
        };
        let mut process = Process {
            exe,
            selinux: selinux.map(String::into_boxed_str),
            cgroup,
            disguised,
            cmdline,
            ..self.process(stat, status.uids, status.gids)
        };
        if let Some((_, state)) = live_thread {
            process.state = state;
        }
        Some(process)
    }

    /// A process of what its stat and ids say, and nothing more.
    fn process(&self, stat: parse::Stat, uids: Ids, gids: Ids) -> Process {
        Process {
            pid: stat.pid,
            ppid: stat.ppid,
            pgrp: stat.pgrp,
            user: self.unnamed.clone(),
            uids,
            gids,
            kernel_thread: stat.is_kernel_thread(),
            comm: stat.comm.into(),
            exe: None,
            selinux: None,
            cgroup: None,
            disguised: None,
            cmdline: Box::default(),
            state: stat.state,
            start_time: stat.start_time,
            utime: stat.utime,
            stime: stat.stime,
            nice: stat.nice,
            num_threads: stat.num_threads,
            attested: None,
        }
    }
}
