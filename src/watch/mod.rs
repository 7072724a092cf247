//! `psdiff watch`: every fork, exec and exit as the kernel reports it,
//! journaled with who each process was and how the rules see it, so
//! nothing slips between two polls.
//!
//! The live tree is kept in memory from the events (`live`) and set
//! right by a full read of /proc at start, every `rescan_every`, and after
//! any loss. Once per `tick` the images that started are shaped by the
//! same rules `show` uses, in the tree as it stood, and written with their
//! line and verdict; the images that ended get their end. Loss is never
//! silent: overflows, sequence gaps and execs whose /proc entry was gone
//! are counted in the journal's `losses` and the heartbeat, logged, and
//! followed by a rescan.

mod ebpf;
mod live;
mod source;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::app::comparison::Reference;
use crate::app::context::Context;
use crate::journal::{self, Journal, Retention, WatcherState, Writer};
use live::Live;
pub use source::Backend;
use source::{Source, SourceError};

pub struct Settings {
    pub journal: PathBuf,
    /// How often starts are classified and the journal committed.
    pub tick: Duration,
    /// How often /proc is read again in full, to set the live tree right.
    pub rescan_every: Duration,
    pub backend: Backend,
    /// The connector socket's receive buffer (`--socket-buffer`).
    pub receive_buffer: usize,
    /// The eBPF ring buffer, in bytes (`--ring-buffer`).
    pub ring_bytes: u32,
    pub retention: Retention,
    /// Stop after this long (`--for`); `None` runs until SIGTERM.
    pub run_for: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot read the kernel's process events: {0}")]
    Events(std::io::Error),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    App(#[from] crate::app::Error),
    #[error("cannot read /proc: {0}")]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("cannot wait for process events: {0}")]
    Poll(std::io::Error),
}

impl WatchError {
    /// Whether it is the environment's answer, not a failure: no right to
    /// subscribe here (not root, or not the host's pid namespace).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            WatchError::Source(
                SourceError::Connector(_) | SourceError::Ebpf(crate::bpf::EbpfError::NoCapability)
            )
        )
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    if signal == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

fn catch_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to atomics.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Runs the watcher until SIGTERM (or `run_for`); SIGHUP reads the rules
/// and the baseline again.
pub fn run(context: &Context, settings: &Settings) -> Result<(), WatchError> {
    catch_signals();
    let mut source = Source::open(
        settings.backend,
        settings.receive_buffer,
        settings.ring_bytes,
    )?;
    // Subscribed before the first read of /proc: nothing starts unseen.
    let mut writer = Writer::new(Journal::open_or_create(&settings.journal)?)?;
    let reference = Reference::read(context)?;
    let mut live = Live::new(context, reference)?;
    let ended = writer.end_other_boots(live.boot())?;
    let mut state = WatcherState {
        pid: std::process::id(),
        started: crate::clock::unix_now(),
        alive: crate::clock::unix_now(),
        backend: source.name().to_string(),
        ..WatcherState::default()
    };
    let adopted = live.rescan(&mut writer, &mut state, true, true)?;
    eprintln!(
        "psdiff watch: watching {} processes from the {} ({adopted} carried on from the journal, {ended} of earlier boots closed); journal {}",
        live.len(),
        match source.name() {
            "ebpf" => "kernel's tracepoints (eBPF)",
            _ => "kernel's process events connector",
        },
        settings.journal.display()
    );
    let began = Instant::now();
    let mut next_tick = Instant::now() + settings.tick;
    let mut next_rescan = Instant::now() + settings.rescan_every;
    let mut next_review = Instant::now() + REVIEW_EVERY;
    // Not at once: a watcher restarted in a storm first catches up.
    let mut next_retention = Instant::now() + RETENTION_EVERY;
    let mut db_stamp = modified(&context.db);
    let mut events = Vec::new();
    let mut rescan_wanted = false;
    let mut new_rules = false;
    let mut intake = Intake::default();
    let mut next_loss_report = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        if settings.run_for.is_some_and(|d| began.elapsed() >= d) {
            break;
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        wait_readable(&source, wait)?;
        rescan_wanted |= intake.read(&mut source, &mut events, &mut live, &mut state)?;
        for event in events.drain(..) {
            live.apply(event, &mut state);
        }
        if Instant::now() < next_tick {
            if let Some(pause) = source.gather_for() {
                std::thread::sleep(pause.min(next_tick.saturating_duration_since(Instant::now())));
            }
            continue;
        }
        next_tick = Instant::now() + settings.tick;
        let stamp = modified(&context.db);
        if RELOAD.swap(false, Ordering::SeqCst) || stamp != db_stamp {
            db_stamp = stamp;
            match Reference::read(context) {
                Ok(reference) => {
                    eprintln!("psdiff watch: read the rules and the baseline again");
                    live.set_reference(reference);
                    rescan_wanted = true;
                    new_rules = true;
                }
                Err(e) => eprintln!("psdiff watch: kept the rules in force: {e}"),
            }
        }
        let rescan = rescan_wanted || Instant::now() >= next_rescan;
        let review = Instant::now() >= next_review;
        let done = if rescan {
            rescan_wanted = false;
            next_rescan = Instant::now() + settings.rescan_every;
            next_review = Instant::now() + REVIEW_EVERY;
            live.rescan(
                &mut writer,
                &mut state,
                false,
                std::mem::take(&mut new_rules),
            )
            .map(|_| ())
        } else if review {
            next_review = Instant::now() + REVIEW_EVERY;
            live.review(&mut writer, &mut state)
        } else {
            live.commit(&mut writer, &mut state)
        };
        if let Err(e) = done {
            handle_write_error(&mut writer, &mut live, e, settings)?;
        }
        if Instant::now() >= next_loss_report {
            next_loss_report = Instant::now() + LOSS_REPORT_EVERY;
            say_losses(&mut live, &mut intake.overflows);
        }
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + RETENTION_EVERY;
            if let Err(e) = writer.retain(&settings.retention) {
                eprintln!("psdiff watch: cannot trim the journal: {e}");
            }
        }
    }
    state.stopped = Some(crate::clock::unix_now());
    if let Err(e) = live.commit(&mut writer, &mut state) {
        eprintln!("psdiff watch: the last batch was not written: {e}");
    }
    say_losses(&mut live, &mut intake.overflows);
    Ok(())
}

