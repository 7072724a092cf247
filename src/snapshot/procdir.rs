//! The one way psdiff reads a process's files: through a descriptor of
//! its ROOT/PID folder (ROOT is /proc, or `--proc-root`), so every file
//! of one reading comes from the same process even if its pid is reused
//! meanwhile, and one pid lookup serves them all.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat};

use super::parse::{self, Stat};

/// A proc tree: /proc, or a directory laid out like it.
#[derive(Debug)]
pub struct ProcRoot {
    path: PathBuf,
    fd: OwnedFd,
}

impl ProcRoot {
    pub fn open(path: &Path) -> std::io::Result<ProcRoot> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ProcRoot {
            path: path.to_path_buf(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is this machine's own /proc, whose pids can be
    /// signalled from here.
    pub fn is_local(&self) -> bool {
        self.path == Path::new("/proc")
    }

    /// Every pid in it, ascending.
    pub fn pids(&self) -> std::io::Result<Vec<u32>> {
        let mut pids: Vec<u32> = std::fs::read_dir(&self.path)?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Our pid as this tree numbers it, when it is a /proc that shows us
    /// (its `self` link names our pid); `None` for other trees.
    pub fn own_pid(&self) -> Option<u32> {
        let me: u32 = readlinkat(&self.fd, "self").ok()?.to_str()?.parse().ok()?;
        (me == std::process::id()).then_some(me)
    }

    /// The folder of process `pid`, while it exists.
    pub fn process(&self, pid: u32) -> Option<ProcDir> {
        let fd = openat(
            &self.fd,
            pid.to_string().as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        Some(ProcDir { pid, fd })
    }

    /// The parsed stat of `pid`: the common question of who a pid is now.
    pub fn stat(&self, pid: u32) -> Option<Stat> {
        self.process(pid)?.stat(&mut Vec::new())
    }

    /// A machine-wide file of the tree (`uptime`, `stat`, `meminfo`).
    pub fn read_file(&self, name: &str) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        read_at(&self.fd, name, &mut buf)?;
        Some(buf)
    }
}

/// One process's folder.
#[derive(Debug)]
pub struct ProcDir {
    pid: u32,
    fd: OwnedFd,
}

impl ProcDir {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The folder's descriptor, for the readers of this module's folder.
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The whole of `file` (`stat`, `status`, `net/tcp`, ...) in `buf`.
    pub fn read<'b>(&self, file: &str, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
        read_at(&self.fd, file, buf)?;
        Some(&buf[..])
    }

    /// The whole of `file`, owned.
    pub fn read_vec(&self, file: &str) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        read_at(&self.fd, file, &mut buf)?;
        Some(buf)
    }

    /// The target of a link (`exe`, `cwd`, `fd/3`, `ns/net`).
    pub fn read_link(&self, name: &str) -> Option<PathBuf> {
        readlinkat(&self.fd, name).ok().map(PathBuf::from)
    }

    /// The parsed stat, when it still names this pid.
    pub fn stat(&self, buf: &mut Vec<u8>) -> Option<Stat> {
        let stat = parse::parse_stat(self.read("stat", buf)?)?;
        (stat.pid == self.pid).then_some(stat)
    }

    /// The process a task belongs to (its thread-group id): itself for a
    /// process, another for one of its threads (/proc/TID is there too,
    /// though not listed).
    pub fn tgid(&self) -> Option<u32> {
        let status = self.read_vec("status")?;
        let text = std::str::from_utf8(&status).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))?
            .trim()
            .parse()
            .ok()
    }

    /// The executable, ` (deleted)` dropped.
    pub fn exe(&self) -> Option<String> {
        let exe = self.read_link("exe")?;
        let exe = exe.to_str()?;
        Some(exe.strip_suffix(" (deleted)").unwrap_or(exe).to_string())
    }

    /// The open descriptors and their targets.
    pub fn descriptors(&self) -> Vec<(i32, PathBuf)> {
        self.fd_numbers()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|fd| Some((fd, self.read_link(&format!("fd/{fd}"))?)))
            .collect()
    }

    /// How many descriptors are open; `None` when they cannot be listed.
    pub fn count_descriptors(&self) -> Option<usize> {
        // Since Linux 6.2 the size of the fd folder is the count: one
        // stat instead of reading the folder. Before, it is 0.
        if let Ok(st) = nix::sys::stat::fstatat(&self.fd, "fd", nix::fcntl::AtFlags::empty())
            && st.st_size > 0
        {
            return Some(st.st_size as usize);
        }
        self.fd_numbers().map(|fds| fds.len())
    }

    fn fd_numbers(&self) -> Option<Vec<i32>> {
        self.numbered_entries("fd")
    }

    /// The ids of the process's threads (its own pid among them).
    pub fn thread_ids(&self) -> Option<Vec<u32>> {
        let mut ids = self.numbered_entries("task")?;
        ids.sort_unstable();
        Some(ids)
    }

    /// A thread of the process that has not exited, and its state: what
    /// a zombie leader's process still runs as.
    pub fn live_thread(&self, buf: &mut Vec<u8>) -> Option<(u32, char)> {
        self.thread_ids()?.into_iter().find_map(|tid| {
            let stat = parse::parse_stat(self.read(&format!("task/{tid}/stat"), buf)?)?;
            (stat.state != 'Z' && stat.state != 'X').then_some((tid, stat.state))
        })
    }

    /// The entries of `folder` named by numbers (`fd`, `task`).
    fn numbered_entries<N: std::str::FromStr>(&self, folder: &str) -> Option<Vec<N>> {
        let dir = openat(
            &self.fd,
            folder,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let dir = nix::dir::Dir::from_fd(dir).ok()?;
        let number = |e: nix::dir::Entry| {
            std::str::from_utf8(e.file_name().to_bytes())
                .ok()?
                .parse()
                .ok()
        };
        Some(
            dir.into_iter()
                .filter_map(Result::ok)
                .filter_map(number)
                .collect(),
        )
    }

    /// Whether argv[0] (`argv0`) names a program file other than the one
    /// the kernel runs: the path is looked up inside the process's own
    /// root, and the two files compared by device and inode. `None` when
    /// it cannot be told: argv[0] is no absolute path, or the process is
    /// not ours to look at (psdiff is not root), or gone. A path that
    /// cannot name a file at all (too long, a loop) names no program that
    /// runs: it is a disguise, never "cannot tell".
    ///
    /// Trailing blanks are dropped first, as the printed line drops them.
    /// The running program's own path in other letter case names it too.
    /// A binary replaced by an upgrade (`PATH (deleted)`) is still the
    /// program argv[0] names when their paths agree; one run from memory
    /// (`/memfd:x (deleted)`) is not. A script named by its path
    /// (`/usr/sbin/amavisd-new`) runs as its `#!` interpreter: that is
    /// the program, not a disguise.
    /// `exe` is the link's target when already read; `task` is "" or,
    /// for a zombie leader, a live thread's `task/TID/`, whose `exe` and
    /// `root` links are read.
    pub fn disguised(&self, argv0: &[u8], exe: Option<&Path>, task: &str) -> Option<bool> {
        let exe_link = format!("{task}exe");
        let exe_link = exe_link.as_str();
        let argv0 = argv0.trim_ascii_end();
        if argv0.first() != Some(&b'/') {
            return None;
        }
        let read;
        let exe = match exe {
            Some(exe) => exe,
            None => {
                read = self.read_link(exe_link)?;
                &read
            }
        };
        if named_by_its_path(argv0, exe) {
            return Some(false);
        }
        let exe = exe.to_str()?;
        if let Some(former) = exe.strip_suffix(" (deleted)") {
            let argv0 = std::str::from_utf8(argv0).ok()?;
            let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
            return Some(argv0 != former && base(argv0) != base(former));
        }
        let running = fstatat(&self.fd, exe_link, AtFlags::empty()).ok()?;
        let running = (running.st_dev, running.st_ino);
        let root = openat(
            &self.fd,
            format!("{task}root").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        // A title set over argv (`/usr/bin/redis-server 127.0.0.1:6379`,
        // `/usr/sbin/zabbix_agentd: collector`) names its program in its
        // first word.
        let first_word = argv0
            .split(|&b| b == b' ')
            .next()
            .map(|w| w.strip_suffix(b":").unwrap_or(w))
            .filter(|w| w.len() < argv0.len());
        use nix::errno::Errno;
        let named = match open_in_root(&root, argv0) {
            Ok(file) => file,
            Err(Errno::ENOENT | Errno::ENOTDIR) => match first_word.map(|w| open_in_root(&root, w))
            {
                Some(Ok(file)) => file,
                Some(Err(Errno::EACCES | Errno::EPERM)) => return None,
                _ => return Some(true),
            },
            Err(Errno::EACCES | Errno::EPERM) => return None,
            Err(_) => return Some(true),
        };
        let stat = nix::sys::stat::fstat(&named).ok()?;
        if (stat.st_dev, stat.st_ino) == running {
            return Some(false);
        }
        Some(!interpreted_by(&root, &named, running))
    }

    /// Whether descriptor `fd` is a regular file    /// Whether descriptor `fd` is a regular file (what it points to, not
    /// the link).
    pub fn is_regular_file(&self, fd: i32) -> bool {
        fstatat(&self.fd, format!("fd/{fd}").as_str(), AtFlags::empty())
            .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
    }
}

/// Opens `path` (as an `O_PATH` handle: nothing is read, no device is
/// opened) as the process with root `root` sees it. Where openat2 is
/// refused (a kernel before 5.6; systemd's `RestrictSUIDSGID=`, whose
/// filter cannot read its flags, answers ENOSYS), the same walk by hand.
/// Whether argv[0] is the path of the program `exe` that runs, or that
/// path in capitals, as cron titles its per-job child `/usr/sbin/CRON`:
/// the common case, told without a look at any file.
pub fn named_by_its_path(argv0: &[u8], exe: &Path) -> bool {
    exe.as_os_str()
        .as_encoded_bytes()
        .eq_ignore_ascii_case(argv0.trim_ascii_end())
}

pub fn open_in_root(root: &OwnedFd, path: &[u8]) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    match openat2(root, path, how) {
        Err(nix::errno::Errno::ENOSYS) => walk_in_root(root, path),
        result => result,
    }
}

