//! Whether this user can see every process. With /proc mounted
//! `hidepid=1|2|invisible|noaccess`, a monitoring agent that is not root
//! (Zabbix runs as `zabbix`) would see only its own processes, and every
//! daemon would look missing: that must be an error that says how to fix
//! it, never a quiet page of alarms.

use std::path::{Path, PathBuf};

use nix::unistd::{Uid, User, getegid, getgroups};

#[derive(Debug, thiserror::Error)]
#[error(
    "{proc} is mounted with hidepid={mode}: as user {user} psdiff would see only its own processes and report every daemon missing. \
     Fix: remount it with a group that may see all ({remount}) and add {user} to that group, \
     or run psdiff as root through sudo with the exact arguments of each check (the lines are in /usr/share/psdiff/sudoers)",
    proc = .proc_root.display()
)]
pub struct HiddenProcesses {
    pub proc_root: PathBuf,
    pub mode: String,
    pub user: String,
    pub remount: String,
}

/// psdiff's rules rest on which program each process runs, which only
/// root (or CAP_SYS_PTRACE) may read of other users' processes. Without it
/// every daemon would look unknown and be reported extra: an error that
/// says how to fix it, never a page of alarms.
#[derive(Debug, thiserror::Error)]
#[error(
    "psdiff runs as user {user}, which may not read which program other users' processes run (/proc/PID/exe), and the rules in force rest on that: every daemon would look unknown. \
     Fix: run psdiff as root through sudo with the exact arguments of each check (the lines are in /usr/share/psdiff/sudoers; the shipped Zabbix and NRPE files use `sudo -n`)"
)]
pub struct NoIdentity {
    pub user: String,
}

/// Fails when this user may not read the executables of other users'
/// processes under `root` (this machine's /proc only: another tree's
/// links are whatever it holds).
pub fn check_identity(root: &crate::snapshot::ProcRoot) -> Result<(), NoIdentity> {
    let euid = Uid::effective();
    if euid.is_root() || !root.is_local() {
        return Ok(());
    }
    // pid 1 is root's: readable only with the rights the rules need.
    let Some(init) = root.process(1) else {
        return Ok(());
    };
    match init.read_link("exe") {
        Some(_) => Ok(()),
        None => Err(NoIdentity {
            user: user_name(euid),
        }),
    }
}

fn user_name(uid: Uid) -> String {
    User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// Fails when `proc_root` is a proc mount with `hidepid` that hides other
/// users' processes from us.
pub fn check_visibility(proc_root: &Path) -> Result<(), HiddenProcesses> {
    let euid = Uid::effective();
    if euid.is_root() {
        return Ok(());
    }
    let Some(options) = mount_options(proc_root) else {
        return Ok(());
    };
    let option = |key: &str| {
        options
            .split(',')
            .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    let Some(mode) = option("hidepid").filter(|m| !matches!(m.as_str(), "0" | "off")) else {
        return Ok(());
    };
    if let Some(gid) = option("gid").and_then(|g| g.parse::<u32>().ok()) {
        let member = getegid().as_raw() == gid
            || getgroups().is_ok_and(|gs| gs.iter().any(|g| g.as_raw() == gid));
        if member {
            return Ok(());
        }
    }
    let user = user_name(euid);
    Err(HiddenProcesses {
        proc_root: proc_root.to_path_buf(),
        remount: format!(
            "mount -o remount,hidepid={mode},gid=GROUP {}",
            proc_root.display()
        ),
        mode,
        user,
    })
}

/// The super-block options of the proc mount at `path`; `None` when
/// `path` is not a proc mount.
fn mount_options(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    // Later lines are mounted over earlier ones: the last match is in effect.
    crate::mounts::mounts()
        .into_iter()
        .rev()
        .find(|m| m.fstype == "proc" && m.point == path)
        .map(|m| m.options)
}
