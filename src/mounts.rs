//! This process's mounts, from /proc/self/mountinfo.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Mount {
    /// What of its file system is mounted there (`/` for all of it).
    pub root: String,
    pub point: PathBuf,
    pub fstype: String,
    /// The super-block options (`rw,hidepid=2`).
    pub options: String,
}

/// Every mount, in mountinfo's order: a later one may be mounted over an
/// earlier one.
pub fn mounts() -> Vec<Mount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let root = left.nth(3)?;
    let point = left.next()?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let _source = right.next()?;
    let options = right.next()?;
    Some(Mount {
        root: unescape(root),
        point: PathBuf::from(unescape(point)),
        fstype: fstype.to_string(),
        options: options.to_string(),
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
    use super::*;

    #[test]
    fn reads_a_mountinfo_line() {
        let line = r"36 35 98:0 / /mnt/with\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let mount = parse_line(line).unwrap();
        assert_eq!(mount.point, PathBuf::from("/mnt/with space"));
        assert_eq!(mount.root, "/");
        assert_eq!(
            (mount.fstype.as_str(), mount.options.as_str()),
            ("ext3", "rw,errors=continue")
        );
        assert_eq!(unescape("/proc"), "/proc");
    }
}
