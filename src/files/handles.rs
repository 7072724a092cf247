//! fanotify events that name files by handle (FAN_REPORT_DFID_NAME): the
//! directory's handle and the file's name, with no descriptor opened per
//! event. That keeps psdiff off the watched files' locks, which is most of
//! what a watch costs the processes it watches. Directory handles are
//! resolved to paths once and remembered.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use super::watch::{Event, kinds_of};

const METADATA_LEN: usize = 24;
const INFO_FID: u8 = 1;
const INFO_DFID_NAME: u8 = 2;
const INFO_DFID: u8 = 3;
/// Directories remembered; past this the memory starts afresh.
const MAX_DIRS: usize = 16_384;

/// What resolves handles: a descriptor on each watched mount, and the
/// directories met so far.
pub struct Handles {
    mounts: Vec<OwnedFd>,
    /// File system id → the index in `mounts` of a mount on it.
    mount_of: HashMap<[u8; 8], usize>,
    dirs: HashMap<Vec<u8>, Option<PathBuf>>,
    buffer: Vec<u8>,
}

impl Handles {
    /// Handles on the file systems of `mounts` (each a path on one).
    pub fn new(mounts: &[PathBuf]) -> Handles {
        let mounts = mounts
            .iter()
            // Not O_PATH: open_by_handle_at refuses those.
            .filter_map(|m| {
                let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
                open(m.as_path(), flags, Mode::empty()).ok()
            })
            .collect();
        Handles {
            mounts,
            mount_of: HashMap::new(),
            dirs: HashMap::new(),
            buffer: vec![0; 256 * 1024],
        }
    }

    /// Reads every queued event from the group `group`.
    pub fn read(&mut self, group: impl AsFd, into: &mut Vec<Event>) -> std::io::Result<()> {
        loop {
            let n = match nix::unistd::read(&group, &mut self.buffer) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut at = 0;
            while let Some(event) = self.buffer.get(at..n).and_then(event_at) {
                at += event.len;
                if event.mask & libc::FAN_Q_OVERFLOW != 0 {
                    into.push(Event::Overflow);
                    continue;
                }
                let Some((key, name)) = event.file else {
                    continue;
                };
                let Some(dir) = self.directory(&key) else {
                    continue;
                };
                let path = match name.as_deref() {
                    None | Some(".") | Some("") => dir,
                    Some(name) => dir.join(name),
                };
                into.push(Event::File {
                    pid: event.pid,
                    path,
                    kinds: kinds_of(event.mask),
                });
            }
        }
    }

    /// The path of the directory whose handle (fsid, type, bytes) is `key`.
    fn directory(&mut self, key: &[u8]) -> Option<PathBuf> {
        if let Some(known) = self.dirs.get(key) {
            return known.clone();
        }
        let fsid: [u8; 8] = key[..8].try_into().ok()?;
        let order: Vec<usize> = match self.mount_of.get(&fsid) {
            Some(&i) => vec![i],
            None => (0..self.mounts.len()).collect(),
        };
        let mut found = None;
        for i in order {
            if let Some(path) = resolve(&self.mounts[i], &key[8..]) {
                self.mount_of.insert(fsid, i);
                found = Some(path);
                break;
            }
        }
        if self.dirs.len() >= MAX_DIRS {
            self.dirs.clear();
        }
        self.dirs.insert(key.to_vec(), found.clone());
        found
    }
}

/// One event in the buffer: its length, mask, pid, and the handle key and
/// name of its file.
struct RawEvent {
    len: usize,
    mask: u64,
    pid: u32,
    file: Option<(Vec<u8>, Option<String>)>,
}

