//! One reading of every process under a proc root (`/proc`, or a directory
//! laid out like it).

pub mod parse;
mod users;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use parse::Ids;
pub use users::UserNames;

/// Below this many processes one thread reads faster than two.
const PARALLEL_MIN: usize = 400;

/// A process as read from /proc, before any rule has looked at it.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// The effective user's name (or number, when NSS has no name for it).
    pub user: Arc<str>,
    pub uids: Ids,
    pub gids: Ids,
    pub comm: Vec<u8>,
    /// The target of /proc/PID/exe, when it can be read.
    pub exe: Option<PathBuf>,
    /// argv as the kernel holds it: bytes, empty arguments kept.
    pub argv: Vec<Vec<u8>>,
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
}

impl Snapshot {
    /// Reads every process under `root`. A process that vanishes or cannot
    /// be read while we read it is left out; it is never an error.
    pub fn take(root: &Path, users: &mut UserNames) -> Result<Snapshot, SnapshotError> {
        let pids = list_pids(root)?;
        let raws = read_all(root, &pids);
        if raws.is_empty() {
            return Err(SnapshotError::NotProcTree {
                root: root.to_path_buf(),
            });
        }
        let processes = raws
            .into_iter()
            .map(|raw| raw.into_process(users))
            .collect();
        Ok(Snapshot { processes })
    }
}

fn list_pids(root: &Path) -> Result<Vec<u32>, SnapshotError> {
    let unreadable = |source| SnapshotError::Unreadable {
        root: root.to_path_buf(),
        source,
    };
    let mut pids: Vec<u32> = std::fs::read_dir(root)
        .map_err(unreadable)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

fn read_all(root: &Path, pids: &[u32]) -> Vec<RawProcess> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || pids.len() < PARALLEL_MIN {
        return read_chunk(root, pids);
    }
    let chunk = pids.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = pids
            .chunks(chunk)
            .map(|part| scope.spawn(move || read_chunk(root, part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a /proc reader thread panicked"))
            .collect()
    })
}

fn read_chunk(root: &Path, pids: &[u32]) -> Vec<RawProcess> {
    let mut reader = Reader {
        path: root.to_path_buf(),
        buf: Vec::with_capacity(4096),
    };
    pids.iter()
        .filter_map(|&pid| reader.read_process(pid))
        .collect()
}

/// A process before its uid is named.
struct RawProcess {
    stat: parse::Stat,
    status: parse::Status,
    exe: Option<PathBuf>,
    argv: Vec<Vec<u8>>,
}

impl RawProcess {
    fn into_process(self, users: &mut UserNames) -> Process {
        let RawProcess {
            stat,
            status,
            exe,
            argv,
        } = self;
        Process {
            pid: stat.pid,
            ppid: stat.ppid,
            user: users.name(status.uids.effective),
            uids: status.uids,
            gids: status.gids,
            kernel_thread: stat.is_kernel_thread(),
            comm: stat.comm,
            exe,
            argv,
            state: stat.state,
            start_time: stat.start_time,
            utime: stat.utime,
            stime: stat.stime,
            nice: stat.nice,
            num_threads: stat.num_threads,
        }
    }
}

/// Reads the files of one process at a time, reusing one path and one
/// buffer; every file is closed before the next is opened, so a snapshot
/// never holds more than one /proc descriptor per thread.
struct Reader {
    path: PathBuf,
    buf: Vec<u8>,
}

impl Reader {
    fn read_process(&mut self, pid: u32) -> Option<RawProcess> {
        let stat = parse::parse_stat(self.read(pid, "stat")?)?;
        if stat.pid != pid {
            return None;
        }
        let status = parse::parse_status(self.read(pid, "status")?)?;
        let argv = parse::parse_cmdline(self.read(pid, "cmdline")?);
        let exe = self.with_path(pid, "exe", |p| std::fs::read_link(p).ok());
        Some(RawProcess {
            stat,
            status,
            exe,
            argv,
        })
    }

    fn read(&mut self, pid: u32, file: &str) -> Option<&[u8]> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let ok = self.with_path(pid, file, |p| {
            File::open(p)
                .and_then(|mut f| f.read_to_end(&mut buf))
                .is_ok()
        });
        self.buf = buf;
        ok.then_some(&self.buf[..])
    }

    fn with_path<T>(&mut self, pid: u32, file: &str, f: impl FnOnce(&Path) -> T) -> T {
        self.path.push(pid.to_string());
        self.path.push(file);
        let result = f(&self.path);
        self.path.pop();
        self.path.pop();
        result
    }
}
