//! Which processes are watched: the targets (by pid, by name, or the
//! command psdiff started) and their descendants, to `--depth`, including
//! those born after the watch began.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::snapshot::ProcRoot;

/// How long an exited process is remembered: its last events may be read
/// after its exit is.
const LINGER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Followed {
    pub ppid: u32,
    pub depth: u32,
    pub comm: String,
    exited: Option<Instant>,
    /// It just ran a script: the next program it opens to run is that
    /// script's interpreter, which does not rename it.
    interpreter_next: bool,
}

pub struct Follow {
    root: ProcRoot,
    followed: HashMap<u32, Followed>,
    /// The parent of every process whose fork was reported, with when it
    /// exited: a process that ends before its /proc entry is read still
    /// has its parent. Forgotten like `followed`, after `LINGER`.
    parents: HashMap<u32, (u32, Option<Instant>)>,
    names: Vec<String>,
    max_depth: Option<u32>,
    /// Processes found not to be followed, with their start time, so that
    /// each is looked up in /proc once (pids are reused).
    strangers: HashMap<u32, u64>,
    /// Whether fork events arrive (the proc connector); without them an
    /// unknown pid is looked up through its parents in /proc.
    pub forks_reported: bool,
    /// Every process ever followed.
    pub count: usize,
}

impl Follow {
    pub fn new(root: ProcRoot, names: Vec<String>, max_depth: Option<u32>) -> Follow {
        Follow {
            root,
            followed: HashMap::new(),
            parents: HashMap::new(),
            names,
            max_depth,
            strangers: HashMap::new(),
            forks_reported: false,
            count: 0,
        }
    }

    /// Follows `pid` as a target (depth 0).
    pub fn add_target(&mut self, pid: u32) -> bool {
        match self.read_process(pid) {
            Some((ppid, comm, _)) => {
                self.insert(pid, ppid, 0, comm);
                true
            }
            None => false,
        }
    }

    /// Adds every running process that is a target by name, or below a
    /// followed one: the tree as it is when the watch begins.
    pub fn scan(&mut self, processes: &[crate::snapshot::Process]) {
        let by_pid: HashMap<u32, &crate::snapshot::Process> =
            processes.iter().map(|p| (p.pid, p)).collect();
        for p in processes {
            // The chain from p up to a followed process or a named one.
            let mut chain = vec![p];
            let mut depth = None;
            while let Some(top) = chain.last() {
                if let Some(f) = self.followed.get(&top.pid) {
                    depth = Some(f.depth);
                    chain.pop();
                    break;
                }
                if self.is_named(&top.comm, top.exe_path()) {
                    depth = Some(0);
                    let top = chain.pop().expect("not empty");
                    self.insert(top.pid, top.ppid, 0, comm_of(&top.comm));
                    break;
                }
                match by_pid.get(&top.ppid) {
                    Some(parent) if chain.len() < 100_000 => chain.push(parent),
                    _ => break,
                }
            }
            let Some(mut depth) = depth else { continue };
            for p in chain.into_iter().rev() {
                depth += 1;
                if !self.within_depth(depth) {
                    break;
                }
                self.insert(p.pid, p.ppid, depth, comm_of(&p.comm));
            }
        }
    }

    /// A fork: the child is followed when its parent is (within depth).
    pub fn fork(&mut self, parent: u32, child: u32) {
        self.strangers.remove(&child);
        self.parents.insert(child, (parent, None));
        // A pid reused: the process it named has exited.
        if self
            .followed
            .get(&child)
            .is_some_and(|f| f.exited.is_some())
        {
            self.followed.remove(&child);
        }
        let Some(depth) = self
            .followed
            .get(&parent)
            .filter(|f| f.exited.is_none())
            .map(|f| f.depth + 1)
        else {
            return;
        };
        if self.within_depth(depth) {
            let comm = self.followed[&parent].comm.clone();
            self.insert(child, parent, depth, comm);
        }
    }

