//! Processes as the API shows them: psutil's field names and shapes (as
//! monitoreo served them), read from /proc only for the fields asked for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use procfs::process::{FDTarget, Process as ProcfsProcess};
use serde_json::{Map, Value, json};

use crate::snapshot::Process;

/// Every field, in the order of the documentation. The last two read every
/// descriptor (and, for connections, the socket tables), so they are only
/// given when asked for.
pub const FIELDS: [&str; 22] = [
    "pid",
    "ppid",
    "name",
    "exe",
    "cmdline",
    "username",
    "uids",
    "gids",
    "status",
    "nice",
    "num_threads",
    "num_fds",
    "cpu_times",
    "cpu_percent",
    "create_time",
    "memory_info",
    "memory_percent",
    "cwd",
    "terminal",
    "num_ctx_switches",
    "open_files",
    "connections",
];
const COSTLY: usize = 2;

/// A set of fields, one bit per entry of `FIELDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSet(u32);

impl FieldSet {
    /// Every field but the costly ones.
    pub fn default_fields() -> FieldSet {
        FieldSet((1 << (FIELDS.len() - COSTLY)) - 1)
    }

    /// `?fields=pid,name,open_files`; the error names the unknown field
    /// and lists the valid ones.
    pub fn parse(list: &str) -> Result<FieldSet, String> {
        let mut bits = 0;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(i) = FIELDS.iter().position(|f| *f == name) else {
                return Err(format!(
                    "unknown field `{name}` (valid: {})",
                    FIELDS.join(", ")
                ));
            };
            bits |= 1 << i;
        }
        if bits == 0 {
            return Err(format!(
                "`fields` names no field (valid: {})",
                FIELDS.join(", ")
            ));
        }
        Ok(FieldSet(bits))
    }

    fn has(self, name: &str) -> bool {
        let i = FIELDS
            .iter()
            .position(|f| *f == name)
            .expect("a known field");
        self.0 & (1 << i) != 0
    }

    fn any(self, names: &[&str]) -> bool {
        names.iter().any(|n| self.has(n))
    }

    pub fn needs_exe(self) -> bool {
        self.has("exe")
    }
}

/// What the whole machine contributes: boot time, memory size, clock.
pub struct System {
    boot_time: Option<f64>,
    mem_total: Option<u64>,
    ticks: f64,
    page_size: u64,
}

impl System {
    pub fn read(root: &Path) -> System {
        let boot_time = std::fs::read_to_string(root.join("stat"))
            .ok()
            .and_then(|s| field_after(&s, "btime"));
        let mem_total = std::fs::read_to_string(root.join("meminfo"))
            .ok()
            .and_then(|s| field_after(&s, "MemTotal:"))
            .map(|kb: f64| kb as u64 * 1024);
        System {
            boot_time,
            mem_total,
            ticks: procfs::ticks_per_second() as f64,
            page_size: procfs::page_size(),
        }
    }
}

