//! fanotify, notification class: an event for every open and close on the
//! marked mounts, with the pid that caused it and a descriptor from which
//! the path is read.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::AT_FDCWD;
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

/// File systems whose files are not files anyone asks about.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "fusectl",
    "configfs",
    "autofs",
    "hugetlbfs",
    "binfmt_misc",
    "efivarfs",
    "nsfs",
    "rpc_pipefs",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Open,
    Close,
    /// The file was opened to be run: the event's pid now runs it.
    Exec,
}

/// What one fanotify event says: open and/or close (the kernel merges an
/// open and a close still queued), or that its queue overflowed.
#[derive(Debug)]
pub enum Event {
    File {
        pid: u32,
        path: PathBuf,
        kinds: Vec<Kind>,
    },
    Overflow,
}

pub struct Watch {
    group: Fanotify,
    /// How many mounts are marked.
    pub mounts: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("fanotify needs CAP_SYS_ADMIN: run psdiff files as root (or with that capability)")]
    NotPermitted,
    #[error("cannot start fanotify: {0}")]
    Init(Errno),
    #[error("cannot watch the mount holding {}: {source}", .path.display())]
    Mark { path: PathBuf, source: Errno },
}

impl Watch {
    /// A watch on the mounts that hold `paths`, or on every mount of a
    /// real file system when `paths` is empty. With `execs`, every real
    /// mount also reports the programs that start (to find processes by
    /// name even when they end at once).
    pub fn new(paths: &[PathBuf], execs: bool) -> Result<Watch, WatchError> {
        let group = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|e| match e {
            Errno::EPERM => WatchError::NotPermitted,
            other => WatchError::Init(other),
        })?;
        let mut watch = Watch { group, mounts: 0 };
        let mask = MaskFlags::FAN_OPEN | MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_CLOSE_NOWRITE;
        let flags = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT;
        let everywhere = match (paths.is_empty(), execs) {
            (true, true) => Some(mask | MaskFlags::FAN_OPEN_EXEC),
            (true, false) => Some(mask),
            (false, true) => Some(MaskFlags::FAN_OPEN_EXEC),
            (false, false) => None,
        };
        for mount in everywhere.map(|_| real_mounts()).unwrap_or_default() {
            // A mount that cannot be marked (gone, or one fanotify
            // refuses) is not worth stopping for; say so.
            let mask = everywhere.expect("marks wanted");
            match watch.group.mark(flags, mask, AT_FDCWD, Some(&mount)) {
                Ok(()) if paths.is_empty() => watch.mounts += 1,
                Ok(()) => {}
                Err(e) => eprintln!(
                    "psdiff files: not watching {}: {}",
                    mount.display(),
                    e.desc()
                ),
            }
        }
        if !paths.is_empty() {
            for path in paths {
                watch
                    .group
                    .mark(flags, mask, AT_FDCWD, Some(path.as_path()))
                    .map_err(|source| WatchError::Mark {
                        path: path.clone(),
                        source,
                    })?;
                watch.mounts += 1;
            }
        }
        Ok(watch)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }

    /// Every event queued now (none when the queue is empty).
    pub fn read(&self, into: &mut Vec<Event>) -> std::io::Result<()> {
        loop {
            let events = match self.group.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for event in events {
                let mask = event.mask();
                if mask.contains(MaskFlags::FAN_Q_OVERFLOW) {
                    into.push(Event::Overflow);
                    continue;
                }
                let Some(fd) = event.fd() else { continue };
                let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                else {
                    continue;
                };
                let mut kinds = Vec::with_capacity(2);
                if mask.contains(MaskFlags::FAN_OPEN) {
                    kinds.push(Kind::Open);
                }
                if mask.intersects(MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_CLOSE_NOWRITE) {
                    kinds.push(Kind::Close);
                }
                if mask.contains(MaskFlags::FAN_OPEN_EXEC) {
                    kinds.insert(0, Kind::Exec);
                }
                into.push(Event::File {
                    pid: event.pid() as u32,
                    path,
                    kinds,
                });
            }
        }
    }
}

/// The mount points of real file systems, from /proc/self/mountinfo.
fn real_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let after = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(after + 1)?;
            (!PSEUDO.contains(fstype)).then(|| PathBuf::from(unescape(point)))
        })
        .collect();
    mounts.sort();
    mounts.dedup();
    mounts
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], code) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"/plain"), "/plain");
    }
}
