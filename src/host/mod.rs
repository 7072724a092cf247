//! What the machine says about its processes beyond /proc: which login
//! sessions are still open (logind), which units timers start, what the
//! container runtimes call their containers. Each is read from the
//! system's files once, when first asked for.
//!
//! The system root is `/` for /proc, and DIR for a proc tree at DIR/proc
//! (a host's root mounted in a container, or a test's tree).

mod containers;
mod logins;
mod timers;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use crate::snapshot::{Cgroup, ContainerId};
pub use logins::Logins;

pub struct Host {
    root: PathBuf,
    logins: OnceCell<Logins>,
    timer_units: OnceCell<std::collections::HashSet<String>>,
    container_names: OnceCell<containers::Names>,
}

impl Host {
    /// The machine whose processes are under `proc_root`.
    pub fn of(proc_root: &Path) -> Host {
        let root = match (proc_root.file_name(), proc_root.parent()) {
            (Some(name), Some(parent)) if name == "proc" && proc_root != Path::new("/proc") => {
                parent.to_path_buf()
            }
            _ => PathBuf::from("/"),
        };
        Host::at(root)
    }

    /// The machine whose files are under `root`.
    pub fn at(root: PathBuf) -> Host {
        Host {
            root,
            logins: OnceCell::new(),
            timer_units: OnceCell::new(),
            container_names: OnceCell::new(),
        }
    }

    pub fn logins(&self) -> &Logins {
        self.logins.get_or_init(|| Logins::read(&self.root))
    }

    /// Whether `cgroup` is in a login that is still open: a session scope
    /// whose session is active or online, or the `systemd --user` of a
    /// user who is logged in.
    pub fn in_open_login(&self, cgroup: &Cgroup) -> bool {
        let logins = self.logins();
        if let Some(session) = &cgroup.session {
            return logins.session_open(session);
        }
        cgroup
            .user_manager
            .is_some_and(|uid| logins.user_logged_in(uid))
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
