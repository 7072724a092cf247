//! Processes as the API shows them: psutil's field names and shapes (as
//! monitoreo served them), read from /proc only for the fields asked for.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use procfs::{FromBufRead, FromRead};
use serde_json::{Map, Value, json};

use super::memory;
use crate::machine::Machine;
use crate::rules::Container;
use crate::snapshot::usage::{self, Statm};
use crate::snapshot::{Fields, ProcDir, ProcRoot, Process};
use crate::sockets::{Protocol, SocketTables};

/// A field of a process record, psutil's name for it. Its discriminant is
/// its place in `FIELDS`, whose names the API reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Pid,
    Ppid,
    Name,
    Exe,
    Cmdline,
    Username,
    Uids,
    Gids,
    Status,
    Nice,
    NumThreads,
    NumFds,
    CpuTimes,
    CpuPercent,
    CreateTime,
    MemoryInfo,
    MemoryPercent,
    Cwd,
    Terminal,
    NumCtxSwitches,
    CpuAffinity,
    Unit,
    Cgroup,
    Container,
    OpenFiles,
    Connections,
    Threads,
    MemoryFullInfo,
    MemoryInfoEx,
    MemoryMaps,
}

impl Field {
    pub const ALL: [Field; 30] = [
        Field::Pid,
        Field::Ppid,
        Field::Name,
        Field::Exe,
        Field::Cmdline,
        Field::Username,
        Field::Uids,
        Field::Gids,
        Field::Status,
        Field::Nice,
        Field::NumThreads,
        Field::NumFds,
        Field::CpuTimes,
        Field::CpuPercent,
        Field::CreateTime,
        Field::MemoryInfo,
        Field::MemoryPercent,
        Field::Cwd,
        Field::Terminal,
        Field::NumCtxSwitches,
        Field::CpuAffinity,
        Field::Unit,
        Field::Cgroup,
        Field::Container,
        Field::OpenFiles,
        Field::Connections,
        Field::Threads,
        Field::MemoryFullInfo,
        Field::MemoryInfoEx,
        Field::MemoryMaps,
    ];

