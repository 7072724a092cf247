//! The eBPF event source of `psdiff watch`: loads `bpf/watch.bpf.o`
//! (compiled from `bpf/watch.bpf.c`, committed), attaches it to the
//! scheduler's BTF raw tracepoints, and reads its ring buffer. At exec the
//! kernel side sends what the new program is (file, argv, credentials,
//! cgroup), so a process gone before /proc could be read is still named.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use aya::Pod;
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::{Ebpf, EbpfLoader};

use crate::bpf::{self, EbpfError};
use crate::proc_events::ProcEvent;
use crate::snapshot::Ids;
use crate::snapshot::attest::AtExec;

use super::source::{Event, ExecSeen};

static OBJECT: &[u8] = include_bytes!("bpf/watch.bpf.o");

const PROGRAMS: [&str; 3] = [
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
];
/// Offsets of `struct event` in the C.
const HEADER_SIZE: usize = 112;
const COMM_AT: usize = 96;
const COMM_LEN: usize = 16;
/// `truncated`'s bits.
const EXE_TRUNCATED: u16 = 1;
const CGROUP_TRUNCATED: u16 = 2;
/// `attest`'s bits (`enum attest`).
const PRELOAD: u32 = 1;
const AUDIT: u32 = 2;
const ENV_UNREAD: u32 = 4;
const OWN_USER_NAMESPACE: u32 = 8;

/// Where the watcher runs (`struct config`): pids and cgroups are sent as
/// its /proc shows them, so it can run in a container.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Config {
    /// The inode of its pid namespace.
    ns_inum: u32,
    unused: u32,
    /// The kernfs id of its cgroup namespace's root, where a cgroup's
    /// path begins; 0 walks to the hierarchy's root.
    cgroup_root: u64,
}
// SAFETY: plain integers, as `struct config` in the C.
unsafe impl Pod for Config {}

impl Config {
    fn of_this_process() -> Config {
        use std::os::unix::fs::MetadataExt;
        let ns_inum = std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino() as u32);
        Config {
            ns_inum,
            unused: 0,
            cgroup_root: cgroup_root().unwrap_or(0),
        }
    }
}

/// The root of this process's cgroup namespace, as the kernfs id of the
/// cgroup2 mount at /sys/fs/cgroup, when that mount is rooted there: our
/// own cgroup, as /proc/self/cgroup names it, is found under it.
fn cgroup_root() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let mount = std::path::Path::new("/sys/fs/cgroup");
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let inside = mount
        .join(own.trim_start_matches('/'))
        .join("cgroup.controllers");
    (mount.join("cgroup.controllers").exists() && inside.exists())
        .then(|| std::fs::metadata(mount).ok().map(|m| m.ino()))
        .flatten()
}

pub struct Tracer {
    // Dropping it detaches the programs.
    _ebpf: Ebpf,
    events: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    /// Clock ticks per second, to give a fork's start time as /proc does.
    ticks: u64,
}