fn event_at(bytes: &[u8]) -> Option<RawEvent> {
    let u16_at = |at: usize| Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let len = u32_at(0)? as usize;
    if len < METADATA_LEN || len > bytes.len() {
        return None;
    }
    let metadata_len = usize::from(u16_at(6)?);
    let mask = u64::from_ne_bytes(bytes.get(8..16)?.try_into().ok()?);
    let fd = i32::from_ne_bytes(bytes.get(16..20)?.try_into().ok()?);
    if fd >= 0 {
        // Not in this mode; never leave one open.
        // SAFETY: the kernel opened `fd` for us and nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let pid = u32_at(20)?;
    let mut file = None;
    let mut at = metadata_len;
    while at + 4 <= len {
        let info_type = bytes[at];
        let info_len = usize::from(u16_at(at + 2)?);
        if info_len < 4 || at + info_len > len {
            break;
        }
        if matches!(info_type, INFO_FID | INFO_DFID_NAME | INFO_DFID) && file.is_none() {
            file = fid_info(&bytes[at..at + info_len], info_type == INFO_DFID_NAME);
        }
        at += info_len;
    }
    Some(RawEvent {
        len,
        mask,
        pid,
        file,
    })
}

/// fanotify_event_info_fid: header (4), fsid (8), file_handle (its byte
/// count, type, bytes), then for DFID_NAME the name, NUL-terminated. The
/// key is fsid, type and bytes.
fn fid_info(info: &[u8], named: bool) -> Option<(Vec<u8>, Option<String>)> {
    let handle_bytes = u32::from_ne_bytes(info.get(12..16)?.try_into().ok()?) as usize;
    let end = 20 + handle_bytes;
    let mut key = Vec::with_capacity(12 + handle_bytes);
    key.extend_from_slice(info.get(4..12)?);
    key.extend_from_slice(info.get(16..end)?);
    let name = named.then(|| {
        let rest = info.get(end..).unwrap_or(&[]);
        let name = rest.split(|&b| b == 0).next().unwrap_or(&[]);
        String::from_utf8_lossy(name).into_owned()
    });
    Some((key, name))
}

/// Opens the handle (type and bytes) on `mount`'s file system and reads
/// its path.
fn resolve(mount: &OwnedFd, handle: &[u8]) -> Option<PathBuf> {
    let (handle_type, bytes) = handle.split_at_checked(4)?;
    // struct file_handle, 4-byte aligned: byte count, type, bytes.
    let mut words = vec![
        bytes.len() as u32,
        u32::from_ne_bytes(handle_type.try_into().ok()?),
    ];
    words.extend(bytes.chunks(4).map(|chunk| {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        u32::from_ne_bytes(word)
    }));
    // SAFETY: `words` holds a well-formed file_handle for the call's
    // duration; the descriptor returned is checked and owned at once.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            words.as_mut_ptr().cast::<libc::file_handle>(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::read_link(Path::new("/proc/self/fd").join(fd.as_raw_fd().to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_with_a_directory_handle_and_name_is_read() {
        let name = b"passwd\0";
        let handle = [7u8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let info_len = 4 + 8 + 8 + handle.len() - 4 + name.len();
        let mut info = vec![INFO_DFID_NAME, 0];
        info.extend_from_slice(&(info_len as u16).to_ne_bytes());
        info.extend_from_slice(&[9; 8]); // fsid
        info.extend_from_slice(&8u32.to_ne_bytes()); // handle_bytes
        info.extend_from_slice(&handle[..4]); // handle_type
        info.extend_from_slice(&handle[4..]);
        info.extend_from_slice(name);
        assert_eq!(info.len(), info_len);
        let mut event = Vec::new();
        let len = METADATA_LEN + info.len();
        event.extend_from_slice(&(len as u32).to_ne_bytes());
        event.extend_from_slice(&[3, 0]);
        event.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        event.extend_from_slice(&(libc::FAN_OPEN | libc::FAN_CLOSE_NOWRITE).to_ne_bytes());
        event.extend_from_slice(&(-1i32).to_ne_bytes());
        event.extend_from_slice(&4242u32.to_ne_bytes());
        event.extend_from_slice(&info);
        let parsed = event_at(&event).unwrap();
        assert_eq!((parsed.len, parsed.pid), (len, 4242));
        let (key, name) = parsed.file.unwrap();
        assert_eq!(&key[..8], &[9; 8]);
        assert_eq!(&key[8..], &handle);
        assert_eq!(name.as_deref(), Some("passwd"));
        // A cut event is not read past its end.
        assert!(event_at(&event[..len - 1]).is_none());
    }
}