fn field_after(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// CPU time per process at one moment, for `cpu_percent`: the use since
/// the server's previous reading, as psutil's `cpu_percent()` gives the
/// use since its previous call.
#[derive(Debug, Clone)]
pub struct CpuReading {
    at: Instant,
    /// (pid, start time) → utime + stime, in ticks.
    ticks: HashMap<(u32, u64), u64>,
}

impl CpuReading {
    pub fn of(processes: &[Process]) -> CpuReading {
        CpuReading {
            at: Instant::now(),
            ticks: processes
                .iter()
                .map(|p| ((p.pid, p.start_time), p.utime + p.stime))
                .collect(),
        }
    }

    pub fn age(&self) -> std::time::Duration {
        self.at.elapsed()
    }
}

/// The records of `processes` with the `fields` asked for, in their order;
/// `None` for a process that ended before it was read. `previous` is
/// the last CPU reading; a process it lacks (or all of them, when it is
/// younger than 100 ms) gets its average over its life, as `ps` shows.
pub fn records(
    root: &Path,
    processes: &[Process],
    fields: FieldSet,
    system: &System,
    previous: &CpuReading,
) -> Vec<Option<Value>> {
    let mut sockets = SocketTables::default();
    let interval = previous.at.elapsed().as_secs_f64();
    processes
        .iter()
        .map(|p| {
            let cpu_since = (interval >= 0.1)
                .then(|| previous.ticks.get(&(p.pid, p.start_time)))
                .flatten()
                .map(|&ticks| (ticks, interval));
            record(root, p, fields, system, cpu_since, &mut sockets)
        })
        .collect()
}

/// One process's record; `None` when it ended before its files were read.
fn record(
    root: &Path,
    p: &Process,
    fields: FieldSet,
    system: &System,
    cpu_since: Option<(u64, f64)>,
    sockets: &mut SocketTables,
) -> Option<Value> {
    let dir = root.join(p.pid.to_string());
    let proc = ProcfsProcess::new_with_root(dir.clone()).ok()?;
    let stat = if fields.any(&["cpu_times", "memory_info", "memory_percent", "terminal"]) {
        Some(proc.stat().ok()?)
    } else {
        None
    };
    let ticks = system.ticks;
    let mut out = Map::new();
    let mut put = |name: &str, value: Value| {
        if fields.has(name) {
            out.insert(name.to_string(), value);
        }
    };
    put("pid", json!(p.pid));
    put("ppid", json!(p.ppid));
    put("name", json!(String::from_utf8_lossy(&p.comm)));
    put("exe", json!(p.exe_path()));
    let argv: Vec<_> = p.argv().map(String::from_utf8_lossy).collect();
    put("cmdline", json!(argv));
    put("username", json!(&*p.user));
    let ids = |i: &crate::snapshot::Ids| json!({"real": i.real, "effective": i.effective, "saved": i.saved});
    put("uids", ids(&p.uids));
    put("gids", ids(&p.gids));
    put("status", json!(status_name(p.state)));
    put("nice", json!(p.nice));
    put("num_threads", json!(p.num_threads));
    if fields.has("num_fds") {
        put("num_fds", json!(proc.fd_count().ok()));
    }
    if let Some(stat) = &stat {
        put(
            "cpu_times",
            json!({
                "user": p.utime as f64 / ticks,
                "system": p.stime as f64 / ticks,
                "children_user": stat.cutime as f64 / ticks,
                "children_system": stat.cstime as f64 / ticks,
            }),
        );
        let rss = stat.rss * system.page_size;
        put("memory_info", json!({"rss": rss, "vms": stat.vsize}));
        put(
            "memory_percent",
            json!(
                system
                    .mem_total
                    .map(|total| rss as f64 / total as f64 * 100.0)
            ),
        );
        put("terminal", json!(terminal(stat.tty_nr())));
    }
    let used = p.utime + p.stime;
    let cpu_percent = match cpu_since {
        Some((before, seconds)) => used.saturating_sub(before) as f64 / ticks / seconds * 100.0,
        None => {
            let life = system
                .boot_time
                .map(|boot| unix_now() - boot - p.start_time as f64 / ticks);
            life.filter(|&s| s > 0.0)
                .map_or(0.0, |s| used as f64 / ticks / s * 100.0)
        }
    };
    put("cpu_percent", json!((cpu_percent * 10.0).round() / 10.0));
    put(
        "create_time",
        json!(system.boot_time.map(|b| b + p.start_time as f64 / ticks)),
    );
    if fields.has("cwd") {
        put("cwd", json!(proc.cwd().ok()));
    }
    if fields.has("num_ctx_switches") {
        let status = proc.status().ok();
        let count = |f: fn(&procfs::process::Status) -> Option<u64>| status.as_ref().and_then(f);
        put(
            "num_ctx_switches",
            json!({
                "voluntary": count(|s| s.voluntary_ctxt_switches),
                "involuntary": count(|s| s.nonvoluntary_ctxt_switches),
            }),
        );
    }
    if fields.any(&["open_files", "connections"]) {
        let descriptors: Vec<(i32, FDTarget)> = proc
            .fd()
            .map(|fds| fds.flatten().map(|fd| (fd.fd, fd.target)).collect())
            .unwrap_or_default();
        if fields.has("open_files") {
            let files: Vec<Value> = descriptors
                .iter()
                .filter_map(|(fd, target)| match target {
                    FDTarget::Path(path) if path.is_absolute() && is_file(&dir, *fd) => {
                        Some(json!({"path": path, "fd": fd}))
                    }
                    _ => None,
                })
                .collect();
            put("open_files", json!(files));
        }
        if fields.has("connections") {
            let table = sockets.of(&proc, &dir);
            let connections: Vec<Value> = descriptors
                .iter()
                .filter_map(|(fd, target)| match target {
                    FDTarget::Socket(inode) => table.get(inode).map(|c| {
                        let mut c = c.clone();
                        c["fd"] = json!(fd);
                        c
                    }),
                    _ => None,
                })
                .collect();
            put("connections", json!(connections));
        }
    }
    Some(Value::Object(out))
}

/// Whether descriptor `fd` of the process at `dir` is a regular file, as
/// psutil's `open_files()` counts them.
fn is_file(dir: &Path, fd: i32) -> bool {
    std::fs::metadata(dir.join("fd").join(fd.to_string())).is_ok_and(|m| m.is_file())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// psutil's status names.
fn status_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk-sleep",
        'T' => "stopped",
        't' => "tracing-stop",
        'Z' => "zombie",
        'X' | 'x' => "dead",
        'K' => "wake-kill",
        'W' => "waking",
        'P' => "parked",
        'I' => "idle",
        _ => "unknown",
    }
}

