//! fanotify, notification class: an event for every open and close on the
//! marked mounts, with the pid that caused it and the file, named by its
//! directory's handle and its name (`handles`), or on kernels before 5.9
//! by a descriptor from which the path is read.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::AT_FDCWD;
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

use super::handles::Handles;

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
    /// Set when files are named by handle.
    handles: Option<Handles>,
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
    /// real file system when `paths` is empty. Every real mount also
    /// reports the programs that start, which names a process (and finds
    /// one by name) even when it ends at once. Files are named by handle
    /// where the kernel can (5.9 and later), else by a descriptor per event.
    pub fn new(paths: &[PathBuf]) -> Result<Watch, WatchError> {
        match Watch::with(paths, true) {
            Err(
                WatchError::Init(Errno::EINVAL)
                | WatchError::Mark {
                    source: Errno::EINVAL,
                    ..
                },
            ) => Watch::with(paths, false),
            other => other,
        }
    }

    fn with(paths: &[PathBuf], by_handle: bool) -> Result<Watch, WatchError> {
        let report = if by_handle {
            InitFlags::from_bits_retain(libc::FAN_REPORT_DFID_NAME)
        } else {
            InitFlags::empty()
        };
        let group = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK | report,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|e| match e {
            Errno::EPERM => WatchError::NotPermitted,
            other => WatchError::Init(other),
        })?;
        let mask = MaskFlags::FAN_OPEN | MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_CLOSE_NOWRITE;
        let flags = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT;
        let everywhere = if paths.is_empty() {
            mask | MaskFlags::FAN_OPEN_EXEC
        } else {
            MaskFlags::FAN_OPEN_EXEC
        };
        let mut marked = Vec::new();
        let mut mounts = 0;
        let mut refused = false;
        for mount in real_mounts() {
            match group.mark(flags, everywhere, AT_FDCWD, Some(&mount)) {
                Ok(()) => {
                    mounts += usize::from(paths.is_empty());
                    marked.push(mount);
                }
                Err(Errno::EINVAL) if by_handle => {
                    return Err(WatchError::Mark {
                        path: mount,
                        source: Errno::EINVAL,
                    });
                }
                // Anyone may start a group that names files by handle;
                // only CAP_SYS_ADMIN may watch a mount (said below when
                // no mount at all could be watched).
                Err(Errno::EPERM) => refused = true,
                // A mount that cannot be marked (gone, or one fanotify
                // refuses) is not worth stopping for; say so.
                Err(e) => eprintln!(
                    "psdiff files: not watching {}: {}",
                    mount.display(),
                    e.desc()
                ),
            }
        }
        if refused && marked.is_empty() {
            return Err(WatchError::NotPermitted);
        }
        for path in paths {
            group
                .mark(flags, mask, AT_FDCWD, Some(path.as_path()))
                .map_err(|source| match source {
                    Errno::EPERM => WatchError::NotPermitted,
                    source => WatchError::Mark {
                        path: path.clone(),
                        source,
                    },
                })?;
            mounts += 1;
            marked.push(path.clone());
        }
        let handles = by_handle.then(|| Handles::new(&marked));
        Ok(Watch {
            group,
            mounts,
            handles,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }

    /// Every event queued now (none when the queue is empty).
    pub fn read(&mut self, into: &mut Vec<Event>) -> std::io::Result<()> {
        if let Some(handles) = &mut self.handles {
            return handles.read(&self.group, into);
        }
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
                into.push(Event::File {
                    pid: event.pid() as u32,
                    path,
                    kinds: kinds_of(mask.bits()),
                });
            }
        }
    }
}

/// What an event's mask says happened, in order.
pub fn kinds_of(mask: u64) -> Vec<Kind> {
    let mut kinds = Vec::with_capacity(2);
    if mask & libc::FAN_OPEN_EXEC != 0 {
        kinds.push(Kind::Exec);
    }
    if mask & libc::FAN_OPEN != 0 {
        kinds.push(Kind::Open);
    }
    if mask & (libc::FAN_CLOSE_WRITE | libc::FAN_CLOSE_NOWRITE) != 0 {
        kinds.push(Kind::Close);
    }
    kinds
}

/// The mount points of real file systems.
fn real_mounts() -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = crate::mounts::mounts()
        .into_iter()
        .filter(|m| !PSEUDO.contains(&m.fstype.as_str()))
        .map(|m| m.point)
        .collect();
    points.sort();
    points.dedup();
    points
}
