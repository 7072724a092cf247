//! Whether what /proc says a process runs is what the host runs: the
//! check a rule that hides by executable relies on.
//!
//! /proc/PID/exe names the path *in the process's own mount namespace*,
//! and an unprivileged user gets one of those with a user namespace
//! (`unshare -Urm`, then a bind mount over /usr/sbin/nginx). The file
//! behind the link may be another than the host's at that path; and the
//! host's own binary runs whatever code `LD_PRELOAD` hands it. So a
//! process's executable is attested only when it is the host's file at
//! that path, it runs in the host's user namespace, and no code outside
//! root's files is loaded into it (or was asked to be).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};

use super::{ProcDir, ProcRoot};

/// Why a process's executable is not taken at the kernel's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doubt {
    /// It could not be looked at (gone, or psdiff is not root).
    CannotTell,
    /// It runs in a user namespace a user made, where it may mount.
    UserNamespace,
    /// The file it runs is not the host's file at its path.
    NotTheHostsFile(String),
    /// The dynamic loader is told to load more (`LD_PRELOAD=...`).
    Preload(String),
    /// Code is mapped from a file a user could have written.
    ForeignCode(String),
}

impl fmt::Display for Doubt {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Doubt::CannotTell => write!(f, "its executable could not be looked at"),
            Doubt::UserNamespace => write!(
                f,
                "it runs in a user namespace a user made, where it may mount any file at any path"
            ),
            Doubt::NotTheHostsFile(path) => {
                write!(f, "the file it runs is not the host's {path}")
            }
            Doubt::Preload(variable) => {
                write!(f, "its environment sets {variable}: it may run other code")
            }
            Doubt::ForeignCode(path) => {
                write!(
                    f,
                    "it runs code from {path}, which a user could have written"
                )
            }
        }
    }
}

/// What the kernel attests of a program as it starts it (`psdiff watch`
/// over eBPF), before the program runs: all there is to judge one gone
/// before /proc could be looked at. Code it loads later is not in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtExec {
    /// The device (as stat(2) numbers it) and inode of the file it runs.
    pub file: (u64, u64),
    /// Who made its user namespace; `None` for the host's own.
    pub user_namespace_owner: Option<u32>,
    /// The loader variables its environment sets to something.
    pub loader: Vec<&'static str>,
    /// Whether its environment was read to its end.
    pub environment_read: bool,
}

/// What every process is compared with: the host's user namespace and
/// root, and the files found at paths there (cached: many processes run
/// the same few programs).
pub struct Attestor {
    proc: ProcRoot,
    host_user_ns: Option<std::path::PathBuf>,
    host_root: Option<OwnedFd>,
    files: RefCell<HashMap<String, Option<(u64, u64)>>>,
    /// The device of the kernel's own anonymous shared memory.
    anonymous: Option<u64>,
}

/// Where code may be mapped from without a doubt: the system's own
/// folders, which only root writes.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/bin/", "/sbin/",
];

impl Attestor {
    /// For the processes under `proc`; `None` for a tree that is no proc
    /// file system (a test's synthetic tree), whose word is all there is.
    pub fn new(proc: &Path) -> Option<Attestor> {
        let fs = nix::sys::statfs::statfs(proc).ok()?;
        if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return None;
        }
        let proc = ProcRoot::open(proc).ok()?;
        // The host is pid 1's; where pid 1 cannot be looked at (a sandbox
        // whose init is not dumpable), psdiff's own, which runs on it.
        let host = [Some(1), proc.own_pid()]
            .into_iter()
            .flatten()
            .filter_map(|pid| proc.process(pid))
            .find_map(|d| {
                let user_ns = d.read_link("ns/user")?;
                let root = openat(
                    d.fd(),
                    "root",
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .ok()?;
                Some((user_ns, root))
            });
        let (host_user_ns, host_root) = host.unzip();
        Some(Attestor {
            host_user_ns,
            host_root,
            proc,
            files: RefCell::new(HashMap::new()),
            anonymous: anonymous_memory_device(),
        })
    }

    /// The proc tree it looks at.
    pub fn proc(&self) -> &ProcRoot {
        &self.proc
    }