/// The terminal of a (major, minor) device number, or none.
fn terminal((major, minor): (i32, i32)) -> Option<String> {
    match major {
        0 => None,
        136..=143 => Some(format!("/dev/pts/{}", (major - 136) * 256 + minor)),
        4 if minor < 64 => Some(format!("/dev/tty{minor}")),
        4 => Some(format!("/dev/ttyS{}", minor - 64)),
        5 if minor == 0 => Some("/dev/tty".into()),
        5 if minor == 1 => Some("/dev/console".into()),
        _ => Some(format!("tty({major},{minor})")),
    }
}

/// Internet sockets by inode, read once per network namespace.
#[derive(Default)]
struct SocketTables {
    by_namespace: HashMap<PathBuf, HashMap<u64, Value>>,
}

impl SocketTables {
    fn of(&mut self, proc: &ProcfsProcess, dir: &Path) -> &HashMap<u64, Value> {
        let namespace = std::fs::read_link(dir.join("ns/net")).unwrap_or_default();
        self.by_namespace
            .entry(namespace)
            .or_insert_with(|| read_sockets(proc))
    }
}

fn read_sockets(proc: &ProcfsProcess) -> HashMap<u64, Value> {
    let mut table = HashMap::new();
    let address = |a: std::net::SocketAddr| json!([a.ip().to_string(), a.port()]);
    let remote = |a: std::net::SocketAddr| {
        if a.port() == 0 && a.ip().is_unspecified() {
            json!([])
        } else {
            address(a)
        }
    };
    for (entries, family) in [(proc.tcp(), "AF_INET"), (proc.tcp6(), "AF_INET6")] {
        for e in entries.unwrap_or_default() {
            table.insert(
                e.inode,
                json!({"family": family, "type": "SOCK_STREAM", "laddr": address(e.local_address),
                       "raddr": remote(e.remote_address), "status": tcp_status(&e.state)}),
            );
        }
    }
    for (entries, family) in [(proc.udp(), "AF_INET"), (proc.udp6(), "AF_INET6")] {
        for e in entries.unwrap_or_default() {
            table.insert(
                e.inode,
                json!({"family": family, "type": "SOCK_DGRAM", "laddr": address(e.local_address),
                       "raddr": remote(e.remote_address), "status": "NONE"}),
            );
        }
    }
    table
}

/// psutil's names of TCP states.
fn tcp_status(state: &procfs::net::TcpState) -> &'static str {
    use procfs::net::TcpState::*;
    match state {
        Established => "ESTABLISHED",
        SynSent => "SYN_SENT",
        SynRecv | NewSynRecv => "SYN_RECV",
        FinWait1 => "FIN_WAIT1",
        FinWait2 => "FIN_WAIT2",
        TimeWait => "TIME_WAIT",
        Close => "CLOSE",
        CloseWait => "CLOSE_WAIT",
        LastAck => "LAST_ACK",
        Listen => "LISTEN",
        Closing => "CLOSING",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_and_default_leaves_out_the_costly_ones() {
        let set = FieldSet::parse("pid, open_files").unwrap();
        assert!(set.has("pid") && set.has("open_files") && !set.has("name"));
        let all = FieldSet::default_fields();
        assert!(all.has("num_ctx_switches") && all.has("pid"));
        assert!(!all.has("open_files") && !all.has("connections"));
        let err = FieldSet::parse("pid,nmae").unwrap_err();
        assert!(
            err.starts_with("unknown field `nmae` (valid: pid, ppid,"),
            "{err}"
        );
        assert!(FieldSet::parse(",").is_err());
    }

    #[test]
    fn terminals_are_named_as_in_dev() {
        assert_eq!(terminal((136, 3)).as_deref(), Some("/dev/pts/3"));
        assert_eq!(terminal((137, 1)).as_deref(), Some("/dev/pts/257"));
        assert_eq!(terminal((4, 1)).as_deref(), Some("/dev/tty1"));
        assert_eq!(terminal((4, 64)).as_deref(), Some("/dev/ttyS0"));
        assert_eq!(terminal((0, 0)), None);
    }
}
