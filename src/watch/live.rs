//! The live tree the watcher keeps from the kernel's events: one image
//! per pid, each written to the journal once the rules have seen it, and
//! ended when the process exits or runs another program.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::app::comparison::Reference;
use crate::app::context::Context;
use crate::identity::Identity;
use crate::journal::{Batch, Ending, NewImage, WatcherState, Writer};
use crate::machine::Machine;
use crate::proc_events::ProcEvent;
use crate::rules::Decision;
use crate::snapshot::attest::AtExec;
use crate::snapshot::{Cgroup, PidReader, Process, Snapshot, named_by_its_path};

use super::WatchError;
use super::source::{Event, ExecSeen};

/// What a pid runs now, as far as the watcher knows.
struct Image {
    process: Process,
    /// Its journal row, once classified.
    row: Option<i64>,
    /// When it began (unix seconds).
    started: f64,
    origin: &'static str,
    /// Whether its argv and exe were read (an exec whose /proc entry was
    /// gone at once was not).
    read: bool,
    /// When it exited, and the wait status.
    exited: Option<(f64, u32)>,
    /// The line and verdict written, to see when they change.
    written: Option<Verdict>,
    /// A change a review saw, written once the next review sees it too.
    changing: Option<Verdict>,
    /// Whether its parent ran when it was journaled: once that parent has
    /// ended, a review leaves its verdict be (an orphan is judged by who
    /// started it, not by the moment its daemon stops).
    parent_when_written: bool,
}

/// A line, verdict and hiding rule, as journaled.
type Verdict = (Option<String>, &'static str, Option<String>);

/// How `write` looks at the images already written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Only new images.
    New,
    /// Every image; a change is written when two reviews in a row see it:
    /// a daemon's children orphaned for the moment it shuts down are
    /// no extra.
    Review,
    /// Every image, each change written at once (the first scan, new
    /// rules).
    All,
}

