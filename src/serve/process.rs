//! Processes as the API shows them: psutil's field names and shapes (as
//! monitoreo served them), read from /proc only for the fields asked for.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use procfs::{FromBufRead, FromRead};
use serde_json::{Map, Value, json};

use super::memory;
use crate::host::Host;
use crate::rules::Container;
use crate::snapshot::{Fields, ProcDir, ProcRoot, Process};
use crate::sockets::{Protocol, SocketTables};

/// Every field, in the order of the documentation. The last `COSTLY` ones
/// read a file per descriptor, thread or mapping (or make the kernel walk
/// the page tables), so they are only given when asked for.
pub const FIELDS: [&str; 30] = [
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
    "cpu_affinity",
    "unit",
    "cgroup",
    "container",
    "open_files",
    "connections",
    "threads",
    "memory_full_info",
    "memory_info_ex",
    "memory_maps",
];
const COSTLY: usize = 6;
/// Fields an unprivileged user cannot read of another user's process
/// (they need ptrace access): given only to tokens made with `--inspect`.
pub const SENSITIVE: [&str; 7] = [
    "exe",
    "cwd",
    "open_files",
    "connections",
    "memory_full_info",
    "memory_info_ex",
    "memory_maps",
];

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

    fn of(names: &[&str]) -> FieldSet {
        FieldSet(names.iter().fold(0, |bits, name| {
            bits | 1
                << FIELDS
                    .iter()
                    .position(|f| f == name)
                    .expect("a known field")
        }))
    }

    /// No field.
    pub fn none() -> FieldSet {
        FieldSet(0)
    }

    pub fn sensitive() -> FieldSet {
        FieldSet::of(&SENSITIVE)
    }

    pub fn and(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names in the set, in the order of `FIELDS`.
    pub fn names(self) -> Vec<&'static str> {
        FIELDS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, f)| *f)
            .collect()
    }

    /// The listing this set is cut from: every cheap field, and the costly
    /// ones asked for. However many distinct `?fields=` sets clients send,
    /// the server keeps at most one listing per combination of costly
    /// fields, each for a second.
    pub fn shared_superset(self) -> FieldSet {
        let costly = !FieldSet::default_fields().0 & ((1 << FIELDS.len()) - 1);
        FieldSet(FieldSet::default_fields().0 | (self.0 & costly))
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

    /// What the snapshot must read for these fields.
    pub fn snapshot_fields(self) -> Fields {
        Fields {
            exe: self.has("exe"),
            cgroup: self.any(&["unit", "cgroup", "container"]),
            ..Fields::default()
        }
    }
}

/// A record as a client sees it: only the fields it asked for, and those
/// it may not see as null. Serialized in place, so a request costs no copy
/// of the shared listing.
pub struct Shown<'a> {
    pub record: &'a Value,
    pub asked: FieldSet,
    pub hidden: FieldSet,
}

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let empty = Map::new();
        let fields = self.record.as_object().unwrap_or(&empty);
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in fields {
            if !FIELDS.contains(&name.as_str()) || !self.asked.has(name) {
                continue;
            }
            if self.hidden.has(name) {
                map.serialize_entry(name, &Value::Null)?;
            } else {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
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
        let root = ProcRoot::open(root).ok();
        let file = |name: &str| {
            let bytes = root.as_ref()?.read_file(name)?;
            String::from_utf8(bytes).ok()
        };
        let boot_time = file("stat").and_then(|s| field_after(&s, "btime"));
        let mem_total = file("meminfo")
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
    let Ok(root) = ProcRoot::open(root) else {
        return vec![None; processes.len()];
    };
    let mut sockets = SocketTables::default();
    let host = Host::of(root.path());
    let interval = previous.at.elapsed().as_secs_f64();
    processes
        .iter()
        .map(|p| {
            let cpu_since = (interval >= 0.1)
                .then(|| previous.ticks.get(&(p.pid, p.start_time)))
                .flatten()
                .map(|&ticks| (ticks, interval));
            let dir = root.process(p.pid)?;
            let record = Record {
                p,
                dir: &dir,
                fields,
                system,
                host: &host,
                out: Map::new(),
            };
            record.build(cpu_since, &mut sockets)
        })
        .collect()
}

/// One process's record being built: the fields asked for, each read
/// from the snapshot or from the process's folder.
struct Record<'a> {
    p: &'a Process,
    dir: &'a ProcDir,
    fields: FieldSet,
    system: &'a System,
    host: &'a Host,
    out: Map<String, Value>,
}