    /// The doubts about process `pid` (started at `start_time`) running
    /// `exe`; none when the kernel's word holds.
    pub fn doubts(&self, pid: u32, start_time: u64, exe: &str) -> Vec<Doubt> {
        let Some(dir) = self.proc.process(pid) else {
            return vec![Doubt::CannotTell];
        };
        let mut buf = Vec::new();
        if dir
            .stat(&mut buf)
            .is_none_or(|s| s.start_time != start_time)
        {
            return vec![Doubt::CannotTell];
        }
        let mut doubts = Vec::new();
        match (dir.read_link("ns/user"), &self.host_user_ns) {
            (Some(own), Some(host)) if own == *host => {}
            // A service systemd sandboxes (PrivateUsers=) runs in one that
            // root made; a user's own is what lets it mount.
            (Some(_), Some(_)) => match user_namespace_owner(&dir) {
                Some(0) => {}
                Some(_) => doubts.push(Doubt::UserNamespace),
                None => doubts.push(Doubt::CannotTell),
            },
            _ => doubts.push(Doubt::CannotTell),
        }
        match fstatat(dir.fd(), "exe", AtFlags::empty()) {
            Ok(running) if !self.is_hosts_file(exe, &running) => {
                doubts.push(Doubt::NotTheHostsFile(exe.to_string()));
            }
            Ok(_) => {}
            Err(_) => doubts.push(Doubt::CannotTell),
        }
        if let Some(environ) = dir.read("environ", &mut buf) {
            doubts.extend(preload(environ).map(Doubt::Preload));
        } else {
            doubts.push(Doubt::CannotTell);
        }
        match dir.read("maps", &mut buf) {
            Some(maps) => {
                doubts.extend(foreign_code(&dir, maps, self.anonymous).map(Doubt::ForeignCode))
            }
            None => doubts.push(Doubt::CannotTell),
        }
        doubts.dedup();
        doubts
    }

    /// The doubts about a program running `exe`, as the kernel saw it at
    /// its exec (`seen`), judged as `doubts` judges one that runs.
    pub fn doubts_at_exec(&self, exe: &str, seen: &AtExec) -> Vec<Doubt> {
        let mut doubts = Vec::new();
        if seen.user_namespace_owner.is_some_and(|owner| owner != 0) {
            doubts.push(Doubt::UserNamespace);
        }
        match self.hosts_file(exe) {
            Some(file) if file == seen.file => {}
            // Another inode is another file; the same one on another
            // device number is a file system (btrfs, overlayfs) whose
            // stat(2) numbers devices otherwise than the kernel does.
            Some((_, ino)) if ino != seen.file.1 => {
                doubts.push(Doubt::NotTheHostsFile(exe.to_string()))
            }
            _ => doubts.push(Doubt::CannotTell),
        }
        doubts.extend(seen.loader.iter().map(|v| Doubt::Preload(v.to_string())));
        if !seen.environment_read {
            doubts.push(Doubt::CannotTell);
        }
        doubts.dedup();
        doubts
    }

    /// Whether `running` is the file at `path` in the host's root. One
    /// replaced by an upgrade (`PATH (deleted)`) has no file there any
    /// more: it passes when root owns it and only root could write it.
    fn is_hosts_file(&self, path: &str, running: &FileStat) -> bool {
        if path.ends_with(" (deleted)") {
            return root_only(running);
        }
        self.hosts_file(path) == Some((running.st_dev, running.st_ino))
    }

    /// The device and inode of the file at `path` in the host's root.
    fn hosts_file(&self, path: &str) -> Option<(u64, u64)> {
        let root = self.host_root.as_ref()?;
        *self
            .files
            .borrow_mut()
            .entry(path.to_string())
            .or_insert_with(|| {
                let st = fstat(&super::procdir::open_in_root(root, path.as_bytes()).ok()?).ok()?;
                Some((st.st_dev, st.st_ino))
            })
    }
}

// NS_GET_OWNER_UID of linux/nsfs.h: _IO(0xb7, 0x4), the uid (in
// psdiff's own namespace) of whoever made a user namespace.
nix::ioctl_read_bad!(ns_get_owner_uid, 0xb704, libc::uid_t);

/// Who made the user namespace the process runs in: root for one systemd
/// or a container runtime made, the user for `unshare -U`. A namespace
/// made inside a user's own is that user's too.
fn user_namespace_owner(dir: &ProcDir) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let ns = openat(
        dir.fd(),
        "ns/user",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut uid: libc::uid_t = 0;
    // SAFETY: the descriptor is a namespace file, and the kernel writes
    // one uid_t to `uid`, which lives for the call.
    unsafe { ns_get_owner_uid(ns.as_raw_fd(), &mut uid) }.ok()?;
    Some(uid)
}

/// Owned by root and written by no one else.
fn root_only(st: &FileStat) -> bool {
    st.st_uid == 0 && st.st_mode & 0o022 == 0
}

/// The loader variables of an environment (`/proc/PID/environ`) that
/// make a program load code it does not name itself.
fn preload(environ: &[u8]) -> impl Iterator<Item = String> + '_ {
    environ.split(|&b| b == 0).filter_map(|entry| {
        let (name, value) = entry.split_at(entry.iter().position(|&b| b == b'=')?);
        let loads = matches!(name, b"LD_PRELOAD" | b"LD_AUDIT") && value.len() > 1;
        loads.then(|| String::from_utf8_lossy(name).into_owned())
    })
}