    /// An exec: a new program name, which may be a target by name.
    pub fn exec(&mut self, pid: u32) {
        let Some((ppid, comm, exe)) = self.read_process(pid) else {
            return;
        };
        if let Some(f) = self.followed.get_mut(&pid) {
            f.comm = comm;
        } else if self.is_named(comm.as_bytes(), exe.as_deref()) {
            self.strangers.remove(&pid);
            self.insert(pid, ppid, 0, comm);
        }
    }

    /// `pid` opened `program` to run it: its new name, and a target when
    /// that name is watched. (Seen in the file events, this names a process
    /// that ends before its /proc entry could be read.)
    pub fn exec_of(&mut self, pid: u32, program: &Path) {
        let Some(name) = program.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        // The dynamic loader an ELF program asks for is opened to run
        // too; it names nothing.
        if name.starts_with("ld-") && name.contains(".so") {
            return;
        }
        let running = self.read_process(pid);
        let script = is_script(program);
        // An exited process too: under load its exit can be read before
        // the file events it caused, this exec among them. (A pid reused
        // since was dropped at the new process's fork.)
        if let Some(f) = self.followed.get_mut(&pid) {
            if std::mem::replace(&mut f.interpreter_next, script) {
                // The interpreter of the script it was named after.
                f.interpreter_next = false;
                return;
            }
            // The kernel's comm once the exec is done (it runs the file):
            // it differs from the file's name for a program run by a link.
            // Before that, and once the process is gone, the file's name.
            f.comm = match running {
                Some((_, comm, Some(exe))) if Path::new(&exe) == program => comm,
                _ => name.chars().take(15).collect(),
            };
            return;
        }
        if self.names.iter().any(|n| n == name) {
            let ppid = running
                .map(|(ppid, ..)| ppid)
                .or_else(|| self.parents.get(&pid).map(|&(ppid, _)| ppid))
                .unwrap_or(0);
            self.strangers.remove(&pid);
            // comm is the program's name, cut to 15 bytes.
            let comm: String = name.chars().take(15).collect();
            self.insert(pid, ppid, 0, comm);
            if let Some(f) = self.followed.get_mut(&pid) {
                f.interpreter_next = script;
            }
        }
    }

    pub fn exit(&mut self, pid: u32) {
        if let Some(f) = self.followed.get_mut(&pid) {
            f.exited = Some(Instant::now());
        }
        self.strangers.remove(&pid);
        if let Some((_, exited)) = self.parents.get_mut(&pid) {
            *exited = Some(Instant::now());
        }
    }

    /// Forgets processes that exited a while ago.
    pub fn prune(&mut self) {
        self.followed
            .retain(|_, f| f.exited.is_none_or(|at| at.elapsed() < LINGER));
        self.parents
            .retain(|_, (_, exited)| exited.is_none_or(|at| at.elapsed() < LINGER));
        if self.strangers.len() > 100_000 {
            self.strangers.clear();
        }
    }

    /// The followed process `pid`, if it is one. Without fork events, an
    /// unknown pid is placed by walking its parents in /proc.
    pub fn lookup(&mut self, pid: u32) -> Option<&Followed> {
        if !self.followed.contains_key(&pid) && !self.forks_reported {
            self.place(pid);
        }
        self.followed.get(&pid)
    }

    /// Every process followed now.
    pub fn followed(&self) -> Vec<(u32, Followed)> {
        let mut all: Vec<_> = self
            .followed
            .iter()
            .filter(|(_, f)| f.exited.is_none())
            .map(|(&pid, f)| (pid, f.clone()))
            .collect();
        all.sort_by_key(|(pid, _)| *pid);
        all
    }

    /// Whether anything followed is still running.
    pub fn any_running(&mut self) -> bool {
        for (&pid, f) in self.followed.iter_mut() {
            if f.exited.is_none() && self.root.process(pid).is_none() {
                f.exited = Some(Instant::now());
            }
        }
        self.followed.values().any(|f| f.exited.is_none())
    }

