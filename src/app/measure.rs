//! Measuring for the checks: a snapshot (two, a CPU interval apart, when
//! a check measures CPU), evaluated, and looked at again for the failing
//! checks with `--retry`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::app::Error;
use crate::app::context::Context;
use crate::app::settle::settle;
use crate::check::restarts::Ledger;
use crate::check::{Check, Kind, Outcome, Sample, evaluate};
use crate::machine::Machine;
use crate::select::Command;
use crate::snapshot::{self, Fields, Process};

/// One measurement: the processes and, when asked, their CPU use.
struct Measured {
    pub processes: Vec<Process>,
    cpu: Option<Vec<Option<f64>>>,
}

fn measure(context: &Context, checks: &[&Check], interval: f64) -> Result<Measured, Error> {
    let fields = checks
        .iter()
        .map(|c| c.selector.needs())
        .fold(Fields::default(), Fields::union);
    // A process running deleted files is named with its unit; a restart
    // is found in the watcher's journal by program and unit.
    let restarts = checks
        .iter()
        .any(|c| matches!(c.kind, Kind::Restarts { .. }));
    let fields = Fields {
        cgroup: fields.cgroup
            || restarts
            || checks
                .iter()
                .any(|c| matches!(c.kind, Kind::Deleted { .. })),
        exe: fields.exe || restarts,
        ..fields
    };
    let wants_cpu = checks.iter().any(|c| matches!(c.kind, Kind::Cpu { .. }));
    if !wants_cpu {
        let processes = context.snapshot(fields)?.processes;
        return Ok(Measured {
            processes,
            cpu: None,
        });
    }
    let before: HashMap<u32, (u64, u64)> = context
        .snapshot(Fields::default())?
        .processes
        .iter()
        .map(|p| (p.pid, (p.start_time, p.utime + p.stime)))
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(interval));
    let processes = context.snapshot(fields)?.processes;
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = procfs::ticks_per_second() as f64;
    let cpu = processes
        .iter()
        .map(|p| {
            let &(start, used) = before.get(&p.pid)?;
            (start == p.start_time)
                .then(|| (p.utime + p.stime).saturating_sub(used) as f64 / ticks / elapsed * 100.0)
        })
        .collect();
    Ok(Measured {
        processes,
        cpu: Some(cpu),
    })
}

/// Evaluates every check; with `retry`, measures again for the failing
/// ones until they hold or the pauses are used up. CPU is measured over
/// `interval` seconds. Restarts are counted in a ledger in `state_dir`
/// (none: restart checks do not apply). Returns the outcomes and the
/// processes of the last measurement (for the actions).
pub fn evaluate_settled(
    context: &Context,
    checks: &[Check],
    retry: bool,
    interval: f64,
    state_dir: Option<&Path>,
) -> Result<(Vec<Outcome>, Vec<Process>), Error> {
    let counts_restarts = checks
        .iter()
        .any(|c| matches!(c.kind, Kind::Restarts { .. } | Kind::Starts { .. }));
    let ledger = state_dir
        .filter(|_| counts_restarts)
        .map(|dir| RefCell::new(Ledger::open(dir).with_journal(&context.journal)));
    let named: HashSet<String> = checks
        .iter()
        .filter_map(|c| match c.selector.command() {
            Some(Command::Name(n)) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let selinux_enabled = snapshot::selinux_enabled();
    let machine = Machine::of(&context.proc_root);
    let failing = |outcomes: &[Outcome]| -> Vec<usize> {
        outcomes
            .iter()
            .filter(|o| o.level().is_some())
            .map(|o| o.check)
            .collect()
    };
    // Each look measures for the checks that failed the time before, and
    // puts their new outcomes in place.
    let look = |previous: Option<(Vec<Outcome>, Measured)>| -> Result<_, Error> {
        let (mut outcomes, which) = match previous {
            None => (Vec::new(), (0..checks.len()).collect()),
            Some((outcomes, _)) => {
                let which = failing(&outcomes);
                (outcomes, which)
            }
        };
        let wanted: Vec<&Check> = which.iter().map(|&i| &checks[i]).collect();
        let measured = measure(context, &wanted, interval)?;
        let parents = crate::check::parents(&measured.processes);
        let sample = Sample::new(
            &measured.processes,
            &parents,
            &machine,
            measured.cpu.as_deref(),
            selinux_enabled,
            &context.proc_root,
            ledger.as_ref(),
        );
        for again in which.iter().map(|&i| evaluate(checks, i, &sample, &named)) {
            match outcomes.iter_mut().find(|o| o.check == again.check) {
                Some(slot) => *slot = again,
                None => outcomes.push(again),
            }
        }
        drop(sample);
        Ok((outcomes, measured))
    };
    let (outcomes, measured) = settle(retry, look, |(outcomes, _)| !failing(outcomes).is_empty())?;
    if let Some(ledger) = ledger {
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        if let Err(e) = ledger.into_inner().save(&names) {
            eprintln!("psdiff: {e}; restarts seen now will not count next time");
        }
    }
    Ok((outcomes, measured.processes))
}
