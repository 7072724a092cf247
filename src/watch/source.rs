//! Where the watcher's events come from (`--backend`): the proc connector
//! (any kernel, pids only, so each new program is read from /proc), or the
//! eBPF program, which also says what each program was as it started.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::bpf::EbpfError;
use crate::proc_events::{Connector, ProcEvent};
use crate::snapshot::Ids;
use crate::snapshot::attest::AtExec;

use super::ebpf::Tracer;

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// eBPF where this kernel and psdiff's privileges allow, else the
    /// connector.
    Auto,
    /// eBPF tracepoints: each program named by the kernel as it starts.
    Ebpf,
    /// The kernel's process events connector (netlink).
    Connector,
}

/// One event, with what only the eBPF backend knows.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: ProcEvent,
    /// A fork's start time, in clock ticks after boot, as /proc gives it.
    pub start_ticks: Option<u64>,
    /// At an exec: the program as the kernel saw it start.
    pub exec: Option<Box<ExecSeen>>,
    /// At a fork: the parent's argv as its memory held it then, the
    /// title it may have set since it was read (eBPF only).
    pub title: Option<Box<[u8]>>,
}

impl From<ProcEvent> for Event {
    fn from(event: ProcEvent) -> Event {
        Event {
            event,
            start_ticks: None,
            exec: None,
            title: None,
        }
    }
}

/// A program as the kernel started it, before it ran: nothing it can do
/// changes this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSeen {
    pub ppid: u32,
    pub uids: Ids,
    pub gids: Ids,
    pub comm: Box<[u8]>,
    /// The file it runs (an interpreter, for a script), as /proc/PID/exe
    /// names it; `None` when too deep to walk.
    pub exe: Option<PathBuf>,
    /// Its cgroup path (v2), e.g. `/system.slice/cron.service`.
    pub cgroup: Option<String>,
    /// argv, NUL-separated, as /proc/PID/cmdline (the first 4 KiB).
    pub argv: Box<[u8]>,
    /// What the kernel attests of the program.
    pub attested: AtExec,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "cannot subscribe to the kernel's process events: {0}; psdiff watch needs root (CAP_NET_ADMIN) in the host's first pid namespace, and a kernel with CONFIG_PROC_EVENTS"
    )]
    Connector(std::io::Error),
    #[error("--backend ebpf: {0}")]
    Ebpf(#[from] EbpfError),
}

pub enum Source {
    Connector(Connector),
    Ebpf(Box<Tracer>),
}

impl Source {
    /// Opens the backend asked for; `auto` falls back to the connector
    /// and says why on stderr.
    pub fn open(
        backend: Backend,
        receive_buffer: usize,
        ring_bytes: u32,
    ) -> Result<Source, SourceError> {
        let connector = || -> Result<Source, SourceError> {
            let connector = Connector::open().map_err(SourceError::Connector)?;
            connector
                .set_receive_buffer(receive_buffer)
                .map_err(SourceError::Connector)?;
            Ok(Source::Connector(connector))
        };
        match backend {
            Backend::Connector => connector(),
            Backend::Ebpf => Ok(Source::Ebpf(Box::new(Tracer::start(ring_bytes)?))),
            Backend::Auto => match Tracer::start(ring_bytes) {
                Ok(tracer) => Ok(Source::Ebpf(Box::new(tracer))),
                Err(e) => {
                    eprintln!("psdiff watch: {e}; using the process events connector");
                    connector()
                }
            },
        }
    }

    /// Its name in the journal and the heartbeat.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Connector(_) => "connector",
            Source::Ebpf(_) => "ebpf",
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Connector(c) => c.fd().as_fd(),
            Source::Ebpf(t) => t.fd(),
        }
    }

    /// Every event queued now. `Err` with ENOBUFS: the connector's socket
    /// overflowed (counted in `lost`).
    pub fn read(&mut self, into: &mut Vec<Event>) -> std::io::Result<()> {
        match self {
            Source::Connector(c) => {
                let mut events = Vec::new();
                let result = c.read(&mut events);
                into.extend(events.into_iter().map(Event::from));
                result
            }
            Source::Ebpf(t) => {
                t.read(into);
                Ok(())
            }
        }
    }

    /// How long to let events gather after reading them, before waiting
    /// again. The eBPF side names each program in the kernel, so reading
    /// its ring a few milliseconds late loses nothing, while a wakeup
    /// for every exec cost a fork+exec loop a third of its speed on two
    /// cores. The connector's events are read at once: each new process's
    /// /proc entry is read as it arrives, before it can be gone.
    pub fn gather_for(&self) -> Option<Duration> {
        match self {
            Source::Connector(_) => None,
            Source::Ebpf(_) => Some(Duration::from_millis(10)),
        }
    }

    /// What its losses are called in the journal, besides the connector's
    /// `overflow` (ENOBUFS): a gap in the connector's sequence numbers,
    /// or the eBPF ring buffer found full.
    pub fn loss_kind(&self) -> &'static str {
        match self {
            Source::Connector(_) => "sequence",
            Source::Ebpf(_) => "ring",
        }
    }

    /// Events known lost since it opened.
    pub fn lost(&self) -> u64 {
        match self {
            Source::Connector(c) => c.lost(),
            Source::Ebpf(t) => t.lost(),
        }
    }
}
