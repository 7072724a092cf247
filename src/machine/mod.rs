//! What the machine says about its processes beyond /proc: which login
//! sessions are still open (logind), which units timers start, what the
//! container runtimes call their containers. Each is read from the
//! system's files once, when first asked for.
//!
//! The system root is `/` for /proc, and DIR for a proc tree at DIR/proc
//! (a host's root mounted in a container, or a test's tree).

mod containers;
mod logind;
mod logins;
mod timers;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use crate::snapshot::attest::{AtExec, Attestor, Doubt};
use crate::snapshot::{ContainerId, Process};
pub use logins::Logins;

pub struct Machine {
    root: PathBuf,
    /// The proc tree, when it is this machine's /proc (psdiff runs in it).
    local_proc: Option<PathBuf>,
    me: OnceCell<Option<crate::invocation::Me>>,
    logins: OnceCell<Logins>,
    timer_units: OnceCell<std::collections::HashSet<String>>,
    container_names: OnceCell<containers::Names>,
    attestor: OnceCell<Option<Attestor>>,
    uptime_ticks: OnceCell<Option<u64>>,
}

impl Machine {
    /// The machine whose processes are under `proc_root`.
    pub fn of(proc_root: &Path) -> Machine {
        let root = match (proc_root.file_name(), proc_root.parent()) {
            (Some(name), Some(parent)) if name == "proc" && proc_root != Path::new("/proc") => {
                parent.to_path_buf()
            }
            _ => PathBuf::from("/"),
        };
        let mut machine = Machine::at(root);
        machine.local_proc = Some(proc_root.to_path_buf());
        machine
    }

    /// The machine whose files are under `root`.
    pub fn at(root: PathBuf) -> Machine {
        Machine {
            root,
            local_proc: None,
            me: OnceCell::new(),
            logins: OnceCell::new(),
            timer_units: OnceCell::new(),
            container_names: OnceCell::new(),
            attestor: OnceCell::new(),
            uptime_ticks: OnceCell::new(),
        }
    }

    /// This psdiff, when it runs on the machine whose processes are read.
    pub fn me(&self) -> Option<&crate::invocation::Me> {
        self.me
            .get_or_init(|| {
                self.local_proc
                    .as_deref()
                    .and_then(crate::invocation::Me::read)
            })
            .as_ref()
    }

    /// The pipes of a process's standard streams, read now.
    pub fn standard_pipes(&self, pid: u32) -> crate::invocation::Pipes {
        let Some(root) = self.local_proc.as_deref() else {
            return Default::default();
        };
        crate::snapshot::ProcRoot::open(root)
            .ok()
            .and_then(|r| r.process(pid))
            .map(|dir| crate::invocation::standard_pipes(&dir))
            .unwrap_or_default()
    }

    /// Whether its processes can be looked at beyond what their files
    /// say: a real proc file system, not a test's synthetic tree.
    pub fn attests(&self) -> bool {
        self.attestor().is_some()
    }

    /// Whether `process` is held stopped by a signal or a user's tracer
    /// (`snapshot::held_stopped`).
    pub fn held_stopped(&self, process: &Process) -> bool {
        let proc_root = self.local_proc.as_deref().unwrap_or(Path::new("/proc"));
        crate::snapshot::held_stopped(proc_root, process)
    }

    /// The folder of process `pid` on a real proc file system, for what
    /// only the live process tells (its descriptors, its sockets).
    pub fn live_process(&self, pid: u32) -> Option<crate::snapshot::ProcDir> {
        self.attestor()?.proc().process(pid)
    }

    fn attestor(&self) -> Option<&Attestor> {
        self.attestor
            .get_or_init(|| Attestor::new(self.local_proc.as_deref().unwrap_or(Path::new("/proc"))))
            .as_ref()
    }

    /// Why the executable /proc names for `process` may not be what it
    /// runs (`snapshot::attest`); for one gone, as judged while it ran if
    /// it was. None on a tree that is no proc file system, whose word is
    /// all there is.
    pub fn doubts(&self, process: &Process) -> Vec<Doubt> {
        let now = match (self.attestor(), process.exe_path()) {
            (None, _) => Vec::new(),
            (Some(_), None) => vec![Doubt::CannotTell],
            (Some(a), Some(exe)) => a.doubts(process.pid, process.start_time, exe),
        };
        // What runs now is judged now (code slipped in since its exec
        // counts); only one gone is taken as it was judged at its exec.
        match &process.attested {
            Some(at_exec) if now == [Doubt::CannotTell] => at_exec.to_vec(),
            _ => now,
        }
    }

    /// The doubts about `process` as it starts a program: as it runs
    /// now, or for one gone already, as the kernel saw it at exec
    /// (`seen`, where the event source says).
    pub fn doubts_at_exec(&self, process: &Process, seen: Option<&AtExec>) -> Vec<Doubt> {
        let now = self.doubts(process);
        match (self.attestor(), process.exe_path(), seen) {
            (Some(a), Some(exe), Some(seen)) if now == [Doubt::CannotTell] => {
                a.doubts_at_exec(exe, seen)
            }
            _ => now,
        }
    }

    /// The time since boot in clock ticks, as process start times count
    /// it, read once; `None` where the proc tree has no `uptime`.
    pub fn uptime_ticks(&self) -> Option<u64> {
        *self.uptime_ticks.get_or_init(|| {
            use procfs::FromRead;
            let proc = self.local_proc.as_deref().unwrap_or(Path::new("/proc"));
            let uptime = procfs::Uptime::from_file(proc.join("uptime")).ok()?;
            Some((uptime.uptime * procfs::ticks_per_second() as f64) as u64)
        })
    }

    pub fn logins(&self) -> &Logins {
        self.logins.get_or_init(|| Logins::read(&self.root))
    }

    /// Whether a timer starts `unit` (a systemd timer job, today's cron
    /// job).
    pub fn is_timer_job(&self, unit: &str) -> bool {
        self.timer_units
            .get_or_init(|| timers::started_units(&self.root))
            .contains(unit)
    }

    /// The name the runtime gives a container, where it keeps one on disk.
    pub fn container_name<'a>(&'a self, container: &'a ContainerId) -> Option<&'a str> {
        match container.runtime {
            "nspawn" | "lxc" => Some(&container.id),
            _ => self
                .container_names
                .get_or_init(|| containers::Names::new(&self.root))
                .get(container),
        }
    }
}
