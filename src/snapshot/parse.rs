//! Parsers for the few /proc/PID files psdiff reads.
//!
//! Any local user shapes their own comm and argv, so these never panic and
//! never trust a field to be present: a malformed file is `None`, and the
//! caller skips that process as if it had vanished.

/// The fields of /proc/PID/stat that psdiff uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// The comm as the kernel wrote it: up to 15 bytes, any of them but NUL.
    pub comm: Vec<u8>,
    pub state: char,
    pub ppid: u32,
    /// The process group (a shell's job: a pipeline's processes share it).
    pub pgrp: u32,
    pub flags: u64,
    pub utime: u64,
    pub stime: u64,
    pub nice: i64,
    pub num_threads: u64,
    /// Clock ticks after boot.
    pub start_time: u64,
}

/// PF_KTHREAD in include/linux/sched.h.
const PF_KTHREAD: u64 = 0x0020_0000;

impl Stat {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses `PID (COMM) STATE PPID ...`. The comm may itself hold `)`, spaces
/// and newlines, so it ends at the *last* `)` of the file.
pub fn parse_stat(buf: &[u8]) -> Option<Stat> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = parse_num(buf[..open].trim_ascii())?;
    let comm = buf[open + 1..close].to_vec();
    let rest = std::str::from_utf8(buf.get(close + 1..)?).ok()?;
    // Field numbers as in proc(5); `fields[0]` is field 3, the state.
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let state_field = field(3)?;
    let mut state_chars = state_field.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    Some(Stat {
        pid,
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        nice: field(19)?.parse().ok()?,
        num_threads: field(20)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Real, effective, saved and filesystem ids, in the kernel's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
    pub fs: u32,
}

/// The credential lines of /proc/PID/status, and who traces the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub uids: Ids,
    pub gids: Ids,
    /// `TracerPid:`, 0 when nothing traces it (and on kernels without it).
    pub tracer: u32,
}

/// Reads the `TracerPid:`, `Uid:` and `Gid:` lines, which come in that
/// order; the rest of status is not needed.
pub fn parse_status(buf: &[u8]) -> Option<Status> {
    let mut uids = None;
    let mut gids = None;
    let mut tracer = 0;
    for line in buf.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"TracerPid:") {
            tracer = std::str::from_utf8(rest).ok()?.trim().parse().ok()?;
        } else if let Some(rest) = line.strip_prefix(b"Uid:") {
            uids = parse_ids(rest);
        } else if let Some(rest) = line.strip_prefix(b"Gid:") {
            gids = parse_ids(rest);
            // Gid follows Uid; nothing after it is wanted.
            break;
        }
    }
    Some(Status {
        uids: uids?,
        gids: gids?,
        tracer,
    })
}

fn parse_ids(rest: &[u8]) -> Option<Ids> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut it = text.split_ascii_whitespace().map(|f| f.parse::<u32>());
    let mut next = || it.next()?.ok();
    Some(Ids {
        real: next()?,
        effective: next()?,
        saved: next()?,
        fs: next()?,
    })
}

/// /proc/PID/cmdline without the NULs at its end. Empty arguments inside
/// are kept. A process that rewrote its argv area (setproctitle) may leave
/// no NULs at all, or a run of them as padding: those trailing empty
/// arguments go, as `ps` drops them when it strips trailing spaces.
pub fn trim_cmdline(buf: &[u8]) -> &[u8] {
    let end = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &buf[..end]
}

fn parse_num(text: &[u8]) -> Option<u32> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &[u8] = b"2361 (cat) R 2356 2356 1033 0 -1 4194304 96 0 0 0 7 3 0 0 20 -5 1 0 19129 3133440 375 18446744073709551615 0 0 0\n";

    #[test]
    fn parses_a_real_stat_line() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.pid, 2361);
        assert_eq!(s.comm, b"cat");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 2356);
        assert_eq!(s.pgrp, 2356);
        assert_eq!(s.flags, 4194304);
        assert_eq!((s.utime, s.stime), (7, 3));
        assert_eq!(s.nice, -5);
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.start_time, 19129);
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn comm_may_hold_parens_spaces_and_newlines() {
        let line = b"7 (a) b) (\nc) S 1 7 7 0 -1 2097216 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, b"a) b) (\nc");
        assert_eq!(s.ppid, 1);
        assert!(s.is_kernel_thread());
    }

    #[test]
    fn malformed_stat_is_none_not_a_panic() {
        for bad in [
            &b""[..],
            b"(",
            b")(",
            b"1 (x)",
            b"1 (x) S",
            b"x (y) S 1 2 3 4 5 6",
            b"1 (x) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",
            b"1 (x) S -1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",
        ] {
            assert_eq!(parse_stat(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn status_ids() {
        let buf = b"Name:\tx\nUid:\t1000\t0\t1000\t0\nGid:\t5\t6\t7\t8\nGroups:\n";
        let s = parse_status(buf).unwrap();
        assert_eq!(s.uids.effective, 0);
        assert_eq!(s.uids.real, 1000);
        assert_eq!(
            s.gids,
            Ids {
                real: 5,
                effective: 6,
                saved: 7,
                fs: 8
            }
        );
        assert_eq!(s.tracer, 0);
        assert_eq!(parse_status(b"Name:\tx\nUid:\t1\t2\n"), None);
        let traced = b"Name:\tx\nTracerPid:\t4242\nUid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\n";
        assert_eq!(parse_status(traced).unwrap().tracer, 4242);
        assert_eq!(
            parse_status(b"TracerPid:\tx\nUid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\n"),
            None
        );
    }

    #[test]
    fn cmdline_keeps_empty_arguments_and_bytes() {
        assert_eq!(trim_cmdline(b"a\0\0b\xff\0"), b"a\0\0b\xff");
        assert_eq!(trim_cmdline(b"sshd: x y\0\0\0"), b"sshd: x y");
        assert_eq!(trim_cmdline(b"\0\0"), b"");
    }
}
