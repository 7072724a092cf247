//! The descriptor table of each watched process, as the eBPF backend's
//! events rebuild it: what each fd names, since when, and whether exec
//! closes it; and each process's working directory, against which the
//! kernel resolved a relative path. A close is matched to its open by
//! (pid, fd), as the kernel itself does.
//!
//! Bounded: past `capacity` descriptors the oldest is forgotten (its
//! close is then not reported), so a process that never closes cannot
//! grow psdiff without end.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

pub const AT_FDCWD: i32 = -100;
const CLOSE_RANGE_CLOEXEC: u32 = 4;

/// One open descriptor.
#[derive(Debug, Clone)]
pub struct Descriptor {
    pub path: Arc<OsStr>,
    /// When it was opened (CLOCK_MONOTONIC ns); `None` when it was open
    /// before the watch began.
    pub opened_ns: Option<u64>,
    pub cloexec: bool,
    seq: u64,
}

#[derive(Debug, Default, Clone)]
struct Table {
    fds: HashMap<i32, Descriptor>,
    cwd: Option<PathBuf>,
}

pub struct Descriptors {
    capacity: usize,
    processes: HashMap<u32, Table>,
    /// Every descriptor in the order it was added, to forget the oldest;
    /// entries whose descriptor has gone are skipped when met.
    order: VecDeque<(u64, u32, i32)>,
    next: u64,
    len: usize,
    /// Descriptors forgotten to stay within `capacity`.
    pub forgotten: u64,
}