    fn place(&mut self, pid: u32) {
        let Some(start) = self.root.stat(pid).map(|s| s.start_time) else {
            return;
        };
        if self.strangers.get(&pid) == Some(&start) {
            return;
        }
        let mut chain: Vec<(u32, u32, String)> = Vec::new();
        let mut at = pid;
        let depth = loop {
            if let Some(f) = self.followed.get(&at) {
                break Some(f.depth);
            }
            let Some((ppid, comm, exe)) = self.read_process(at) else {
                break None;
            };
            if self.is_named(comm.as_bytes(), exe.as_deref()) {
                self.insert(at, ppid, 0, comm);
                break Some(0);
            }
            chain.push((at, ppid, comm));
            if ppid <= 1 || chain.len() > 100_000 {
                break None;
            }
            at = ppid;
        };
        let Some(mut depth) = depth else {
            self.strangers.insert(pid, start);
            return;
        };
        for (p, ppid, comm) in chain.into_iter().rev() {
            depth += 1;
            if !self.within_depth(depth) {
                self.strangers.insert(pid, start);
                return;
            }
            self.insert(p, ppid, depth, comm);
        }
    }

    fn insert(&mut self, pid: u32, ppid: u32, depth: u32, comm: String) {
        let fresh = Followed {
            ppid,
            depth,
            comm,
            exited: None,
            interpreter_next: false,
        };
        if self.followed.insert(pid, fresh).is_none() {
            self.count += 1;
        }
    }

    fn within_depth(&self, depth: u32) -> bool {
        self.max_depth.is_none_or(|max| depth <= max)
    }

    fn is_named(&self, comm: &[u8], exe: Option<&str>) -> bool {
        let base = exe.and_then(|e| e.rsplit('/').next());
        self.names
            .iter()
            .any(|n| n.as_bytes() == comm || Some(n.as_str()) == base)
    }
}

/// Whether `path` is a script (`#!`), which the kernel runs through the
/// interpreter it names.
fn is_script(path: &Path) -> bool {
    use std::io::Read;
    let mut start = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok_and(|()| &start == b"#!")
}

fn comm_of(comm: &[u8]) -> String {
    String::from_utf8_lossy(comm).into_owned()
}

impl Follow {
    /// (ppid, comm, exe) of a running process.
    fn read_process(&self, pid: u32) -> Option<(u32, String, Option<String>)> {
        let dir = self.root.process(pid)?;
        let stat = dir.stat(&mut Vec::new())?;
        Some((stat.ppid, comm_of(&stat.comm), dir.exe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_of_followed_processes_are_followed_to_the_depth() {
        let root = ProcRoot::open(Path::new("/proc")).unwrap();
        let mut follow = Follow::new(root, vec![], Some(2));
        follow.forks_reported = true;
        follow.insert(100, 1, 0, "target".into());
        follow.fork(100, 101);
        follow.fork(101, 102);
        follow.fork(102, 103);
        follow.fork(7, 8);
        assert_eq!(follow.lookup(101).map(|f| f.depth), Some(1));
        assert_eq!(
            follow.lookup(102).map(|f| (f.ppid, f.depth)),
            Some((101, 2))
        );
        assert!(follow.lookup(103).is_none(), "beyond --depth 2");
        assert!(follow.lookup(8).is_none());
        assert_eq!(follow.count, 3);
        // A target added before its own fork event is read stays.
        follow.insert(200, 1, 0, "cmd".into());
        follow.fork(1, 200);
        assert!(follow.lookup(200).is_some());
        // A pid reused after its process exited is a new process.
        follow.exit(101);
        follow.fork(7, 101);
        assert!(follow.lookup(101).is_none());
    }

    #[test]
    fn an_exec_read_after_the_exit_still_names_the_process() {
        let root = ProcRoot::open(Path::new("/proc")).unwrap();
        let mut follow = Follow::new(root, vec![], None);
        follow.forks_reported = true;
        follow.insert(100, 1, 0, "sh".into());
        // A pid no process has here (above pid_max), so /proc has nothing.
        let child = 4_194_400;
        follow.fork(100, child);
        follow.exec(child);
        follow.exit(child);
        // The file events come after: its exec of cat, then its opens.
        follow.exec_of(child, Path::new("/usr/bin/cat"));
        assert_eq!(follow.lookup(child).map(|f| f.comm.as_str()), Some("cat"));
    }
}
