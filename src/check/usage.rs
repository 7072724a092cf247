//! What a process uses, for the resource keys of `[[check]]`: memory,
//! threads, descriptors, age and CPU time. Read from /proc only for the
//! processes a resource check matched, and once per process and resource.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use super::range::NagiosRange;
use crate::snapshot::usage::{self, Statm};
use crate::snapshot::{ProcDir, ProcRoot, Process};

/// A resource a check can limit; its key in `[[check]]` is `key()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Rss,
    Vsz,
    Swap,
    Threads,
    Fds,
    FdRatio,
    Age,
    CpuTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Count,
    Ratio,
    Seconds,
}

impl Resource {
    #[cfg(any(test, feature = "fuzzing"))]
    pub const ALL: [Resource; 8] = [
        Resource::Rss,
        Resource::Vsz,
        Resource::Swap,
        Resource::Threads,
        Resource::Fds,
        Resource::FdRatio,
        Resource::Age,
        Resource::CpuTime,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Resource::Rss => "rss",
            Resource::Vsz => "vsz",
            Resource::Swap => "swap",
            Resource::Threads => "threads",
            Resource::Fds => "fds",
            Resource::FdRatio => "fd_ratio",
            Resource::Age => "age",
            Resource::CpuTime => "cpu_time",
        }
    }

    fn unit(self) -> Unit {
        match self {
            Resource::Rss | Resource::Vsz | Resource::Swap => Unit::Bytes,
            Resource::Threads | Resource::Fds => Unit::Count,
            Resource::FdRatio => Unit::Ratio,
            Resource::Age | Resource::CpuTime => Unit::Seconds,
        }
    }

    /// The unit of measure of Nagios perfdata: bytes and seconds.
    pub fn perf_unit(self) -> &'static str {
        match self.unit() {
            Unit::Bytes => "B",
            Unit::Seconds => "s",
            Unit::Count | Unit::Ratio => "",
        }
    }

    /// Whether summing it over processes means something (ages and the
    /// fd ratio do not add up).
    pub fn sums(self) -> bool {
        !matches!(self, Resource::FdRatio | Resource::Age)
    }

    /// A Nagios range for this resource, with units: `~:2G`, `5m:`,
    /// `@1.5M:2M`, `~:0.8`. Sizes are powers of 1024 (K, M, G, T, with an
    /// optional B or iB); times take s, m, h and d.
    pub fn range(self, text: &str) -> Result<NagiosRange, String> {
        let expanded = expand_units(text, self.unit())?;
        NagiosRange::parse(&expanded)
            .map(|r| r.shown_as(text))
            .map_err(|e| e.replace(&format!("{expanded:?}"), &format!("{text:?}")))
    }

    /// `value` as an operator writes it: `1.5G`, `3m20s`, `0.83`, `12`.
    pub fn show(self, value: f64) -> String {
        match self.unit() {
            Unit::Bytes => {
                let mut v = value;
                for suffix in ["B", "K", "M", "G"] {
                    if v < 1024.0 {
                        return trim(v, suffix);
                    }
                    v /= 1024.0;
                }
                trim(v, "T")
            }
            Unit::Seconds => {
                let s = value.round() as u64;
                match s {
                    0..60 => format!("{s}s"),
                    60..3600 => format!("{}m{}s", s / 60, s % 60),
                    3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
                    _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
                }
            }
            Unit::Ratio => format!("{value:.2}"),
            Unit::Count => format!("{value}"),
        }
    }
}

fn trim(value: f64, suffix: &str) -> String {
    let text = format!("{value:.1}");
    format!("{}{suffix}", text.strip_suffix(".0").unwrap_or(&text))
}