/// `RESOLVE_IN_ROOT` one component at a time: links are followed, an
/// absolute one from `root`, and `..` never climbs above it.
fn walk_in_root(root: &OwnedFd, path: &[u8]) -> nix::Result<OwnedFd> {
    use nix::errno::Errno;
    const MAX_LINKS: usize = 40;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let parts = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .rev()
            .map(<[u8]>::to_vec)
            .collect()
    };
    // Still to walk, last first; the directories walked, below `root`.
    let mut pending = parts(path);
    let mut walked: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == b".." {
            walked.pop();
            continue;
        }
        let at = walked.last().unwrap_or(root);
        let fd = openat(at, part.as_slice(), flags, Mode::empty())?;
        if SFlag::from_bits_truncate(nix::sys::stat::fstat(&fd)?.st_mode) & SFlag::S_IFMT
            == SFlag::S_IFLNK
        {
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::ELOOP);
            }
            let target = readlinkat(&fd, "")?;
            let target = target.as_encoded_bytes();
            if target.first() == Some(&b'/') {
                walked.clear();
            }
            pending.extend(parts(target));
            continue;
        }
        walked.push(fd);
    }
    match walked.pop() {
        Some(fd) => Ok(fd),
        None => openat(root, ".", flags, Mode::empty()),
    }
}

