//! `psdiff check`: evaluate the checks on a snapshot (two, a CPU interval
//! apart, when a check measures CPU), look again at failures with
//! `--retry`, take the configured actions, and report.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::show::RETRY_SLEEPS;
use super::{Context, emit};
use crate::check::actions::{self, Guard};
use crate::check::{self, Check, Command, Kind, Level, Outcome, Sample, load, output};
use crate::cli::{CheckArgs, CheckFormat};
use crate::error::{Error, Exit, NagiosState};
use crate::report;
use crate::rules;
use crate::snapshot::{self, Fields, Process};

pub fn run(context: &Context, args: &CheckArgs) -> Result<Exit, Error> {
    let output = args.output.as_deref();
    let found = compile(context, args).and_then(|checks| {
        let (outcomes, processes) = evaluate_settled(context, &checks, args.retry, args.interval)?;
        Ok((checks, outcomes, processes))
    });
    let (checks, outcomes, processes) = match found {
        Ok(found) => found,
        Err(e) if args.format == CheckFormat::Nagios => {
            emit(output, &format!("PROCS UNKNOWN - {e}\n"))?;
            return Ok(Exit::Nagios(NagiosState::Unknown));
        }
        Err(e) if args.format == CheckFormat::Prometheus => {
            emit(output, &report::prometheus_down("psdiff_check"))?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    take_actions(context, &checks, &outcomes, &processes, args.dry_run);
    for line in output::not_applicable(&checks, &outcomes) {
        eprintln!("psdiff: {line}");
    }
    let failed = outcomes.iter().any(|o| o.level().is_some());
    let text = match args.format {
        CheckFormat::Mon => output::mon(&checks, &outcomes),
        CheckFormat::Json => output::json(&checks, &outcomes),
        CheckFormat::Prometheus => output::prometheus(&checks, &outcomes),
        CheckFormat::Nagios => {
            let (text, state) = output::nagios(&checks, &outcomes);
            emit(output, &text)?;
            return Ok(Exit::Nagios(state));
        }
    };
    emit(output, &text)?;
    Ok(if failed { Exit::Report } else { Exit::Clean })
}

/// The checks of the arguments, else of `--rules FILE`, else of the config.
fn compile(context: &Context, args: &CheckArgs) -> Result<Vec<Check>, Error> {
    if !args.specs.is_empty() {
        if args.rules.is_some() {
            return Err(Error::Usage(
                "give NAME:MIN-MAX rules or --rules FILE, not both".into(),
            ));
        }
        return args
            .specs
            .iter()
            .map(|s| load::parse_spec(s).map_err(Error::Usage))
            .collect();
    }
    let checks = match &args.rules {
        Some(file) => load::compile_all(&rules::load_file(file)?.checks)?,
        None => configured(context)?,
    };
    if checks.is_empty() {
        return Err(Error::Usage(
            "no checks: give NAME:MIN-MAX rules (e.g. `psdiff check sshd:1-`) or [[check]] tables in psdiff.toml (or --rules FILE)".into(),
        ));
    }
    if !(args.interval > 0.0 && args.interval <= 60.0) {
        return Err(Error::Usage(format!(
            "--interval {} must be above 0 and at most 60 seconds",
            args.interval
        )));
    }
    Ok(checks)
}

/// The `[[check]]` tables of the config, compiled.
pub fn configured(context: &Context) -> Result<Vec<Check>, Error> {
    Ok(load::compile_all(&context.rules()?.checks)?)
}

/// One measurement: the processes and, when asked, their CPU use.
struct Measured {
    processes: Vec<Process>,
    cpu: Option<Vec<Option<f64>>>,
}

fn measure(context: &Context, checks: &[Check], interval: f64) -> Result<Measured, Error> {
    let fields = Fields {
        exe: checks.iter().any(|c| c.matcher.needs_exe()),
        selinux: checks.iter().any(|c| c.matcher.needs_selinux()),
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
/// `interval` seconds. Returns the outcomes and the processes they were
/// found in (for the actions).
pub fn evaluate_settled(
    context: &Context,
    checks: &[Check],
    retry: bool,
    interval: f64,
) -> Result<(Vec<Outcome>, Vec<Process>), Error> {
    let named: HashSet<String> = checks
        .iter()
        .filter_map(|c| match &c.matcher.command {
            Some(Command::Name(n)) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let selinux_enabled = snapshot::selinux_enabled();
    let evaluate = |measured: &Measured, which: &[usize]| -> Vec<Outcome> {
        let sample = Sample::new(
            &measured.processes,
            measured.cpu.as_deref(),
            selinux_enabled,
        );
        which
            .iter()
            .map(|&i| check::evaluate(checks, i, &sample, &named))
            .collect()
    };
    let all: Vec<usize> = (0..checks.len()).collect();
    let mut measured = measure(context, checks, interval)?;
    let mut outcomes = evaluate(&measured, &all);
    let mut sleeps = RETRY_SLEEPS.iter().filter(|_| retry);
    loop {
        let failing: Vec<usize> = outcomes
            .iter()
            .filter(|o| o.level().is_some())
            .map(|o| o.check)
            .collect();
        let Some(pause) = sleeps.next().filter(|_| !failing.is_empty()) else {
            return Ok((outcomes, measured.processes));
        };
        std::thread::sleep(*pause);
        let failing_checks: Vec<Check> = failing.iter().map(|&i| checks[i].clone()).collect();
        measured = measure(context, &failing_checks, interval)?;
        for again in evaluate(&measured, &failing) {
            let slot = outcomes
                .iter_mut()
                .find(|o| o.check == again.check)
                .expect("evaluated before");
            *slot = again;
        }
    }
}

/// Runs each failing group's actions for its level; reports each on stderr.
fn take_actions(
    context: &Context,
    checks: &[Check],
    outcomes: &[Outcome],
    processes: &[Process],
    dry_run: bool,
) {
    let start_times: HashMap<u32, u64> = processes.iter().map(|p| (p.pid, p.start_time)).collect();
    let start_of = |pid: u32| start_times.get(&pid).copied();
    let guard = Guard::for_this_process(&context.proc_root);
    for outcome in outcomes {
        let check = &checks[outcome.check];
        for group in &outcome.groups {
            let Some(level) = group.level else { continue };
            let configured = match level {
                Level::Critical => check.on_crit.as_ref(),
                Level::Warning => check.on_warn.as_ref(),
            };
            let Some(configured) = configured else {
                continue;
            };
            for line in actions::run(
                configured,
                &check.name,
                level,
                group,
                &start_of,
                &guard,
                dry_run,
            ) {
                eprintln!("psdiff: check {} ({}): {line}", check.name, group.label);
            }
        }
    }
}