/// The numbers of a range with their units multiplied out.
fn expand_units(text: &str, unit: Unit) -> Result<String, String> {
    let (prefix, body) = match text.strip_prefix('@') {
        Some(rest) => ("@", rest),
        None => ("", text),
    };
    let part = |s: &str| -> Result<String, String> {
        if s.is_empty() || s == "~" {
            return Ok(s.to_string());
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let factor: f64 = match (unit, suffix) {
            (_, "") => 1.0,
            (Unit::Bytes, "K" | "KB" | "KiB" | "k") => 1024.0,
            (Unit::Bytes, "M" | "MB" | "MiB") => 1024.0 * 1024.0,
            (Unit::Bytes, "G" | "GB" | "GiB") => 1024.0 * 1024.0 * 1024.0,
            (Unit::Bytes, "T" | "TB" | "TiB") => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            (Unit::Bytes, "B") => 1.0,
            (Unit::Seconds, "s") => 1.0,
            (Unit::Seconds, "m") => 60.0,
            (Unit::Seconds, "h") => 3600.0,
            (Unit::Seconds, "d") => 86400.0,
            _ => {
                let valid = match unit {
                    Unit::Bytes => "K, M, G or T (powers of 1024)",
                    Unit::Seconds => "s, m, h or d",
                    Unit::Count | Unit::Ratio => "none: a plain number",
                };
                return Err(format!(
                    "{text:?}: unknown unit `{suffix}` (units here: {valid})"
                ));
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?}: `{s}` is not a number"))?;
        Ok(format!("{}", value * factor))
    };
    let body = match body.split_once(':') {
        Some((lo, hi)) => format!("{}:{}", part(lo)?, part(hi)?),
        None => part(body)?,
    };
    Ok(format!("{prefix}{body}"))
}

/// Reads resources of the processes of one snapshot, each at most once.
/// /proc is opened, and the uptime read, only when a check first asks:
/// most checks never do.
pub struct Usage {
    proc_root: std::path::PathBuf,
    root: std::cell::OnceCell<Option<ProcRoot>>,
    uptime: std::cell::OnceCell<Option<f64>>,
    ticks: f64,
    page_size: f64,
    read: RefCell<HashMap<(u32, Resource), Option<f64>>>,
    /// The folder last opened: a process's resources are read together.
    last_dir: RefCell<Option<std::rc::Rc<crate::snapshot::ProcDir>>>,
}

impl Usage {
    pub fn new(proc_root: &Path) -> Usage {
        Usage {
            proc_root: proc_root.to_path_buf(),
            root: std::cell::OnceCell::new(),
            uptime: std::cell::OnceCell::new(),
            ticks: procfs::ticks_per_second() as f64,
            page_size: usage::page_size() as f64,
            read: RefCell::new(HashMap::new()),
            last_dir: RefCell::new(None),
        }
    }

    fn root(&self) -> Option<&ProcRoot> {
        self.root
            .get_or_init(|| ProcRoot::open(&self.proc_root).ok())
            .as_ref()
    }

    fn uptime(&self) -> Option<f64> {
        *self.uptime.get_or_init(|| {
            let text = self.root()?.read_file("uptime")?;
            String::from_utf8_lossy(&text)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// The /proc folder of `pid`, while it runs.
    pub fn process_dir(&self, pid: u32) -> Option<std::rc::Rc<crate::snapshot::ProcDir>> {
        if let Some(dir) = self.last_dir.borrow().as_ref().filter(|d| d.pid() == pid) {
            return Some(dir.clone());
        }
        let dir = std::rc::Rc::new(self.root()?.process(pid)?);
        *self.last_dir.borrow_mut() = Some(dir.clone());
        Some(dir)
    }

    /// What `p` uses of `resource`; None when it ended or cannot be read.
    pub fn of(&self, p: &Process, resource: Resource) -> Option<f64> {
        if let Some(known) = self.read.borrow().get(&(p.pid, resource)) {
            return *known;
        }
        let value = self.read_now(p, resource);
        self.read.borrow_mut().insert((p.pid, resource), value);
        value
    }

    fn read_now(&self, p: &Process, resource: Resource) -> Option<f64> {
        match resource {
            Resource::Threads => return Some(p.num_threads as f64),
            Resource::CpuTime => return Some((p.utime + p.stime) as f64 / self.ticks),
            Resource::Age => {
                let age = (self.uptime()? - p.start_time as f64 / self.ticks).max(0.0);
                return Some((age * 100.0).round() / 100.0);
            }
            _ => {}
        }
        let dir = self.process_dir(p.pid)?;
        match resource {
            // The ratio takes the count of the `fds` key: one count for both.
            Resource::FdRatio => {
                read_in(&dir, resource, self.page_size, || self.of(p, Resource::Fds))
            }
            _ => read_in(&dir, resource, self.page_size, || count_descriptors(&dir)),
        }
    }

    /// Reads the resources of `processes` that come from their /proc
    /// files, ahead and on several threads when they are many: a check
    /// over every process then costs about what the snapshot's reading
    /// does, not twice that.
    pub fn prefetch(&self, processes: &[&Process], resources: &[Resource]) {
        let resources: Vec<Resource> = resources
            .iter()
            .copied()
            .filter(|r| r.is_read_from_files())
            .collect();
        let threads = crate::snapshot::reading_threads();
        if resources.is_empty() || threads < 2 || processes.len() < PREFETCH_MIN {
            return;
        }
        let Some(root) = self.root() else {
            return;
        };
        let todo: Vec<&Process> = {
            let read = self.read.borrow();
            processes
                .iter()
                .copied()
                .filter(|p| resources.iter().any(|r| !read.contains_key(&(p.pid, *r))))
                .collect()
        };
        let page_size = self.page_size;
        let resources = &resources;
        let read_part = move |part: &[&Process]| {
            let mut found = Vec::with_capacity(part.len() * resources.len());
            for p in part {
                let dir = root.process(p.pid);
                // The descriptors are counted once for both keys.
                let fds = std::cell::OnceCell::new();
                let count = |dir: &ProcDir| *fds.get_or_init(|| count_descriptors(dir));
                for &resource in resources {
                    let value = dir
                        .as_ref()
                        .and_then(|dir| read_in(dir, resource, page_size, || count(dir)));
                    found.push(((p.pid, resource), value));
                }
            }
            found
        };
        let found: Vec<_> = std::thread::scope(|scope| {
            let workers: Vec<_> = todo
                .chunks(todo.len().div_ceil(threads).max(1))
                .map(|part| scope.spawn(move || read_part(part)))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a /proc reader thread panicked"))
                .collect()
        });
        self.read.borrow_mut().extend(found);
    }
}

/// Below this many processes one thread reads their resources faster.
const PREFETCH_MIN: usize = 400;

impl Resource {
    /// Whether it is read from the process's /proc files (the others are
    /// in the snapshot already).
    fn is_read_from_files(self) -> bool {
        matches!(
            self,
            Resource::Rss | Resource::Vsz | Resource::Swap | Resource::Fds | Resource::FdRatio
        )
    }
}

/// A resource kept in the /proc folder `dir`: memory, or descriptors,
/// which `fds` counts (or says what was counted already).
fn read_in(
    dir: &ProcDir,
    resource: Resource,
    page_size: f64,
    fds: impl FnOnce() -> Option<f64>,
) -> Option<f64> {
    match resource {
        Resource::Rss | Resource::Vsz => {
            let statm = Statm::read(dir)?;
            let pages = if resource == Resource::Rss {
                statm.resident
            } else {
                statm.size
            };
            Some(pages as f64 * page_size)
        }
        Resource::Swap => usage::swap(dir).map(|bytes| bytes as f64),
        Resource::Fds => fds(),
        Resource::FdRatio => Some(fds()? / usage::soft_fd_limit(dir)? as f64),
        Resource::Threads | Resource::CpuTime | Resource::Age => None,
    }
}

fn count_descriptors(dir: &ProcDir) -> Option<f64> {
    dir.count_descriptors().map(|n| n as f64)
}

impl Usage {
    /// Files `p` runs or maps that were deleted or replaced since: its
    /// executable and the libraries in /proc/PID/maps marked `(deleted)`,
    /// each once. Shared memory that is made deleted (memfd, /dev/shm,
    /// SysV) is no program file and is left out.
    pub fn deleted_files(&self, p: &Process) -> Vec<String> {
        const NOT_FILES: [&str; 5] = [
            "/memfd:",
            "/dev/shm/",
            "/SYSV",
            "/dev/zero",
            "/anon_hugepage",
        ];
        let Some(dir) = self.process_dir(p.pid) else {
            return Vec::new();
        };
        let mut found: Vec<String> = Vec::new();
        let mut add = |path: &str| {
            if let Some(file) = path.strip_suffix(" (deleted)")
                && file.starts_with('/')
                && !NOT_FILES.iter().any(|n| file.starts_with(n))
                && !found.iter().any(|f| f == file)
            {
                found.push(file.to_string());
            }
        };
        if let Some(exe) = dir.read_link("exe") {
            add(&exe.to_string_lossy());
        }
        if let Some(maps) = dir.read_vec("maps") {
            for line in String::from_utf8_lossy(&maps).lines() {
                // address perms offset dev inode, then the path (which may
                // hold spaces).
                let mut rest = line;
                for _ in 0..5 {
                    rest = rest.trim_start();
                    rest = rest.split_once(' ').map_or("", |(_, r)| r);
                }
                add(rest.trim_start());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read ahead on several threads, a process's resources are what
    /// reading them one by one gives.
    #[test]
    fn prefetched_resources_are_read_ones() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let root = Path::new("/proc");
        let mut users = crate::snapshot::UserNames::from_nss();
        let fields = crate::snapshot::Fields::default();
        let process = crate::snapshot::Snapshot::take_one(root, &mut users, fields, child.id())
            .unwrap()
            .unwrap();
        let many: Vec<&Process> = std::iter::repeat_n(&process, PREFETCH_MIN + 1).collect();
        let resources = [
            Resource::Vsz,
            Resource::Fds,
            Resource::FdRatio,
            Resource::Swap,
        ];
        let ahead = Usage::new(root);
        ahead.prefetch(&many, &resources);
        let prefetched = ahead.read.borrow().len();
        let one_by_one = Usage::new(root);
        for resource in resources {
            let value = one_by_one.of(&process, resource);
            assert!(value.is_some(), "{resource:?}");
            assert_eq!(ahead.of(&process, resource), value, "{resource:?}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if crate::snapshot::reading_threads() > 1 {
            assert_eq!(prefetched, resources.len(), "nothing was read ahead");
        }
    }

    #[test]
    fn ranges_take_units() {
        let r = Resource::Rss.range("~:2G").unwrap();
        assert!(r.alerts(2.5 * 1024.0 * 1024.0 * 1024.0) && !r.alerts(1e9));
        assert_eq!(r.to_string(), "~:2G");
        let age = Resource::Age.range("5m:").unwrap();
        assert!(age.alerts(299.0) && !age.alerts(300.0));
        let inside = Resource::Swap.range("@1.5M:2MiB").unwrap();
        assert!(inside.alerts(1.8 * 1024.0 * 1024.0));
        assert!(Resource::FdRatio.range("~:0.8").unwrap().alerts(0.9));
        let e = Resource::Threads.range("~:2G").unwrap_err();
        assert!(
            e.contains("unknown unit `G`") && e.contains("plain number"),
            "{e}"
        );
        let e = Resource::Age.range("5x:").unwrap_err();
        assert!(e.contains("s, m, h or d"), "{e}");
        assert!(
            Resource::Rss
                .range("2G:1G")
                .unwrap_err()
                .contains("\"2G:1G\"")
        );
    }

    #[test]
    fn values_are_shown_with_units() {
        assert_eq!(Resource::Rss.show(1536.0 * 1024.0 * 1024.0), "1.5G");
        assert_eq!(Resource::Rss.show(512.0), "512B");
        assert_eq!(Resource::Age.show(200.0), "3m20s");
        assert_eq!(Resource::CpuTime.show(90061.0), "1d1h");
        assert_eq!(Resource::FdRatio.show(0.8333), "0.83");
        assert_eq!(Resource::Fds.show(12.0), "12");
    }

    #[test]
    fn this_process_is_read() {
        let me = std::process::id();
        let root = ProcRoot::open(Path::new("/proc")).unwrap();
        let stat = root.stat(me).unwrap();
        let mut p = crate::snapshot::test_process(me, 1);
        p.start_time = stat.start_time;
        p.num_threads = stat.num_threads;
        let usage = Usage::new(Path::new("/proc"));
        let rss = usage.of(&p, Resource::Rss).unwrap();
        assert!(rss > 1024.0 * 1024.0 && rss < usage.of(&p, Resource::Vsz).unwrap());
        assert!(usage.of(&p, Resource::Fds).unwrap() >= 3.0);
        let ratio = usage.of(&p, Resource::FdRatio).unwrap();
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
        assert!(usage.of(&p, Resource::Age).unwrap() >= 0.0);
        assert!(usage.of(&p, Resource::Swap).is_some());
        assert_eq!(usage.deleted_files(&p), Vec::<String>::new());
        p.pid = 4_000_000;
        assert_eq!(usage.of(&p, Resource::Rss), None);
        assert!(usage.deleted_files(&p).is_empty());
    }
}