/// Whether `script` is a regular file starting `#!INTERPRETER` (or
/// `#!/usr/bin/env NAME`) whose interpreter is the file `running`
/// (device, inode) in the process's root.
fn interpreted_by(root: &OwnedFd, script: &OwnedFd, running: (u64, u64)) -> bool {
    use std::io::Read;
    let regular = nix::sys::stat::fstat(script)
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG);
    if !regular {
        return false;
    }
    // Only a regular file is opened to be read, through its handle.
    use std::os::fd::AsRawFd;
    let Ok(mut file) = std::fs::File::open(format!("/proc/self/fd/{}", script.as_raw_fd())) else {
        return false;
    };
    let mut head = [0u8; 256];
    let Ok(n) = file.read(&mut head) else {
        return false;
    };
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return false;
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let Some(interpreter) = words.next() else {
        return false;
    };
    let is_running = |path: &[u8]| {
        open_in_root(root, path)
            .ok()
            .and_then(|fd| nix::sys::stat::fstat(&fd).ok())
            .is_some_and(|st| (st.st_dev, st.st_ino) == running)
    };
    if is_running(interpreter) {
        return true;
    }
    // `#!/usr/bin/env perl`: the program env finds in the system's PATH.
    let env = interpreter.rsplit(|&b| b == b'/').next() == Some(b"env");
    match words.next() {
        Some(name) if env && !name.contains(&b'/') => ["/usr/local/bin/", "/usr/bin/", "/bin/"]
            .iter()
            .any(|dir| is_running(&[dir.as_bytes(), name].concat())),
        _ => false,
    }
}

