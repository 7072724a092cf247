//! One reading of every process under a proc root (`/proc`, or a directory
//! laid out like it).

pub mod access;
pub mod cgroup;
pub mod parse;
mod procdir;
mod users;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cgroup::{Cgroup, ContainerId};
pub use parse::Ids;
pub use procdir::{ProcDir, ProcRoot};
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
    pub comm: Vec<u8>,
    /// The target of /proc/PID/exe, when it can be read.
    pub exe: Option<PathBuf>,
    /// The SELinux context (/proc/PID/attr/current), when asked for.
    pub selinux: Option<String>,
    /// Its cgroup and what it says (unit, session, container), when asked
    /// for and readable.
    pub cgroup: Option<Arc<Cgroup>>,
    /// Whether argv[0] names a program file other than the one the kernel
    /// runs (`exec -a /usr/sbin/sshd evil`), when asked for and known.
    pub disguised: Option<bool>,
    /// /proc/PID/cmdline without its trailing NULs: the arguments as
    /// bytes, NUL-separated, empty ones kept. See `argv()`.
    pub cmdline: Vec<u8>,
    pub state: char,
    pub kernel_thread: bool,
    /// Clock ticks after boot.
    pub start_time: u64,
    pub utime: u64,
    pub stime: u64,
    pub nice: i64,
    pub num_threads: u64,
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
        comm: b"x".to_vec(),
        exe: None,
        selinux: None,
        cgroup: None,
        disguised: None,
        cmdline: format!("p{pid}").into_bytes(),
        state: 'S',
        kernel_thread: false,
        start_time: 1,
        utime: 0,
        stime: 0,
        nice: 0,
        num_threads: 1,
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
        // Cgroups come from the cgroup file system where it is this
        // machine's, which is far cheaper than a file per process.
        let walked = if fields.cgroup && root.is_local() {
            cgroup::walk(&mut cgroup::Cgroups::default())
        } else {
            None
        };
        let mut pids = root.pids().map_err(unreadable)?;
        if let Some(me) = root.own_pid() {
            pids.retain(|&pid| pid != me);
        }
        let raws = read_all(&root, fields, walked.as_ref(), &pids);
        if raws.is_empty() {
            return Err(SnapshotError::NotProcTree {
                root: root.path().to_path_buf(),
            });
        }
        let processes = raws
            .into_iter()
            .map(|raw| raw.into_process(users))
            .collect();
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
        Ok(read_chunk(&root, fields, None, &[pid])
            .pop()
            .map(|raw| raw.into_process(users)))
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

/// Cgroups by pid, read from the cgroup file system.
type Walked = HashMap<u32, Arc<Cgroup>>;

fn read_all(
    root: &ProcRoot,
    fields: Fields,
    walked: Option<&Walked>,
    pids: &[u32],
) -> Vec<RawProcess> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || pids.len() < PARALLEL_MIN {
        return read_chunk(root, fields, walked, pids);
    }
    let chunk = pids.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = pids
            .chunks(chunk)
            .map(|part| scope.spawn(move || read_chunk(root, fields, walked, part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a /proc reader thread panicked"))
            .collect()
    })
}

/// Reads the processes of `pids`, one folder descriptor at a time (closed
/// before the next), reusing one buffer.
fn read_chunk(
    root: &ProcRoot,
    fields: Fields,
    walked: Option<&Walked>,
    pids: &[u32],
) -> Vec<RawProcess> {
    let mut reader = Reader {
        fields,
        buf: Vec::with_capacity(4096),
        cgroups: cgroup::Cgroups::default(),
        walked,
    };
    pids.iter()
        .filter_map(|&pid| reader.read(&root.process(pid)?))
        .collect()
}

/// What one reading thread keeps between processes: a buffer, and the
/// cgroups parsed so far.
struct Reader<'a> {
    fields: Fields,
    buf: Vec<u8>,
    cgroups: cgroup::Cgroups,
    walked: Option<&'a Walked>,
}

/// A process before its uid is named.
struct RawProcess {
    stat: parse::Stat,
    status: parse::Status,
    exe: Option<PathBuf>,
    selinux: Option<String>,
    cgroup: Option<Arc<Cgroup>>,
    disguised: Option<bool>,
    cmdline: Vec<u8>,
}

impl Reader<'_> {
    fn read(&mut self, dir: &ProcDir) -> Option<RawProcess> {
        let (fields, buf) = (self.fields, &mut self.buf);
        let stat = dir.stat(buf)?;
        if stat.is_kernel_thread() {
            // Root's, with no argv, exe or cgroup of their own.
            return Some(RawProcess::kernel_thread(stat));
        }
        let status = parse::parse_status(dir.read("status", buf)?)?;
        let cmdline = parse::trim_cmdline(dir.read("cmdline", buf)?).to_vec();
        let exe = if fields.exe {
            dir.read_link("exe")
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
        let walked = self.walked.and_then(|w| w.get(&dir.pid())).cloned();
        let cgroup = match walked {
            Some(cgroup) => Some(cgroup),
            None if fields.cgroup => dir
                .read("cgroup", buf)
                .and_then(cgroup::path_of)
                .map(|path| self.cgroups.get(path)),
            None => None,
        };
        let disguised = if fields.disguise {
            let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
            dir.disguised(argv0, exe.as_deref())
        } else {
            None
        };
        Some(RawProcess {
            stat,
            status,
            exe,
            selinux,
            cgroup,
            disguised,
            cmdline,
        })
    }
}

impl RawProcess {
    fn kernel_thread(stat: parse::Stat) -> RawProcess {
        RawProcess {
            stat,
            status: parse::Status {
                uids: Ids::default(),
                gids: Ids::default(),
            },
            exe: None,
            selinux: None,
            cgroup: None,
            disguised: None,
            cmdline: Vec::new(),
        }
    }

    fn into_process(self, users: &mut UserNames) -> Process {
        let RawProcess {
            stat,
            status,
            exe,
            selinux,
            cgroup,
            disguised,
            cmdline,
        } = self;
        Process {
            pid: stat.pid,
            ppid: stat.ppid,
            pgrp: stat.pgrp,
            user: users.name(status.uids.effective),
            uids: status.uids,
            gids: status.gids,
            kernel_thread: stat.is_kernel_thread(),
            comm: stat.comm,
            exe,
            selinux,
            cgroup,
            disguised,
            cmdline,
            state: stat.state,
            start_time: stat.start_time,
            utime: stat.utime,
            stime: stat.stime,
            nice: stat.nice,
            num_threads: stat.num_threads,
        }
    }
}