impl Tracer {
    /// Loads and attaches the programs, with a ring buffer of `ring_bytes`
    /// (a power of two, at least a page).
    pub fn start(ring_bytes: u32) -> Result<Tracer, EbpfError> {
        bpf::available()?;
        let load = |e: &dyn std::error::Error| EbpfError::load(e);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", ring_bytes)
            .load(OBJECT)
            .map_err(|e| load(&e))?;
        let mut config: Array<_, Config> =
            Array::try_from(ebpf.map_mut("CONFIG").expect("in the object"))
                .map_err(|e| load(&e))?;
        config
            .set(0, Config::of_this_process(), 0)
            .map_err(|e| load(&e))?;
        bpf::load_tracepoints(&mut ebpf, &PROGRAMS)?;
        bpf::attach(&mut ebpf, &PROGRAMS)?;
        let take = |ebpf: &mut Ebpf, name| ebpf.take_map(name).expect("in the object");
        let events = RingBuf::try_from(take(&mut ebpf, "EVENTS")).map_err(|e| load(&e))?;
        let lost = PerCpuArray::try_from(take(&mut ebpf, "LOST")).map_err(|e| load(&e))?;
        Ok(Tracer {
            _ebpf: ebpf,
            events,
            lost,
            ticks: procfs::ticks_per_second(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// Every event in the ring buffer now, in order.
    pub fn read(&mut self, into: &mut Vec<Event>) {
        while let Some(item) = self.events.next() {
            into.extend(parse(&item, self.ticks));
        }
    }

    /// Events the kernel dropped because the ring buffer was full.
    pub fn lost(&self) -> u64 {
        bpf::total(&self.lost)
    }
}

/// One event as the kernel wrote it (`struct event`).
fn parse(bytes: &[u8], ticks: u64) -> Option<Event> {
    let u16_at = |at: usize| Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let ids = |at: usize| {
        Some(Ids {
            real: u32_at(at)?,
            effective: u32_at(at + 4)?,
            saved: u32_at(at + 8)?,
            fs: u32_at(at + 12)?,
        })
    };
    let start_ticks = u64_at(8)? / (1_000_000_000 / ticks.max(1));
    let (kind, pid, ppid, status) = (u32_at(16)?, u32_at(20)?, u32_at(24)?, u32_at(28)?);
    let event = match kind {
        1 => ProcEvent::Fork {
            parent: ppid,
            child: pid,
        },
        2 => ProcEvent::Exec { pid },
        3 => ProcEvent::Exit { pid, status },
        _ => return None,
    };
    let argv_at = |from: usize| {
        let len = u16_at(68)? as usize;
        let argv = bytes.get(HEADER_SIZE..)?.get(from..from + len)?;
        Some(Box::<[u8]>::from(argv.strip_suffix(&[0]).unwrap_or(argv)))
    };
    // (Empty: a kernel thread's, or memory that could not be read.)
    let title = match kind {
        1 => argv_at(0).filter(|t| !t.is_empty()),
        _ => None,
    };
    let exec = if kind == 2 {
        let (exe_len, cgroup_len) = (u16_at(64)? as usize, u16_at(66)? as usize);
        let truncated = u16_at(70)?;
        let comm = bytes.get(COMM_AT..COMM_AT + COMM_LEN)?;
        let comm = &comm[..comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN)];
        let data = bytes.get(HEADER_SIZE..)?;
        let exe = data.get(..exe_len)?;
        let cgroup = data.get(exe_len..exe_len + cgroup_len)?;
        Some(Box::new(ExecSeen {
            ppid,
            uids: ids(32)?,
            gids: ids(48)?,
            comm: comm.into(),
            exe: (truncated & EXE_TRUNCATED == 0 && !exe.is_empty()).then(|| path_of(exe)),
            cgroup: (truncated & CGROUP_TRUNCATED == 0).then(|| {
                String::from_utf8_lossy(&path_of(cgroup).into_os_string().into_encoded_bytes())
                    .into_owned()
            }),
            argv: argv_at(exe_len + cgroup_len)?,
            attested: attested(u64_at(72)?, u32_at(80)?, u32_at(84)?, u32_at(88)?),
        }))
    } else {
        None
    };
    Some(Event {
        event,
        // A fork's child's start, and an exec's process's (for one whose
        // fork came too late to read).
        start_ticks: (kind == 1 || kind == 2).then_some(start_ticks),
        exec,
        title,
    })
}

/// The kernel's attestation of a program, from `exe_ino`, `exe_dev`,
/// `userns_owner` and `attest`.
fn attested(ino: u64, kernel_dev: u32, owner: u32, bits: u32) -> AtExec {
    // The kernel keeps a device as 12 bits of major over 20 of minor.
    let dev = libc::makedev(kernel_dev >> 20, kernel_dev & 0xf_ffff);
    let loader = [(PRELOAD, "LD_PRELOAD"), (AUDIT, "LD_AUDIT")]
        .into_iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| name)
        .collect();
    AtExec {
        file: (dev, ino),
        user_namespace_owner: (bits & OWN_USER_NAMESPACE != 0).then_some(owner),
        loader,
        environment_read: bits & ENV_UNREAD == 0,
    }
}

/// A path from its components as the kernel walked them, the last first,
/// each ending in a NUL: `nginx\0sbin\0usr\0` is `/usr/sbin/nginx`, and no
/// component at all is `/`.
fn path_of(components: &[u8]) -> PathBuf {
    let mut path = Vec::with_capacity(components.len() + 1);
    let parts: Vec<&[u8]> = components
        .split(|&b| b == 0)
        .filter(|c| !c.is_empty())
        .collect();
    for part in parts.iter().rev() {
        path.push(b'/');
        path.extend_from_slice(part);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_device_number_is_given_as_stat_gives_it() {
        // /dev/vda: 254:0, which stat(2) gives as 0xfe00.
        let seen = attested(7, 254 << 20, 0, PRELOAD | ENV_UNREAD);
        assert_eq!(seen.file, (0xfe00, 7));
        assert_eq!(seen.loader, ["LD_PRELOAD"]);
        assert!(!seen.environment_read && seen.user_namespace_owner.is_none());
        let seen = attested(7, (259 << 20) | 0x12345, 1000, OWN_USER_NAMESPACE);
        assert_eq!(seen.file.0, libc::makedev(259, 0x12345));
        assert_eq!(seen.user_namespace_owner, Some(1000));
    }

    #[test]
    fn a_path_is_put_together_from_its_components_last_first() {
        assert_eq!(
            path_of(b"nginx\0sbin\0usr\0"),
            PathBuf::from("/usr/sbin/nginx")
        );
        assert_eq!(path_of(b""), PathBuf::from("/"));
        assert_eq!(
            path_of(b"nginx.service\0system.slice\0"),
            PathBuf::from("/system.slice/nginx.service")
        );
    }
}