/// Reads all of `file` under `dir` into `buf`. A file the kernel makes
/// as one record (`stat`, `status`, ...: `one_record`) comes whole in one
/// read that does not fill the buffer, so no extra read for EOF; a file of
/// many records (`net/tcp`, `smaps`) comes a page at a time, and is read
/// to the end.
fn read_at(dir: &impl AsFd, file: &str, buf: &mut Vec<u8>) -> Option<()> {
    let fd = openat(dir, file, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    let one_shot = one_record(file);
    buf.clear();
    loop {
        let len = buf.len();
        if buf.capacity() - len < 1024 {
            buf.reserve(buf.capacity().max(4096));
        }
        let spare = buf.capacity() - len;
        buf.resize(len + spare, 0);
        let n = match nix::unistd::read(&fd, &mut buf[len..]) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => {
                buf.truncate(len);
                continue;
            }
            Err(_) => return None,
        };
        buf.truncate(len + n);
        if n == 0 || (n < spare && one_shot) {
            return Some(());
        }
    }
}

/// Whether the kernel writes `file` (a name under /proc or /proc/PID) as
/// one record, whole in any read large enough.
fn one_record(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    matches!(
        name,
        "stat"
            | "status"
            | "statm"
            | "cmdline"
            | "cgroup"
            | "current"
            | "uptime"
            | "meminfo"
            | "io"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_walked_in_its_root_as_the_kernel_would() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("usr/lib/systemd")).unwrap();
        std::fs::write(dir.join("usr/lib/systemd/systemd"), "").unwrap();
        std::fs::write(dir.join("outside"), "").unwrap();
        // usrmerge's relative link, an absolute one, and one that climbs.
        std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/systemd", dir.join("usr/sd")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", dir.join("usr/up")).unwrap();
        let root = openat(
            nix::fcntl::AT_FDCWD,
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let ino = |p: &str| nix::sys::stat::stat(&dir.join(p)).unwrap().st_ino;
        let walked = |p: &str| {
            walk_in_root(&root, p.as_bytes()).map(|fd| nix::sys::stat::fstat(&fd).unwrap().st_ino)
        };
        let (target, outside) = (ino("usr/lib/systemd/systemd"), ino("outside"));
        let results = [
            walked("/lib/systemd/systemd"),
            walked("/usr/sd/systemd"),
            walked("/../../usr/lib/./systemd/systemd"),
            walked("/usr/up"),
            walked("/lib/nothing"),
        ];
        assert_eq!(results[0], Ok(target));
        assert_eq!(results[1], Ok(target));
        assert_eq!(results[2], Ok(target));
        // Climbing stops at the root: `outside` is the root's own file.
        assert_eq!(results[3], Ok(outside));
        assert_eq!(results[4], Err(nix::errno::Errno::ENOENT));
    }

    /// net/tcp comes a page (about 27 sockets) per read: all of it is read.
    #[test]
    fn files_of_many_records_are_read_to_the_end() {
        let listeners: Vec<_> = (0..100)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let root = ProcRoot::open(Path::new("/proc")).unwrap();
        let me = root.process(std::process::id()).unwrap();
        let table = String::from_utf8(me.read_vec("net/tcp").unwrap()).unwrap();
        for listener in &listeners {
            let port = format!(":{:04X} ", listener.local_addr().unwrap().port());
            assert!(table.contains(&port), "port {port} missing");
        }
        let status = me.read_vec("status").unwrap();
        assert!(status.ends_with(b"\n") && status.starts_with(b"Name:"));
    }
}