impl Descriptors {
    pub fn new(capacity: usize) -> Descriptors {
        Descriptors {
            capacity: capacity.max(1),
            processes: HashMap::default(),
            order: VecDeque::new(),
            next: 0,
            len: 0,
            forgotten: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// A process found running when the watch began: its descriptors
    /// and working directory as /proc shows them.
    pub fn seed(&mut self, pid: u32, fds: Vec<(i32, PathBuf)>, cwd: Option<PathBuf>) {
        self.processes.entry(pid).or_default().cwd = cwd;
        for (fd, path) in fds {
            self.insert(pid, fd, Arc::from(path.into_os_string()), None, false);
        }
    }

    /// A successful open. A descriptor of the same number still in the
    /// table was closed unseen (events lost) and is replaced.
    pub fn open(&mut self, pid: u32, fd: i32, path: Arc<OsStr>, at_ns: u64, cloexec: bool) {
        self.insert(pid, fd, path, Some(at_ns), cloexec);
    }

    pub fn close(&mut self, pid: u32, fd: i32) -> Option<Descriptor> {
        let removed = self.processes.get_mut(&pid)?.fds.remove(&fd);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// `new` is now a copy of `old`: returns what `new` named before (a
    /// dup2 over an open descriptor closes it), and the copied path, when
    /// `old` is known.
    pub fn dup(
        &mut self,
        pid: u32,
        old: i32,
        new: i32,
        at_ns: u64,
        cloexec: bool,
    ) -> (Option<Descriptor>, Option<Arc<OsStr>>) {
        let closed = self.close(pid, new);
        let path = self
            .processes
            .get(&pid)
            .and_then(|t| t.fds.get(&old))
            .map(|d| d.path.clone());
        if let Some(path) = &path {
            self.insert(pid, new, path.clone(), Some(at_ns), cloexec);
        }
        (closed, path)
    }

    pub fn set_cloexec(&mut self, pid: u32, fd: i32, on: bool) {
        if let Some(d) = self
            .processes
            .get_mut(&pid)
            .and_then(|t| t.fds.get_mut(&fd))
        {
            d.cloexec = on;
        }
    }

    /// close_range(first, last, flags): the descriptors it closed, or
    /// none when it only marked them close-on-exec.
    pub fn close_range(
        &mut self,
        pid: u32,
        first: i32,
        last: i32,
        flags: u32,
    ) -> Vec<(i32, Descriptor)> {
        let Some(table) = self.processes.get_mut(&pid) else {
            return Vec::new();
        };
        let fds: Vec<i32> = table
            .fds
            .keys()
            .copied()
            .filter(|fd| (first..=last).contains(fd))
            .collect();
        if flags & CLOSE_RANGE_CLOEXEC != 0 {
            for fd in fds {
                table.fds.get_mut(&fd).expect("listed").cloexec = true;
            }
            return Vec::new();
        }
        let mut closed = Vec::new();
        for fd in fds {
            closed.push((fd, table.fds.remove(&fd).expect("listed")));
        }
        self.len -= closed.len();
        closed.sort_by_key(|(fd, _)| *fd);
        closed
    }

    /// A fork: the child starts with copies of its parent's descriptors
    /// (opened when the parent opened them) and its working directory.
    /// A parent not known (psdiff itself, for `-- CMD`) leaves the child
    /// as it was seeded.
    pub fn fork(&mut self, parent: u32, child: u32) {
        let Some(table) = self.processes.get(&parent).cloned() else {
            return;
        };
        self.remove_process(child);
        self.processes.entry(child).or_default().cwd = table.cwd;
        let mut fds: Vec<_> = table.fds.into_iter().collect();
        fds.sort_by_key(|(fd, _)| *fd);
        for (fd, d) in fds {
            self.insert(child, fd, d.path, d.opened_ns, d.cloexec);
        }
    }

    /// An exec: the descriptors it closed (those marked close-on-exec).
    pub fn exec(&mut self, pid: u32) -> Vec<(i32, Descriptor)> {
        let Some(table) = self.processes.get_mut(&pid) else {
            return Vec::new();
        };
        let mut closed: Vec<_> = table
            .fds
            .iter()
            .filter(|(_, d)| d.cloexec)
            .map(|(&fd, _)| fd)
            .collect();
        closed.sort_unstable();
        let closed: Vec<_> = closed
            .into_iter()
            .map(|fd| (fd, table.fds.remove(&fd).expect("listed")))
            .collect();
        self.len -= closed.len();
        closed
    }

    /// An exit: every descriptor it still held, which the kernel closes.
    pub fn exit(&mut self, pid: u32) -> Vec<(i32, Descriptor)> {
        let mut closed: Vec<_> = self.remove_process(pid).into_iter().collect();
        closed.sort_by_key(|(fd, _)| *fd);
        closed
    }

    pub fn chdir(&mut self, pid: u32, path: &Path) {
        let cwd = self.resolve(pid, AT_FDCWD, path);
        self.processes.entry(pid).or_default().cwd = cwd;
    }

    pub fn fchdir(&mut self, pid: u32, fd: i32) {
        let cwd = self.path_of(pid, fd).map(|p| PathBuf::from(&*p));
        if let Some(cwd) = cwd {
            self.processes.entry(pid).or_default().cwd = Some(cwd);
        }
    }

    pub fn path_of(&self, pid: u32, fd: i32) -> Option<Arc<OsStr>> {
        Some(self.processes.get(&pid)?.fds.get(&fd)?.path.clone())
    }

    /// `path` as the kernel resolved it: absolute as given; relative
    /// against the working directory (`dirfd` AT_FDCWD) or the directory
    /// `dirfd` names. `None` when that directory is not known. `.` and
    /// `..` are resolved by name.
    pub fn resolve(&self, pid: u32, dirfd: i32, path: &Path) -> Option<PathBuf> {
        if path.is_absolute() {
            return Some(normalize(path));
        }
        let base = if dirfd == AT_FDCWD {
            self.processes.get(&pid)?.cwd.clone()?
        } else {
            PathBuf::from(&*self.path_of(pid, dirfd)?)
        };
        Some(normalize(&base.join(path)))
    }

    fn remove_process(&mut self, pid: u32) -> HashMap<i32, Descriptor> {
        let fds = self
            .processes
            .remove(&pid)
            .map(|t| t.fds)
            .unwrap_or_default();
        self.len -= fds.len();
        fds
    }

    fn insert(
        &mut self,
        pid: u32,
        fd: i32,
        path: Arc<OsStr>,
        opened_ns: Option<u64>,
        cloexec: bool,
    ) {
        while self.len >= self.capacity {
            self.forget_oldest();
        }
        let seq = self.next;
        self.next += 1;
        let table = self.processes.entry(pid).or_default();
        let old = table.fds.insert(
            fd,
            Descriptor {
                path,
                opened_ns,
                cloexec,
                seq,
            },
        );
        if old.is_none() {
            self.len += 1;
        }
        self.order.push_back((seq, pid, fd));
        if self.order.len() > 2 * self.capacity {
            let processes = &self.processes;
            self.order.retain(|&(seq, pid, fd)| {
                processes
                    .get(&pid)
                    .and_then(|t| t.fds.get(&fd))
                    .is_some_and(|d| d.seq == seq)
            });
        }
    }

    fn forget_oldest(&mut self) {
        while let Some((seq, pid, fd)) = self.order.pop_front() {
            let Some(table) = self.processes.get_mut(&pid) else {
                continue;
            };
            if table.fds.get(&fd).is_some_and(|d| d.seq == seq) {
                table.fds.remove(&fd);
                self.len -= 1;
                self.forgotten += 1;
                return;
            }
        }
    }
}

/// `a/./b/../c` as `a/c`, by name (as the kernel would without links).
fn normalize(path: &Path) -> PathBuf {
    // Most paths an open names are normal already: copied as they are.
    if is_normal(path) {
        return path.to_path_buf();
    }
    normalize_by_parts(path)
}

fn normalize_by_parts(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Absolute, with no `.` or `..` part and no doubled or trailing `/`:
/// what `normalize` would make of it.
fn is_normal(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    bytes == b"/"
        || (bytes.first() == Some(&b'/')
            && bytes[1..]
                .split(|&b| b == b'/')
                .all(|part| !matches!(part, b"" | b"." | b"..")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Arc<OsStr> {
        Arc::from(OsStr::new(p))
    }

    #[test]
    fn normal_paths_are_kept_and_others_normalized() {
        for p in [
            "/",
            "/etc",
            "/etc/passwd",
            "/etc/",
            "//etc",
            "/etc//x",
            "/etc/./x",
            "/etc/../x",
            "/a/.",
            "/a/..",
            "/.hidden/..x/x..",
            "rel/x",
            "",
            "/a/b/c.d",
        ] {
            assert_eq!(
                normalize(Path::new(p)),
                normalize_by_parts(Path::new(p)),
                "{p:?}"
            );
        }
        assert!(is_normal(Path::new("/etc/passwd")) && is_normal(Path::new("/")));
        assert!(!is_normal(Path::new("/etc/")) && !is_normal(Path::new("/etc/./x")));
    }

    #[test]
    fn closes_match_opens_by_descriptor_across_dup_fork_and_exec() {
        let mut t = Descriptors::new(100);
        t.seed(1, vec![(0, "/dev/null".into())], Some("/home/a".into()));
        t.open(1, 3, path("/etc/passwd"), 10, false);
        t.open(1, 4, path("/etc/group"), 11, true);
        let (closed, copied) = t.dup(1, 3, 5, 12, false);
        assert!(closed.is_none());
        assert_eq!(copied.as_deref(), Some(OsStr::new("/etc/passwd")));
        // dup2 over an open descriptor closes it.
        let (closed, _) = t.dup(1, 3, 4, 13, false);
        assert_eq!(closed.unwrap().path, path("/etc/group"));
        t.fork(1, 2);
        assert_eq!(t.close(2, 3).unwrap().opened_ns, Some(10));
        assert!(t.close(2, 3).is_none());
        assert_eq!(
            t.close(1, 3).unwrap().opened_ns,
            Some(10),
            "the parent's own"
        );
        t.set_cloexec(1, 5, true);
        let closed = t.exec(1);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].0, 5);
        assert_eq!(t.exit(1).len(), 2, "fd 0 and 4 remain");
        assert_eq!(
            t.resolve(2, AT_FDCWD, Path::new("x/../y")),
            Some("/home/a/y".into())
        );
    }

    #[test]
    fn relative_paths_follow_chdir_and_dirfds() {
        let mut t = Descriptors::new(100);
        t.seed(1, vec![], Some("/".into()));
        t.chdir(1, Path::new("tmp"));
        assert_eq!(
            t.resolve(1, AT_FDCWD, Path::new("./f")),
            Some("/tmp/f".into())
        );
        t.open(1, 7, path("/var/lib"), 1, false);
        assert_eq!(
            t.resolve(1, 7, Path::new("dpkg")),
            Some("/var/lib/dpkg".into())
        );
        t.fchdir(1, 7);
        assert_eq!(t.resolve(1, AT_FDCWD, Path::new("..")), Some("/var".into()));
        assert_eq!(t.resolve(1, 9, Path::new("x")), None, "unknown dirfd");
        assert_eq!(t.close_range(1, 0, i32::MAX, 0).len(), 1);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_million_descriptors_never_closed_stay_within_capacity() {
        let mut t = Descriptors::new(1000);
        for i in 0..1_000_000u32 {
            t.open(i % 13, (i % 5000) as i32, path("/f"), u64::from(i), false);
            assert!(t.len() <= 1000 && t.order.len() <= 2000);
        }
        assert!(t.forgotten > 900_000, "{}", t.forgotten);
    }
}
