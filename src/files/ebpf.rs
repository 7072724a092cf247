//! The eBPF event source of `psdiff files`: loads `bpf/files.bpf.o`
//! (compiled from `bpf/files.bpf.c`, committed, so psdiff builds without
//! clang), attaches it to BTF raw tracepoints (no tracefs needed), and drains
//! its ring buffer. The kernel side follows the tree itself; psdiff only
//! says where it starts.

use std::path::Path;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::{Ebpf, EbpfLoader, Pod};

pub use crate::bpf::EbpfError;
use crate::bpf::chain;

static OBJECT: &[u8] = include_bytes!("bpf/files.bpf.o");

/// The programs of the object, each named after its tracepoint.
/// (fexit on the dozen system calls would spare unwatched processes the
/// syscall tracepoint's slow path, but kernels whose BPF LSM or lockdown
/// refuse trampolines, as our test machines do, could not run it.)
const PROGRAMS: [&str; 4] = [
    "sys_exit",
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
];
/// Kernel-side limits, as in files.bpf.c.
pub const MAX_PREFIXES: usize = 8;
pub const PREFIX_MAX: usize = 256;
pub const MAX_NAMES: usize = 8;
const COMM_LEN: usize = 16;
const HEADER_SIZE: usize = 64;

/// What the kernel side reports; the numbers of `enum kind` in the C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Open,
    Failed,
    Close,
    Dup,
    SetCloexec,
    CloseRange,
    Chdir,
    Fchdir,
    Fork,
    Exec,
    Exit,
}

impl Kind {
    fn of(n: u32) -> Option<Kind> {
        Some(match n {
            1 => Kind::Open,
            2 => Kind::Failed,
            3 => Kind::Close,
            4 => Kind::Dup,
            5 => Kind::SetCloexec,
            6 => Kind::CloseRange,
            7 => Kind::Chdir,
            8 => Kind::Fchdir,
            9 => Kind::Fork,
            10 => Kind::Exec,
            11 => Kind::Exit,
            _ => return None,
        })
    }
}

/// One event as the kernel wrote it (`struct event`), read in place in
/// the ring buffer.
#[derive(Debug, Clone, Copy)]
pub struct KernelEvent<'a> {
    /// CLOCK_MONOTONIC.
    pub time_ns: u64,
    pub kind: Kind,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub fd: i32,
    /// The dirfd of an open, the old descriptor of a dup, the last of a
    /// close_range.
    pub arg: i32,
    pub ret: i64,
    pub flags: u32,
    /// The thread's name, without its NUL.
    pub comm: &'a [u8],
    /// Without its NUL; empty when the event has none.
    pub path: &'a [u8],
}