    pub fn name(self) -> &'static str {
        FIELDS[self as usize]
    }

    pub fn named(name: &str) -> Option<Field> {
        FIELDS
            .iter()
            .position(|f| *f == name)
            .map(|i| Field::ALL[i])
    }
}

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
pub const SENSITIVE: [Field; 7] = [
    Field::Exe,
    Field::Cwd,
    Field::OpenFiles,
    Field::Connections,
    Field::MemoryFullInfo,
    Field::MemoryInfoEx,
    Field::MemoryMaps,
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

    fn of(fields: &[Field]) -> FieldSet {
        FieldSet(fields.iter().fold(0, |bits, &f| bits | 1 << f as u32))
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

    fn has(self, field: Field) -> bool {
        self.0 & (1 << field as u32) != 0
    }

    fn any(self, fields: &[Field]) -> bool {
        fields.iter().any(|&f| self.has(f))
    }

    /// What the snapshot must read for these fields.
    pub fn snapshot_fields(self) -> Fields {
        Fields {
            exe: self.has(Field::Exe),
            cgroup: self.any(&[Field::Unit, Field::Cgroup, Field::Container]),
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
            let Some(field) = Field::named(name).filter(|&f| self.asked.has(f)) else {
                continue;
            };
            if self.hidden.has(field) {
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
            page_size: usage::page_size(),
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
    let machine = Machine::of(root.path());
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
                machine: &machine,
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
    machine: &'a Machine,
    out: Map<String, Value>,
}

impl Record<'_> {
    /// `None` when the process ended before its files were read.
    fn build(mut self, cpu_since: Option<(u64, f64)>, sockets: &mut SocketTables) -> Option<Value> {
        self.identity();
        if self.fields.any(&[
            Field::CpuTimes,
            Field::MemoryInfo,
            Field::MemoryPercent,
            Field::Terminal,
        ]) {
            let bytes = self.dir.read_vec("stat")?;
            let stat = procfs::process::Stat::from_read(&bytes[..]).ok()?;
            self.with_stat(&stat);
        }
        self.cpu(cpu_since);
        if self.fields.has(Field::NumFds) {
            let count = self.dir.count_descriptors();
            self.put(Field::NumFds, json!(count));
        }
        if self.fields.has(Field::Cwd) {
            let cwd = self.dir.read_link("cwd");
            self.put(Field::Cwd, json!(cwd));
        }
        if self
            .fields
            .any(&[Field::NumCtxSwitches, Field::CpuAffinity])
        {
            self.status_fields();
        }
        if self.fields.any(&[Field::OpenFiles, Field::Connections]) {
            self.descriptors(sockets);
        }
        if self.fields.has(Field::Threads) {
            self.threads();
        }
        if self
            .fields
            .any(&[Field::MemoryFullInfo, Field::MemoryInfoEx])
        {
            let rollup = self
                .dir
                .read_vec("smaps_rollup")
                .and_then(|b| String::from_utf8(b).ok());
            let info = Statm::read(self.dir)
                .zip(rollup)
                .map(|(statm, rollup)| memory::full_info(&statm, &rollup, self.system.page_size));
            self.put(Field::MemoryFullInfo, json!(info));
            self.put(Field::MemoryInfoEx, json!(info));
        }
        if self.fields.has(Field::MemoryMaps) {
            let smaps = self.dir.read_vec("smaps");
            let maps = smaps.map(|b| memory::maps(&String::from_utf8_lossy(&b)));
            self.put(Field::MemoryMaps, json!(maps));
        }
        Some(Value::Object(self.out))
    }

    fn put(&mut self, field: Field, value: Value) {
        if self.fields.has(field) {
            self.out.insert(field.name().to_string(), value);
        }
    }

    /// What the snapshot already holds.
    fn identity(&mut self) {
        let p = self.p;
        self.put(Field::Pid, json!(p.pid));
        self.put(Field::Ppid, json!(p.ppid));
        self.put(Field::Name, json!(String::from_utf8_lossy(&p.comm)));
        self.put(Field::Exe, json!(p.exe_path()));
        let argv: Vec<_> = p.argv().map(String::from_utf8_lossy).collect();
        self.put(Field::Cmdline, json!(argv));
        self.put(Field::Username, json!(&*p.user));
        let ids = |i: &crate::snapshot::Ids| json!({"real": i.real, "effective": i.effective, "saved": i.saved});
        self.put(Field::Uids, ids(&p.uids));
        self.put(Field::Gids, ids(&p.gids));
        self.put(Field::Status, json!(status_name(p.state)));
        self.put(Field::Nice, json!(p.nice));
        self.put(Field::NumThreads, json!(p.num_threads));
        let cgroup = p.cgroup.as_deref();
        self.put(Field::Unit, json!(cgroup.and_then(|c| c.unit.as_deref())));
        self.put(Field::Cgroup, json!(cgroup.map(|c| &c.path)));
        let container = cgroup
            .and_then(|c| c.container.as_ref())
            .map(|c| Container::of(c, self.machine));
        self.put(Field::Container, json!(container));
    }

    fn with_stat(&mut self, stat: &procfs::process::Stat) {
        let ticks = self.system.ticks;
        self.put(
            Field::CpuTimes,
            json!({
                "user": self.p.utime as f64 / ticks,
                "system": self.p.stime as f64 / ticks,
                "children_user": stat.cutime as f64 / ticks,
                "children_system": stat.cstime as f64 / ticks,
            }),
        );
        let rss = stat.rss * self.system.page_size;
        self.put(Field::MemoryInfo, json!({"rss": rss, "vms": stat.vsize}));
        let percent = self
            .system
            .mem_total
            .map(|total| rss as f64 / total as f64 * 100.0);
        self.put(Field::MemoryPercent, json!(percent));
        self.put(Field::Terminal, json!(terminal(stat.tty_nr())));
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
                    .map(|boot| crate::clock::unix_now() - boot - p.start_time as f64 / ticks);
                life.filter(|&s| s > 0.0)
                    .map_or(0.0, |s| used as f64 / ticks / s * 100.0)
            }
        };
        self.put(
            Field::CpuPercent,
            json!((cpu_percent * 10.0).round() / 10.0),
        );
        let created = system.boot_time.map(|b| b + p.start_time as f64 / ticks);
        self.put(Field::CreateTime, json!(created));
    }

    /// `num_ctx_switches` and `cpu_affinity`, from one read of status.
    fn status_fields(&mut self) {
        let bytes = self.dir.read_vec("status");
        let status = bytes
            .as_deref()
            .and_then(|b| procfs::process::Status::from_buf_read(b).ok());
        let count = |f: fn(&procfs::process::Status) -> Option<u64>| status.as_ref().and_then(f);
        self.put(
            Field::NumCtxSwitches,
            json!({
                "voluntary": count(|s| s.voluntary_ctxt_switches),
                "involuntary": count(|s| s.nonvoluntary_ctxt_switches),
            }),
        );
        let text = bytes.as_deref().map(String::from_utf8_lossy);
        self.put(Field::CpuAffinity, json!(text.and_then(|t| cpu_list(&t))));
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
        self.put(Field::Threads, json!(threads));
    }

    /// `open_files` (regular files, as psutil counts them) and
    /// `connections` (internet sockets).
    fn descriptors(&mut self, sockets: &mut SocketTables) {
        let descriptors = self.dir.descriptors();
        if self.fields.has(Field::OpenFiles) {
            let files: Vec<Value> = descriptors
                .iter()
                .filter(|(fd, path)| path.is_absolute() && self.dir.is_regular_file(*fd))
                .map(|(fd, path)| json!({"path": path, "fd": fd}))
                .collect();
            self.put(Field::OpenFiles, json!(files));
        }
        if self.fields.has(Field::Connections) {
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
            self.put(Field::Connections, json!(connections));
        }
    }
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
        assert!(set.has(Field::Pid) && set.has(Field::OpenFiles) && !set.has(Field::Name));
        let all = FieldSet::default_fields();
        assert!(all.has(Field::NumCtxSwitches) && all.has(Field::Pid));
        assert!(!all.has(Field::OpenFiles) && !all.has(Field::Connections));
        let err = FieldSet::parse("pid,nmae").unwrap_err();
        assert!(
            err.starts_with("unknown field `nmae` (valid: pid, ppid,"),
            "{err}"
        );
        assert!(FieldSet::parse(",").is_err());
    }

    #[test]
    fn each_field_is_named_by_its_place() {
        for (i, field) in Field::ALL.iter().enumerate() {
            assert_eq!(*field as usize, i);
            assert_eq!(Field::named(field.name()), Some(*field));
        }
        assert_eq!(Field::named("nmae"), None);
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