pub struct Live {
    proc_root: PathBuf,
    context: Context,
    reference: Reference,
    reader: PidReader,
    /// Judges a new program's executable while it runs; made anew with
    /// each batch, so a file an upgrade replaced is not judged by an old
    /// look at it.
    attesting: Machine,
    images: HashMap<u32, Image>,
    /// Rows to end at the next commit: images replaced by an exec, or
    /// gone at a rescan.
    ends: Vec<(i64, f64, Ending)>,
    /// Images that ended before a commit wrote them (a program that ran
    /// another at once, as a user manager's `systemd-executor` does), in
    /// the order they ended, each with its end: journaled at the next.
    unjournaled: Vec<(Image, f64, Ending)>,
    /// Losses to record at the next commit.
    losses: Vec<(&'static str, u64)>,
    /// Losses not yet said on stderr, by kind: said as one summary now
    /// and then, since a storm loses events on every read.
    unsaid: BTreeMap<&'static str, u64>,
    boot: String,
    /// The boot's time (unix seconds) and clock ticks per second, to
    /// place a process's start time.
    boot_time: f64,
    ticks: f64,
}

impl Live {
    pub fn new(context: &Context, reference: Reference) -> Result<Live, WatchError> {
        let root = &context.proc_root;
        let reader = PidReader::open(root, context.users()?, reference.needs())?;
        let boot = std::fs::read_to_string(root.join("sys/kernel/random/boot_id"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let boot_time = std::fs::read_to_string(root.join("stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|t| t.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        Ok(Live {
            proc_root: root.clone(),
            context: context.clone(),
            reference,
            reader,
            attesting: Machine::of(root),
            images: HashMap::new(),
            ends: Vec::new(),
            unjournaled: Vec::new(),
            losses: Vec::new(),
            unsaid: BTreeMap::new(),
            boot,
            boot_time,
            ticks: procfs::ticks_per_second() as f64,
        })
    }

    pub fn boot(&self) -> &str {
        &self.boot
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn set_reference(&mut self, reference: Reference) {
        self.reference = reference;
    }

    pub fn note_loss(&mut self, kind: &'static str, count: u64) {
        self.losses.push((kind, count));
        *self.unsaid.entry(kind).or_default() += count;
    }

    /// The losses not yet said, as "12 overflow, 3 unread", and forgets
    /// them; `None` when there are none.
    pub fn take_unsaid(&mut self) -> Option<String> {
        let said = std::mem::take(&mut self.unsaid);
        let total: u64 = said.values().sum();
        let kinds: Vec<String> = said.iter().map(|(k, n)| format!("{n} {k}")).collect();
        (total > 0).then(|| format!("{total} event(s) lost ({})", kinds.join(", ")))
    }

    /// Forgets what the last batch would have written (the disk is full);
    /// the images stay, to be written with the next.
    pub fn forget_pending(&mut self) {
        self.losses.clear();
    }

    /// Clock ticks after boot, now: the start time of a child just forked.
    fn ticks_now(&self) -> u64 {
        ((crate::clock::unix_now() - self.boot_time) * self.ticks).max(0.0) as u64
    }

    /// Applies one event from the kernel.
    pub fn apply(&mut self, event: Event, state: &mut WatcherState) {
        let now = crate::clock::unix_now();
        let Event {
            event,
            start_ticks,
            exec,
            title,
        } = event;
        match event {
            ProcEvent::Fork { parent, child } => {
                self.forked(parent, child, start_ticks, title, now);
            }
            ProcEvent::Exec { pid } => self.executed(pid, start_ticks, exec, now, state),
            ProcEvent::Exit { pid, status } => {
                if let Some(image) = self.images.get_mut(&pid) {
                    image.exited = Some((now, status));
                }
            }
        }
    }

    /// `parent` forked `child`; `title` is the parent's argv then, when
    /// the kernel side says it.
    fn forked(
        &mut self,
        parent: u32,
        child: u32,
        start_ticks: Option<u64>,
        title: Option<Box<[u8]>>,
        now: f64,
    ) {
        self.retire(child, now, Ending::Lost);
        // A parent not yet written may have set its title since it was
        // read (cron's child calls itself `CRON` and then starts the job):
        // the child's parent is judged by it. The kernel side says what it
        // was; else /proc, while it runs.
        if let Some(image) = self.images.get_mut(&parent)
            && image.row.is_none()
        {
            match title {
                Some(title) if image.read => image.process.cmdline = title,
                Some(_) => {}
                None => self.refresh(parent),
            }
        }
        // A child is its parent's copy until it runs another program: no
        // /proc read needed (and none possible for a child that is gone
        // already).
        let (process, read) = match self.images.get(&parent) {
            Some(image) => (
                Process {
                    pid: child,
                    ppid: parent,
                    start_time: start_ticks.unwrap_or_else(|| self.ticks_now()),
                    num_threads: 1,
                    ..image.process.clone()
                },
                image.read,
            ),
            None => match self.reader.read(child) {
                Some(process) => (process, true),
                None => return,
            },
        };
        self.images
            .insert(child, new_image(process, now, "fork", read));
    }

    /// `pid` ran a new program; `exec` is what the kernel saw, when its
    /// side says it.
    fn executed(
        &mut self,
        pid: u32,
        start_ticks: Option<u64>,
        exec: Option<Box<ExecSeen>>,
        now: f64,
        state: &mut WatcherState,
    ) {
        let known = self.images.get(&pid).map(|i| i.process.clone());
        let fresh = self.reader.read(pid);
        // A program that was ending as we looked (a zombie, or its memory
        // already gone: no argv and no exe) still has the kernel's name
        // and user, but what it ran is gone.
        let reading = match (fresh, known) {
            // What the kernel saw at exec is the truth; /proc only adds to
            // it while it still shows that program.
            (fresh, known) if let Some(seen) = exec.as_deref() => self
                .as_seen(pid, seen, start_ticks, fresh, known)
                .map(|p| (p, true)),
            (Some(process), _) if ended_before_read(&process) => Some((process, false)),
            (Some(process), _) => Some((process, true)),
            (None, known) => known.map(|process| (process, false)),
        };
        if !reading.as_ref().is_some_and(|(_, read)| *read) {
            state.unread += 1;
            self.note_loss("unread", 1);
        }
        let Some((mut process, read)) = reading else {
            return;
        };
        if read {
            self.attest(&mut process, exec.as_deref().map(|e| &e.attested));
        }
        match self.images.get_mut(&pid) {
            // Read after the exec already (a rescan while the event was
            // queued): the same image.
            Some(image)
                if image.read
                    && read
                    && image.process.exe == process.exe
                    && image.process.cmdline == process.cmdline
                    && image.origin != "fork" => {}
            // A fork not yet written becomes what it runs (a program that
            // ran is journaled as itself, below).
            Some(image) if image.row.is_none() && image.origin == "fork" => {
                image.process = process;
                image.read = read;
                image.origin = "exec";
            }
            _ => {
                self.retire(pid, now, Ending::Exec);
                self.images
                    .insert(pid, new_image(process, now, "exec", read));
            }
        }
    }

    /// Judges the executable of `process` now, while it runs (`seen`: as
    /// the kernel started it), when a rule takes processes by theirs: once
    /// it is gone, that judgment is all there is.
    fn attest(&self, process: &mut Process, seen: Option<&AtExec>) {
        if process.attested.is_none()
            && process
                .exe_path()
                .is_some_and(|exe| self.reference.rules().takes_by_exe(exe))
        {
            process.attested = Some(self.attesting.doubts_at_exec(process, seen).into());
        }
    }

    /// Reads /proc again for the running image of `pid`, not yet written,
    /// to see the title it set after exec or fork.
    fn refresh(&mut self, pid: u32) {
        let Some(image) = self.images.get(&pid) else {
            return;
        };
        if image.exited.is_some() || !image.read {
            return;
        }
        // Not a reading of it ending (no argv, no exe left), nor of a
        // program it has run since (its own event follows).
        if let Some(mut fresh) = self.reader.read(pid)
            && fresh.ppid == image.process.ppid
            && !ended_before_read(&fresh)
            && fresh.exe == image.process.exe
        {
            let image = self.images.get_mut(&pid).expect("looked up above");
            // The same program: as judged at its exec.
            fresh.attested = image.process.attested.take();
            image.process = fresh;
        }
    }

    /// The process an exec started, as the kernel saw it: its reading of
    /// /proc while that shows the same program (it adds the title and
    /// everything the kernel side does not send), else the kernel's view
    /// over what was known of the pid (for a pid never seen whose /proc
    /// entry is gone too, over nothing: the kernel's view is enough, its
    /// start time included, so its children are still its children).
    fn as_seen(
        &mut self,
        pid: u32,
        seen: &ExecSeen,
        start_ticks: Option<u64>,
        fresh: Option<Process>,
        known: Option<Process>,
    ) -> Option<Process> {
        let same_program = |p: &Process| {
            !ended_before_read(p)
                && seen.exe.is_some()
                && p.exe.as_deref() == seen.exe.as_deref()
                && p.uids == seen.uids
        };
        if let Some(process) = fresh.as_ref().filter(|p| same_program(p)) {
            return Some(process.clone());
        }
        let base = known.or(fresh).unwrap_or_else(|| Process {
            pid,
            ppid: seen.ppid,
            pgrp: pid,
            user: self.reader.users().name(seen.uids.effective),
            uids: seen.uids,
            gids: seen.gids,
            comm: seen.comm.clone(),
            exe: None,
            selinux: None,
            cgroup: None,
            disguised: None,
            cmdline: seen.argv.clone(),
            state: 'R',
            kernel_thread: false,
            start_time: start_ticks.unwrap_or_else(|| self.ticks_now()),
            utime: 0,
            stime: 0,
            nice: 0,
            num_threads: 1,
            attested: None,
        });
        let wants_cgroup = self.reference.needs().cgroup;
        Some(Process {
            pid,
            ppid: seen.ppid,
            user: self.reader.users().name(seen.uids.effective),
            uids: seen.uids,
            gids: seen.gids,
            comm: seen.comm.clone(),
            exe: seen.exe.as_deref().map(Into::into),
            // The parent's domain says nothing of this program; argv[0]
            // that is the path it runs is no disguise.
            selinux: None,
            disguised: seen
                .exe
                .as_deref()
                .filter(|exe| {
                    named_by_its_path(seen.argv.split(|&b| b == 0).next().unwrap_or(b""), exe)
                })
                .map(|_| false),
            cgroup: match &seen.cgroup {
                Some(path) if wants_cgroup => Some(std::sync::Arc::new(Cgroup::parse(path))),
                _ => None,
            },
            cmdline: seen.argv.clone(),
            ..base
        })
    }

    /// Takes the image `pid` has now, if any, out of the tree, to end at
    /// `now` as `ending` (an exec; lost, for a pid reused or gone before
    /// its exit was seen), or at its exit when that was seen; one never
    /// written is journaled at the next commit.
    fn retire(&mut self, pid: u32, now: f64, ending: Ending) {
        let Some(old) = self.images.remove(&pid) else {
            return;
        };
        let (at, ending) = match old.exited {
            Some((at, status)) => (at, Ending::Exit { status }),
            None => (now, ending),
        };
        match old.row {
            Some(row) => self.ends.push((row, at, ending)),
            None => self.unjournaled.push((old, at, ending)),
        }
    }

    /// Reads /proc in full and sets the live tree right: processes it
    /// missed are added, those gone unseen ended as lost. The first scan
    /// adopts the journal's open images of this boot that still run (the
    /// watcher was restarted) and ends the others. What was written is
    /// judged again at once after the first scan and under new rules, as
    /// a review does otherwise (a rescan after a loss may land in a
    /// daemon's restart). Returns how many it adopted.
    pub fn rescan(
        &mut self,
        writer: &mut Writer,
        state: &mut WatcherState,
        first: bool,
        new_rules: bool,
    ) -> Result<usize, WatchError> {
        let mut users = self.context.users()?;
        let snapshot = Snapshot::take(&self.proc_root, &mut users, self.reference.needs())?;
        let now = crate::clock::unix_now();
        let mut open: HashMap<(u32, u64), i64> = if first {
            writer
                .open_images(&self.boot)?
                .into_iter()
                .map(|(row, pid, ticks)| ((pid, ticks), row))
                .collect()
        } else {
            HashMap::new()
        };
        let mut seen = std::collections::HashSet::with_capacity(snapshot.processes.len());
        let mut adopted = 0;
        for process in snapshot.processes {
            let pid = process.pid;
            seen.insert(pid);
            let mut process = process;
            let known = self
                .images
                .get(&pid)
                .filter(|i| i.exited.is_none() && same_process(&i.process, &process));
            // A program judged at its exec keeps that judgment; one first
            // seen now is judged now.
            process.attested = known.and_then(|i| i.process.attested.clone());
            self.attest(&mut process, None);
            match self.images.get_mut(&pid) {
                Some(image) if image.exited.is_none() && same_process(&image.process, &process) => {
                    image.process = process;
                    image.read = true;
                }
                _ => {
                    self.retire(pid, now, Ending::Lost);
                    let started = self.boot_time + process.start_time as f64 / self.ticks;
                    let mut image = new_image(process, started, "scan", true);
                    if let Some(row) = open.remove(&(pid, image.process.start_time)) {
                        image.row = Some(row);
                        adopted += 1;
                    }
                    self.images.insert(pid, image);
                }
            }
        }
        let gone: Vec<u32> = self
            .images
            .iter()
            .filter(|(pid, image)| !seen.contains(pid) && image.exited.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in gone {
            self.retire(pid, now, Ending::Lost);
        }
        for (_, row) in open {
            self.ends.push((row, now, Ending::Lost));
        }
        state.rescans += 1;
        let look = if first || new_rules {
            Look::All
        } else {
            Look::Review
        };
        self.write(writer, state, look)?;
        Ok(adopted)
    }

    /// Classifies the images that started, ends those that ended, and
    /// commits.
    pub fn commit(
        &mut self,
        writer: &mut Writer,
        state: &mut WatcherState,
    ) -> Result<(), WatchError> {
        self.write(writer, state, Look::New)
    }

    /// A commit that also judges every running image again: what hid it
    /// may have ended (the login it started in closed; it grew older than
    /// a rule's `younger_than`), and what it is when it exits decides
    /// whether that exit is a transient extra.
    pub fn review(
        &mut self,
        writer: &mut Writer,
        state: &mut WatcherState,
    ) -> Result<(), WatchError> {
        self.write(writer, state, Look::Review)
    }

    /// One batch: the new images shaped by the rules in the tree as it
    /// stands (the exited ones still in it), written; with `all`, every
    /// image's line looked at again (a rescan, new rules).
    fn write(
        &mut self,
        writer: &mut Writer,
        state: &mut WatcherState,
        look: Look,
    ) -> Result<(), WatchError> {
        let unwritten: Vec<u32> = self
            .images
            .iter()
            .filter(|(_, i)| i.row.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        // A title set after exec (`nginx: master process`) is read now.
        for &pid in &unwritten {
            self.refresh(pid);
        }
        let verdicts = if unwritten.is_empty() && look == Look::New {
            HashMap::new()
        } else {
            self.classify()
        };
        let running: std::collections::HashSet<u32> = self
            .images
            .iter()
            .filter(|(_, i)| i.exited.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        let mut batch = writer.batch()?;
        self.journal_unjournaled(&mut batch)?;
        for (pid, image) in &mut self.images {
            let Some(judged) = verdicts.get(pid) else {
                continue;
            };
            let (line, verdict, rule) = judged;
            match image.row {
                None => {
                    let row = insert(&mut batch, &self.boot, image, judged)?;
                    let p = &image.process;
                    image.row = Some(row);
                    image.written = Some((line.clone(), verdict, rule.clone()));
                    image.parent_when_written = running.contains(&p.ppid);
                }
                // Only a review or a rescan judges what was written again:
                // a batch of new images comes as often as processes start,
                // in the middle of a daemon's restart too.
                Some(_) if look == Look::New => {}
                Some(row) => {
                    let now = (line.clone(), *verdict, rule.clone());
                    if image.written.as_ref() == Some(&now) {
                        image.changing = None;
                        continue;
                    }
                    let orphaned =
                        image.parent_when_written && !running.contains(&image.process.ppid);
                    if look == Look::Review && orphaned {
                        continue;
                    }
                    if look == Look::Review && image.changing.as_ref() != Some(&now) {
                        image.changing = Some(now);
                        continue;
                    }
                    batch.relabel(row, line.as_deref(), verdict, rule.as_deref())?;
                    image.written = Some(now);
                    image.changing = None;
                }
            }
        }
        let exited: Vec<u32> = self
            .images
            .iter()
            .filter(|(_, i)| i.exited.is_some())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in exited {
            let image = self.images.remove(&pid).expect("listed above");
            if let (Some(row), Some((at, status))) = (image.row, image.exited) {
                self.ends.push((row, at, Ending::Exit { status }));
            }
        }
        for (row, at, ending) in self.ends.drain(..) {
            batch.end(row, at, ending)?;
        }
        for (kind, count) in self.losses.drain(..) {
            batch.loss(kind, count)?;
        }
        state.alive = crate::clock::unix_now();
        batch.heartbeat(state)?;
        batch.commit()?;
        self.attesting = Machine::of(&self.proc_root);
        Ok(())
    }

    /// Journals the images that ended unwritten, each judged in the tree
    /// with it back in its pid's place (its children, its parent as they
    /// were), one generation of a pid at a time; then ends them.
    fn journal_unjournaled(&mut self, batch: &mut Batch) -> Result<(), WatchError> {
        let mut pending = std::mem::take(&mut self.unjournaled);
        while !pending.is_empty() {
            let mut placed = std::collections::HashSet::new();
            let (now, later): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|(image, ..)| placed.insert(image.process.pid));
            pending = later;
            let mut displaced = Vec::with_capacity(now.len());
            for (image, at, ending) in now {
                let pid = image.process.pid;
                displaced.push((pid, self.images.insert(pid, image), at, ending));
            }
            let verdicts = self.classify();
            for (pid, current, at, ending) in displaced {
                let image = match current {
                    Some(current) => self.images.insert(pid, current),
                    None => self.images.remove(&pid),
                }
                .expect("put in place above");
                if let Some(judged) = verdicts.get(&pid) {
                    let row = insert(batch, &self.boot, &image, judged)?;
                    batch.end(row, at, ending)?;
                }
            }
        }
        Ok(())
    }

    /// The line, verdict and hiding rule of every image not yet written
    /// (all of them after a rescan, since lines depend on the whole tree).
    fn classify(&self) -> HashMap<u32, Verdict> {
        let processes: Vec<Process> = self
            .images
            .values()
            .map(|i| Process {
                state: if i.exited.is_some() {
                    'X'
                } else {
                    i.process.state
                },
                ..i.process.clone()
            })
            .collect();
        let rules = self.reference.rules();
        let view = self.context.shape(processes, rules);
        let lines: HashMap<u32, String> = view.lines.iter().map(|l| (l.pid, l.text())).collect();
        let mut out = HashMap::with_capacity(self.images.len());
        for (i, process) in view.tree.processes.iter().enumerate() {
            let Some(image) = self.images.get(&process.pid) else {
                continue;
            };
            let rule_name = |r: usize| Some(rules.rules[r].name.clone());
            let verdict = match &view.decisions[i] {
                // What it ran is unknown: no rule can say it is fine.
                _ if !image.read => (lines.get(&process.pid).cloned(), "unread", None),
                Decision::Hidden { rule, .. } | Decision::Duplicate { rule, .. } => {
                    (None, "hidden", rule_name(*rule))
                }
                Decision::Shown | Decision::ShownOnce { .. } => {
                    let line = lines.get(&process.pid).cloned();
                    let verdict = match &line {
                        _ if !self.reference.presence.sees() => "shown",
                        Some(l) if self.reference.keeps(l, &Identity::of(process)) => "baseline",
                        _ => "extra",
                    };
                    (line, verdict, None)
                }
            };
            out.insert(process.pid, verdict);
        }
        out
    }
}

/// Writes `image`'s row, judged as `judged`; returns the row.
fn insert(
    batch: &mut Batch,
    boot: &str,
    image: &Image,
    (line, verdict, rule): &Verdict,
) -> Result<i64, WatchError> {
    let p = &image.process;
    let argv = crate::render::cmdline(p);
    let comm = crate::render::printable(&p.comm);
    let cgroup = p.cgroup.as_deref();
    let identity = Identity::of(p);
    Ok(batch.insert(&NewImage {
        boot,
        pid: p.pid,
        ppid: p.ppid,
        start_ticks: p.start_time,
        started: image.started,
        origin: image.origin,
        uid: Some(p.uids.effective),
        user: Some(&p.user),
        exe: image.read.then(|| p.exe_path()).flatten(),
        comm: Some(&comm),
        argv: image.read.then_some(argv.as_str()),
        unit: cgroup.and_then(|c| c.unit.as_deref()),
        cgroup: cgroup.map(|c| c.path.as_str()),
        container: identity.container.as_deref().filter(|c| !c.is_empty()),
        line: line.as_deref(),
        verdict,
        rule: rule.as_deref(),
    })?)
}

fn new_image(process: Process, started: f64, origin: &'static str, read: bool) -> Image {
    Image {
        process,
        row: None,
        started,
        origin,
        read,
        exited: None,
        written: None,
        changing: None,
        parent_when_written: false,
    }
}

/// A process read too late to tell what it ran. An empty argv alone is
/// not that (execve can be given none); with no executable either, the
/// process's memory is gone.
fn ended_before_read(process: &Process) -> bool {
    process.is_zombie() || (process.cmdline.is_empty() && process.exe.is_none())
}

/// Whether two readings are of one process: a pid's start time does not
/// change (a child's, placed from the fork event, may be a tick off).
fn same_process(known: &Process, read: &Process) -> bool {
    known.start_time.abs_diff(read.start_time) <= 2
}
