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
     or run psdiff through sudo (sudoers: `{user} ALL=(root) NOPASSWD: /usr/bin/psdiff`)",
    proc = .proc_root.display()
)]
pub struct HiddenProcesses {
    pub proc_root: PathBuf,
    pub mode: String,
    pub user: String,
    pub remount: String,
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
    let user = User::from_uid(euid)
        .ok()
        .flatten()
        .map_or_else(|| euid.to_string(), |u| u.name);
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
