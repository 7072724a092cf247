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

/// The super-block options of the proc mount at `path`, from our own
/// mountinfo; `None` when `path` is not a proc mount.
fn mount_options(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Later lines are mounted over earlier ones: the last match is in effect.
    info.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let fstype = right.next()?;
        let _source = right.next()?;
        let options = right.next()?;
        (fstype == "proc" && Path::new(&unescape(mount_point)) == path).then(|| options.to_string())
    })
}

/// mountinfo escapes spaces and the like as `\040` (octal).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("x"), 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(super::unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(super::unescape("/proc"), "/proc");
    }
}