/// The device that the kernel's anonymous shared memory lives on, learnt
/// from a page of psdiff's own. PHP's opcache maps its JIT buffer so
/// (`/dev/zero (deleted)` in maps): memory the process wrote itself, not
/// a file a user did, as a tmpfs of a user's own named /dev would be.
fn anonymous_memory_device() -> Option<u64> {
    use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
    let len = std::num::NonZeroUsize::new(4096)?;
    // SAFETY: a fresh mapping that nothing else refers to, unmapped below.
    let page =
        unsafe { mmap_anonymous(None, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED) }.ok()?;
    let start = page.as_ptr() as usize;
    let name = format!("/proc/self/map_files/{start:x}-{:x}", start + len.get());
    let dev = nix::sys::stat::stat(name.as_str()).ok().map(|st| st.st_dev);
    // SAFETY: the mapping made above, of that length, no longer used.
    let _ = unsafe { munmap(page, len.get()) };
    dev
}

/// Files mapped executable (`/proc/PID/maps`) that lie outside the
/// system's folders and are not root's alone; the kernel's anonymous
/// shared memory (on device `anonymous`) is none.
fn foreign_code<'m>(
    dir: &'m ProcDir,
    maps: &'m [u8],
    anonymous: Option<u64>,
) -> impl Iterator<Item = String> + 'm {
    let mut seen = Vec::new();
    maps.split(|&b| b == b'\n').filter_map(move |line| {
        let line = std::str::from_utf8(line).ok()?;
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let perms = fields.next()?;
        let path = fields.nth(3)?.trim_start();
        if !perms.contains('x') || path.is_empty() || path.starts_with('[') {
            return None;
        }
        if path.starts_with('/') && SYSTEM_DIRS.iter().any(|d| path.starts_with(d)) {
            return None;
        }
        if seen.iter().any(|s: &String| s == path) {
            return None;
        }
        seen.push(path.to_string());
        // Elsewhere (/opt): the mapped file itself, whoever named it.
        let file = fstatat(
            dir.fd(),
            format!("map_files/{range}").as_str(),
            AtFlags::empty(),
        );
        match file {
            Ok(st) if anonymous == Some(st.st_dev) => None,
            Ok(st) if path.starts_with('/') && !path.ends_with(" (deleted)") && root_only(&st) => {
                None
            }
            _ => Some(path.to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_variables_are_found() {
        let env = b"PATH=/usr/bin\0LD_PRELOAD=/home/m/.cache/p.so\0LD_AUDIT=\0LD_LIBRARY_PATH=/x\0";
        assert_eq!(preload(env).collect::<Vec<_>>(), ["LD_PRELOAD"]);
        assert_eq!(preload(b"").count(), 0);
        assert_eq!(preload(b"LD_PRELOADX=a\0=\0noequals").count(), 0);
    }

    /// Executable anonymous shared memory, as opcache's JIT maps it, is
    /// the process's own; a deleted file on a tmpfs is not.
    #[test]
    fn anonymous_shared_memory_is_no_foreign_code() {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap, mmap_anonymous};
        let len = std::num::NonZeroUsize::new(4096).unwrap();
        let exec = ProtFlags::PROT_READ | ProtFlags::PROT_EXEC;
        // SAFETY: fresh mappings, never read or run, left to the test's end.
        let jit = unsafe { mmap_anonymous(None, len, exec, MapFlags::MAP_SHARED) }.unwrap();
        // Beside the test binary: /tmp may be mounted noexec.
        let exe = std::env::current_exe().unwrap();
        let path = exe.with_file_name(format!("psdiff-code-{}", std::process::id()));
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(4096).unwrap();
        let code = unsafe { mmap(None, len, exec, MapFlags::MAP_SHARED, &file, 0) }.unwrap();
        std::fs::remove_file(&path).unwrap();
        let proc = ProcRoot::open(Path::new("/proc")).unwrap();
        let me = proc.process(std::process::id()).unwrap();
        let maps = me.read_vec("maps").unwrap();
        let foreign: Vec<String> = foreign_code(&me, &maps, anonymous_memory_device()).collect();
        assert!(anonymous_memory_device().is_some());
        assert!(
            !foreign.iter().any(|p| p.starts_with("/dev/zero")),
            "{foreign:?}"
        );
        let deleted = format!("{} (deleted)", path.display());
        assert!(foreign.contains(&deleted), "{foreign:?}");
        let _ = (jit, code);
    }

    /// This test binary runs from target/, which root does not own alone
    /// here or a user wrote: its own code is foreign, libc is not.
    #[test]
    fn code_outside_the_system_is_found_in_maps() {
        let proc = ProcRoot::open(Path::new("/proc")).unwrap();
        let me = proc.process(std::process::id()).unwrap();
        let maps = me.read_vec("maps").unwrap();
        let foreign: Vec<String> = foreign_code(&me, &maps, anonymous_memory_device()).collect();
        let exe = std::env::current_exe().unwrap();
        assert!(
            foreign.iter().all(|p| !p.starts_with("/usr/lib")),
            "{foreign:?}"
        );
        let exe = exe.to_str().unwrap();
        let owned_by_root_alone = root_only(&nix::sys::stat::stat(exe).unwrap());
        assert_eq!(
            foreign.iter().any(|p| p == exe),
            !owned_by_root_alone,
            "{foreign:?}"
        );
    }
}