impl<'a> KernelEvent<'a> {
    fn parse(bytes: &'a [u8]) -> Option<KernelEvent<'a>> {
        let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        let path_len = u32_at(44)? as usize;
        let comm = bytes.get(48..48 + COMM_LEN)?;
        let comm = &comm[..comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN)];
        let path = match path_len {
            0 => &[][..],
            n => bytes.get(HEADER_SIZE..HEADER_SIZE + n - 1)?,
        };
        Some(KernelEvent {
            time_ns: u64_at(0)?,
            kind: Kind::of(u32_at(8)?)?,
            pid: u32_at(12)?,
            tid: u32_at(16)?,
            ppid: u32_at(20)?,
            fd: u32_at(24)? as i32,
            arg: u32_at(28)? as i32,
            ret: u64_at(32)? as i64,
            flags: u32_at(40)?,
            comm,
            path,
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Watched {
    depth: u32,
}
// SAFETY: plain integers, as `struct watched` in the C.
unsafe impl Pod for Watched {}

#[repr(C)]
#[derive(Clone, Copy)]
struct Config {
    max_depth: u32,
    prefixes: u32,
    names: u32,
    me: u32,
}
// SAFETY: plain integers, as `struct config`.
unsafe impl Pod for Config {}

#[repr(C)]
#[derive(Clone, Copy)]
struct Prefix {
    len: u32,
    path: [u8; PREFIX_MAX],
}
// SAFETY: plain bytes, as `struct prefix`.
unsafe impl Pod for Prefix {}

#[repr(C)]
#[derive(Clone, Copy)]
struct Name {
    comm: [u8; COMM_LEN],
}
// SAFETY: plain bytes, as `struct name`.
unsafe impl Pod for Name {}

/// What the kernel side is told before it starts.
pub struct Filter<'a> {
    pub max_depth: Option<u32>,
    /// Absolute prefixes, at most `MAX_PREFIXES`, each shorter than
    /// `PREFIX_MAX`; longer or more are filtered by psdiff instead.
    pub prefixes: &'a [&'a Path],
    /// Process names (`--name`), compared with comm (15 bytes).
    pub names: &'a [String],
    pub ring_bytes: u32,
}

/// The loaded, attached program and its maps.
pub struct Tracer {
    // Dropping it detaches the programs.
    _ebpf: Ebpf,
    watched: HashMap<MapData, u32, Watched>,
    events: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
}

impl Tracer {
    /// Loads and configures the program; the tracepoints are attached by
    /// `start`, once the first processes are in `watch`.
    pub fn load(filter: &Filter) -> Result<Tracer, EbpfError> {
        crate::bpf::available()?;
        let load = |e: &dyn std::error::Error| EbpfError::Load(chain(e));
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", filter.ring_bytes)
            .load(OBJECT)
            .map_err(|e| load(&e))?;
        let mut config: Array<_, Config> =
            Array::try_from(ebpf.map_mut("CONFIG").expect("in the object"))
                .map_err(|e| load(&e))?;
        let value = Config {
            max_depth: filter.max_depth.unwrap_or(u32::MAX),
            prefixes: filter.prefixes.len() as u32,
            names: filter.names.len() as u32,
            me: std::process::id(),
        };
        config.set(0, value, 0).map_err(|e| load(&e))?;
        let mut prefixes: Array<_, Prefix> =
            Array::try_from(ebpf.map_mut("PREFIXES").expect("in the object"))
                .map_err(|e| load(&e))?;
        for (i, prefix) in filter.prefixes.iter().enumerate() {
            let bytes = prefix.as_os_str().as_encoded_bytes();
            let mut path = [0; PREFIX_MAX];
            path[..bytes.len()].copy_from_slice(bytes);
            let entry = Prefix {
                len: bytes.len() as u32,
                path,
            };
            prefixes.set(i as u32, entry, 0).map_err(|e| load(&e))?;
        }
        let mut names: Array<_, Name> =
            Array::try_from(ebpf.map_mut("NAMES").expect("in the object")).map_err(|e| load(&e))?;
        for (i, name) in filter.names.iter().enumerate() {
            let mut comm = [0; COMM_LEN];
            let bytes = &name.as_bytes()[..name.len().min(COMM_LEN - 1)];
            comm[..bytes.len()].copy_from_slice(bytes);
            names
                .set(i as u32, Name { comm }, 0)
                .map_err(|e| load(&e))?;
        }
        crate::bpf::load_tracepoints(&mut ebpf, &PROGRAMS)?;
        let take = |ebpf: &mut Ebpf, name| ebpf.take_map(name).expect("in the object");
        let watched = HashMap::try_from(take(&mut ebpf, "WATCHED")).map_err(|e| load(&e))?;
        let events = RingBuf::try_from(take(&mut ebpf, "EVENTS")).map_err(|e| load(&e))?;
        let lost = PerCpuArray::try_from(take(&mut ebpf, "LOST")).map_err(|e| load(&e))?;
        Ok(Tracer {
            _ebpf: ebpf,
            watched,
            events,
            lost,
        })
    }

    /// Watches `pid` (a target at depth 0, or a descendant found running).
    pub fn watch(&mut self, pid: u32, depth: u32) -> Result<(), EbpfError> {
        self.watched
            .insert(pid, Watched { depth }, 0)
            .map_err(|e| EbpfError::Load(chain(&e)))
    }

    /// Stops watching `pid` (psdiff itself, once its command is started).
    pub fn unwatch(&mut self, pid: u32) {
        let _ = self.watched.remove(&pid);
    }

    /// Attaches the programs: events flow from here on.
    pub fn start(&mut self) -> Result<(), EbpfError> {
        // The tree first: it is followed before any of its files are
        // reported.
        // The tree first: it is followed before any of its files are
        // reported.
        let mut reversed = PROGRAMS;
        reversed.reverse();
        crate::bpf::attach(&mut self._ebpf, &reversed)
    }

    /// Hands `each` every event in the ring buffer now, in order, each
    /// read where the kernel wrote it.
    pub fn drain(&mut self, mut each: impl FnMut(KernelEvent)) {
        while let Some(item) = self.events.next() {
            if let Some(event) = KernelEvent::parse(&item) {
                each(event);
            }
        }
    }

    /// Events the kernel dropped because the ring buffer was full.
    pub fn lost(&self) -> u64 {
        crate::bpf::total(&self.lost)
    }
}
