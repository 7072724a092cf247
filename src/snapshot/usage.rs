//! What a process uses, as the kernel counts it: memory pages (statm),
//! swap (status), the limit on open files (limits). The one reader of
//! these files for `check`'s resource keys and the API's records.

use super::ProcDir;

/// The size of a memory page, in bytes.
pub fn page_size() -> u64 {
    procfs::page_size()
}

/// /proc/PID/statm: sizes in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statm {
    pub size: u64,
    pub resident: u64,
    pub shared: u64,
    pub text: u64,
    pub lib: u64,
    pub data: u64,
    pub dirty: u64,
}

impl Statm {
    pub fn read(dir: &ProcDir) -> Option<Statm> {
        Statm::parse(&dir.read_vec("statm")?)
    }

    pub fn parse(buf: &[u8]) -> Option<Statm> {
        let text = std::str::from_utf8(buf).ok()?;
        let mut pages = text.split_whitespace().map(|w| w.parse::<u64>().ok());
        let mut next = || pages.next().flatten();
        Some(Statm {
            size: next()?,
            resident: next()?,
            shared: next()?,
            text: next()?,
            lib: next()?,
            data: next()?,
            dirty: next()?,
        })
    }
}

/// Bytes swapped out: `VmSwap:` of /proc/PID/status. A kernel thread has
/// no such line, and nothing swapped.
pub fn swap(dir: &ProcDir) -> Option<u64> {
    let status = dir.read_vec("status")?;
    let text = String::from_utf8_lossy(&status);
    let Some(value) = text.lines().find_map(|l| l.strip_prefix("VmSwap:")) else {
        return Some(0);
    };
    let kb: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// The soft limit on open files (at least 1), from /proc/PID/limits.
pub fn soft_fd_limit(dir: &ProcDir) -> Option<u64> {
    let limits = dir.read_vec("limits")?;
    let text = String::from_utf8_lossy(&limits);
    let soft: u64 = text
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(soft.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_is_seven_page_counts() {
        let statm = Statm::parse(b"100 75 50 2 0 30 0\n").unwrap();
        assert_eq!((statm.size, statm.resident, statm.shared), (100, 75, 50));
        assert_eq!(statm.data, 30);
        assert_eq!(Statm::parse(b"1 2 3"), None);
        assert_eq!(Statm::parse(b"1 2 x 4 5 6 7"), None);
    }
}