/// What the watcher took from its source, and lost on the way.
#[derive(Default)]
struct Intake {
    /// Socket overflows since the last report.
    overflows: u64,
    /// The ring's drops already charged. The eBPF ring counts them
    /// whenever they happen, most while we wait or apply events, so each
    /// read is charged with all since the last one, not only those during
    /// it.
    lost_counted: u64,
}

impl Intake {
    /// Reads what the source has into `events` and charges its losses to
    /// `live` and `state`; whether the tree must be read again.
    fn read(
        &mut self,
        source: &mut Source,
        events: &mut Vec<source::Event>,
        live: &mut Live,
        state: &mut WatcherState,
    ) -> Result<bool, WatchError> {
        events.clear();
        let overflowed = match source.read(events) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => true,
            Err(e) => return Err(WatchError::Events(e)),
        };
        if overflowed {
            self.overflows += 1;
        }
        let lost = source.lost() - self.lost_counted;
        self.lost_counted += lost;
        if lost > 0 {
            state.lost += lost;
            let kind = if overflowed {
                "overflow"
            } else {
                source.loss_kind()
            };
            live.note_loss(kind, lost);
        }
        state.events += events.len() as u64;
        Ok(overflowed || lost > 0)
    }
}

/// How often every running image is judged again (`Live::review`); a
/// change is written when two reviews in a row see it.
const REVIEW_EVERY: Duration = Duration::from_secs(5);

/// How often a storm's losses are said on stderr, at most.
const LOSS_REPORT_EVERY: Duration = Duration::from_secs(10);

/// How often old images are dropped and the file trimmed to its bound.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Says the losses since the last report, and how often the socket
/// overflowed (each followed by a read of /proc).
fn say_losses(live: &mut Live, overflows: &mut u64) {
    let lost = live.take_unsaid();
    if lost.is_none() && *overflows == 0 {
        return;
    }
    let lost = lost.unwrap_or_else(|| "events lost".to_string());
    let overflowed = match std::mem::take(overflows) {
        0 => String::new(),
        n => format!("; the socket overflowed {n} time(s)"),
    };
    eprintln!("psdiff watch: {lost}{overflowed}; read /proc again to correct the tree");
}

/// A batch the journal would not take: a full disk drops it (counted)
/// and makes room; anything else ends the watcher, which systemd starts
/// again (and a journal SQLite cannot read is then set aside).
fn handle_write_error(
    writer: &mut Writer,
    live: &mut Live,
    error: WatchError,
    settings: &Settings,
) -> Result<(), WatchError> {
    if matches!(&error, WatchError::Journal(e) if journal::is_busy(e)) {
        eprintln!("psdiff watch: {error}; writing with the next batch");
        return Ok(());
    }
    let full = matches!(&error, WatchError::Journal(e) if journal::is_full(e));
    if !full {
        return Err(error);
    }
    eprintln!("psdiff watch: {error}; dropping this batch and trimming the journal");
    live.forget_pending();
    let tight = Retention {
        max_bytes: settings.retention.max_bytes / 2,
        ..settings.retention
    };
    if let Err(e) = writer.retain(&tight) {
        eprintln!("psdiff watch: cannot trim the journal: {e}");
    }
    live.note_loss("disk", 1);
    Ok(())
}

fn wait_readable(source: &Source, wait: Duration) -> Result<(), WatchError> {
    let mut fds = [PollFd::new(source.fd(), PollFlags::POLLIN)];
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    match poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(WatchError::Poll(e.into())),
    }
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
