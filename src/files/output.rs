//! What `psdiff files` writes: one line per event, as text or JSON, the
//! same for both backends. Fields a backend cannot know (fanotify has no
//! thread, descriptor or failed open) are left out, or null for `tid`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// One event to write.
pub struct Line<'a> {
    /// `open`, `close`, `error` (a failed open) or `dup`.
    pub event: &'static str,
    pub pid: u32,
    pub ppid: u32,
    pub tid: Option<u32>,
    pub comm: &'a str,
    pub path: &'a Path,
    pub fd: Option<i32>,
    /// The descriptor a `dup` copied.
    pub from_fd: Option<i32>,
    /// An open's flags, written as `O_RDONLY|O_CLOEXEC`.
    pub flags: Option<u32>,
    /// A failed open's errno name.
    pub error: Option<String>,
    /// How long a closed descriptor was open.
    pub duration: Option<Duration>,
    /// A close the process did not ask for: `exec` (close-on-exec),
    /// `exit`, or `dup2` (a copy made over it).
    pub closed_by: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    event: &'static str,
    time: &'a str,
    pid: u32,
    ppid: u32,
    tid: Option<u32>,
    comm: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_by: Option<&'static str>,
}

/// Events as text lines or JSON lines, buffered for stdout.
pub struct Output {
    json: bool,
    buffer: Vec<u8>,
    /// Open flags as their names, made once for each set of flags.
    flag_names: HashMap<u32, String>,
    /// When the events being written happened (or were read).
    pub time: String,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output {
            json,
            buffer: Vec::with_capacity(64 * 1024),
            flag_names: HashMap::new(),
            time: String::new(),
        }
    }

    pub fn write(&mut self, line: &Line) {
        let duration_ms = line.duration.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3);
        let path = line.path.to_string_lossy();
        let flags = line
            .flags
            .map(|f| &**self.flag_names.entry(f).or_insert_with(|| open_flags(f)));
        if self.json {
            let event = JsonEvent {
                event: line.event,
                time: &self.time,
                pid: line.pid,
                ppid: line.ppid,
                tid: line.tid,
                comm: line.comm,
                path: &path,
                fd: line.fd,
                from_fd: line.from_fd,
                flags,
                error: line.error.as_deref(),
                duration_ms,
                closed_by: line.closed_by,
            };
            serde_json::to_writer(&mut self.buffer, &event).expect("an event serializes");
            self.buffer.push(b'\n');
            return;
        }
        let comm = crate::render::printable(line.comm.as_bytes());
        let path = crate::render::printable(path.as_bytes());
        let (time, name, pid, ppid) = (&self.time, line.event, line.pid, line.ppid);
        let _ = write!(self.buffer, "{time} {name:5} {pid} ({ppid}) {comm} {path}");
        if let Some(tid) = line.tid.filter(|&t| t != pid) {
            let _ = write!(self.buffer, " tid {tid}");
        }
        if let Some(fd) = line.fd {
            let _ = write!(self.buffer, " fd {fd}");
        }
        if let Some(from) = line.from_fd {
            let _ = write!(self.buffer, " from fd {from}");
        }
        if let Some(error) = &line.error {
            let _ = write!(self.buffer, " {error}");
        }
        if let Some(ms) = duration_ms {
            let _ = write!(self.buffer, " {ms} ms");
        }
        if let Some(by) = line.closed_by {
            let _ = write!(self.buffer, " (by {by})");
        }
        self.buffer.push(b'\n');
    }

    /// Events were lost: `count` of them when known.
    pub fn lost(&mut self, count: Option<u64>) {
        let time = crate::clock::timestamp();
        if self.json {
            let line = serde_json::json!({"event": "overflow", "time": time, "lost": count});
            let _ = writeln!(self.buffer, "{line}");
        } else {
            match count {
                Some(n) => {
                    let _ = writeln!(self.buffer, "{time} overflow: {n} events lost");
                }
                None => {
                    let _ = writeln!(self.buffer, "{time} overflow: the kernel dropped events");
                }
            }
        }
    }

    /// Writes what is buffered; false when stdout is closed.
    pub fn flush(&mut self) -> bool {
        if self.buffer.is_empty() {
            return true;
        }
        let mut stdout = std::io::stdout().lock();
        let written = stdout.write_all(&self.buffer).and_then(|()| stdout.flush());
        self.buffer.clear();
        written.is_ok()
    }
}

/// An open's flags as their names: the access mode, then the others set.
pub fn open_flags(flags: u32) -> String {
    const NAMED: [(u32, &str); 14] = [
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o40000, "O_DIRECT"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
        (0o20000000, "O_TMPFILE"),
    ];
    let mut names = vec![match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        _ => "O_RDWR",
    }];
    for (bit, name) in NAMED {
        // O_TMPFILE includes O_DIRECTORY's bit; name it once.
        if flags & bit == bit && !(name == "O_DIRECTORY" && flags & 0o20000000 != 0) {
            names.push(name);
        }
    }
    if flags & 0o4010000 == 0o4010000 {
        names.retain(|n| *n != "O_DSYNC");
        names.push("O_SYNC");
    }
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(open_flags(0o2000000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(open_flags(0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(open_flags(0o20200002), "O_RDWR|O_TMPFILE");
    }
}