impl Record<'_> {
    /// `None` when the process ended before its files were read.
    fn build(mut self, cpu_since: Option<(u64, f64)>, sockets: &mut SocketTables) -> Option<Value> {
        self.identity();
        if self
            .fields
            .any(&["cpu_times", "memory_info", "memory_percent", "terminal"])
        {
            let bytes = self.dir.read_vec("stat")?;
            let stat = procfs::process::Stat::from_read(&bytes[..]).ok()?;
            self.with_stat(&stat);
        }
        self.cpu(cpu_since);
        if self.fields.has("num_fds") {
            let count = self.dir.count_descriptors();
            self.put("num_fds", json!(count));
        }
        if self.fields.has("cwd") {
            let cwd = self.dir.read_link("cwd");
            self.put("cwd", json!(cwd));
        }
        if self.fields.any(&["num_ctx_switches", "cpu_affinity"]) {
            self.status_fields();
        }
        if self.fields.any(&["open_files", "connections"]) {
            self.descriptors(sockets);
        }
        if self.fields.has("threads") {
            self.threads();
        }
        if self.fields.any(&["memory_full_info", "memory_info_ex"]) {
            let read = |file| {
                self.dir
                    .read_vec(file)
                    .and_then(|b| String::from_utf8(b).ok())
            };
            let info = read("statm")
                .zip(read("smaps_rollup"))
                .and_then(|(statm, rollup)| {
                    memory::full_info(&statm, &rollup, self.system.page_size)
                });
            self.put("memory_full_info", json!(info));
            self.put("memory_info_ex", json!(info));
        }
        if self.fields.has("memory_maps") {
            let smaps = self.dir.read_vec("smaps");
            let maps = smaps.map(|b| memory::maps(&String::from_utf8_lossy(&b)));
            self.put("memory_maps", json!(maps));
        }
        Some(Value::Object(self.out))
    }

    fn put(&mut self, name: &str, value: Value) {
        if self.fields.has(name) {
            self.out.insert(name.to_string(), value);
        }
    }

    /// What the snapshot already holds.
    fn identity(&mut self) {
        let p = self.p;
        self.put("pid", json!(p.pid));
        self.put("ppid", json!(p.ppid));
        self.put("name", json!(String::from_utf8_lossy(&p.comm)));
        self.put("exe", json!(p.exe_path()));
        let argv: Vec<_> = p.argv().map(String::from_utf8_lossy).collect();
        self.put("cmdline", json!(argv));
        self.put("username", json!(&*p.user));
        let ids = |i: &crate::snapshot::Ids| json!({"real": i.real, "effective": i.effective, "saved": i.saved});
        self.put("uids", ids(&p.uids));
        self.put("gids", ids(&p.gids));
        self.put("status", json!(status_name(p.state)));
        self.put("nice", json!(p.nice));
        self.put("num_threads", json!(p.num_threads));
        let cgroup = p.cgroup.as_deref();
        self.put("unit", json!(cgroup.and_then(|c| c.unit.as_deref())));
        self.put("cgroup", json!(cgroup.map(|c| &c.path)));
        let container = cgroup
            .and_then(|c| c.container.as_ref())
            .map(|c| Container::of(c, self.host));
        self.put("container", json!(container));
    }

    fn with_stat(&mut self, stat: &procfs::process::Stat) {
        let ticks = self.system.ticks;
        self.put(
            "cpu_times",
            json!({
                "user": self.p.utime as f64 / ticks,
                "system": self.p.stime as f64 / ticks,
                "children_user": stat.cutime as f64 / ticks,
                "children_system": stat.cstime as f64 / ticks,
            }),
        );
        let rss = stat.rss * self.system.page_size;
        self.put("memory_info", json!({"rss": rss, "vms": stat.vsize}));
        let percent = self
            .system
            .mem_total
            .map(|total| rss as f64 / total as f64 * 100.0);
        self.put("memory_percent", json!(percent));
        self.put("terminal", json!(terminal(stat.tty_nr())));
    }

    /// CPU use since the previous reading, else over the process's life;
    /// and when it started.
    fn cpu(&mut self, since: Option<(u64, f64)>) {
        let (p, system) = (self.p, self.system);
        let ticks = system.ticks;
        let used = p.utime + p.stime;
        let cpu_percent = match since {
            Some((before, seconds)) => used.saturating_sub(before) as f64 / ticks / seconds * 100.0,
            None => {
                let life = system
                    .boot_time
                    .map(|boot| unix_now() - boot - p.start_time as f64 / ticks);
                life.filter(|&s| s > 0.0)
                    .map_or(0.0, |s| used as f64 / ticks / s * 100.0)
            }
        };
        self.put("cpu_percent", json!((cpu_percent * 10.0).round() / 10.0));
        let created = system.boot_time.map(|b| b + p.start_time as f64 / ticks);
        self.put("create_time", json!(created));
    }

    /// `num_ctx_switches` and `cpu_affinity`, from one read of status.
    fn status_fields(&mut self) {
        let bytes = self.dir.read_vec("status");
        let status = bytes
            .as_deref()
            .and_then(|b| procfs::process::Status::from_buf_read(b).ok());
        let count = |f: fn(&procfs::process::Status) -> Option<u64>| status.as_ref().and_then(f);
        self.put(
            "num_ctx_switches",
            json!({
                "voluntary": count(|s| s.voluntary_ctxt_switches),
                "involuntary": count(|s| s.nonvoluntary_ctxt_switches),
            }),
        );
        let text = bytes.as_deref().map(String::from_utf8_lossy);
        self.put("cpu_affinity", json!(text.and_then(|t| cpu_list(&t))));
    }

    /// `threads`: each thread's id and CPU times, as psutil's `threads()`.
    fn threads(&mut self) {
        let ticks = self.system.ticks;
        let mut buf = Vec::new();
        let threads: Option<Vec<Value>> = self.dir.thread_ids().map(|ids| {
            ids.into_iter()
                .filter_map(|tid| {
                    let stat = self.dir.read(&format!("task/{tid}/stat"), &mut buf)?;
                    let stat = crate::snapshot::parse::parse_stat(stat)?;
                    Some(json!({
                        "id": tid,
                        "user_time": stat.utime as f64 / ticks,
                        "system_time": stat.stime as f64 / ticks,
                    }))
                })
                .collect()
        });
        self.put("threads", json!(threads));
    }

    /// `open_files` (regular files, as psutil counts them) and
    /// `connections` (internet sockets).
    fn descriptors(&mut self, sockets: &mut SocketTables) {
        let descriptors = self.dir.descriptors();
        if self.fields.has("open_files") {
            let files: Vec<Value> = descriptors
                .iter()
                .filter(|(fd, path)| path.is_absolute() && self.dir.is_regular_file(*fd))
                .map(|(fd, path)| json!({"path": path, "fd": fd}))
                .collect();
            self.put("open_files", json!(files));
        }
        if self.fields.has("connections") {
            let address = |a: std::net::SocketAddr| json!([a.ip().to_string(), a.port()]);
            let connections: Vec<Value> = sockets
                .held_by(self.dir)
                .into_iter()
                .map(|(fd, s)| {
                    let remote = if s.remote.port() == 0 && s.remote.ip().is_unspecified() {
                        json!([])
                    } else {
                        address(s.remote)
                    };
                    json!({
                        "fd": fd,
                        "family": if s.local.is_ipv6() { "AF_INET6" } else { "AF_INET" },
                        "type": match s.protocol {
                            Protocol::Tcp => "SOCK_STREAM",
                            Protocol::Udp => "SOCK_DGRAM",
                        },
                        "laddr": address(s.local),
                        "raddr": remote,
                        "status": s.status,
                    })
                })
                .collect();
            self.put("connections", json!(connections));
        }
    }
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

/// `cpu_affinity`: the CPUs of status's `Cpus_allowed_list` (`0-3,6`).
pub fn cpu_list(status: &str) -> Option<Vec<u32>> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(first.parse::<u32>().ok()?..=last.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
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

    #[test]
    fn cpu_lists_expand_ranges() {
        let status = "Name:\tx\nCpus_allowed:\t4d\nCpus_allowed_list:\t0,2-3,6\n";
        assert_eq!(cpu_list(status), Some(vec![0, 2, 3, 6]));
        assert_eq!(cpu_list("Cpus_allowed_list:\t1\n"), Some(vec![1]));
        assert_eq!(cpu_list("Name:\tx\n"), None);
    }
}
