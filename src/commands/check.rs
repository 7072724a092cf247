//! `psdiff check`: evaluate the checks on a snapshot (two, a CPU interval
//! apart, when a check measures CPU), look again at failures with
//! `--retry`, take the configured actions, and report.

use std::collections::HashMap;

use super::emit;
use crate::app::Error;
use crate::app::context::Context;
use crate::check::actions::{self, Guard};
use crate::check::{self, Check, Level, Outcome};
use crate::cli::{CheckArgs, CheckFormat};
use crate::config;
use crate::exit::Exit;
use crate::exit::NagiosState;
use crate::report::{json, mon, nagios, prometheus};
use crate::snapshot::Process;

pub fn run(context: &Context, args: &CheckArgs) -> Result<Exit, Error> {
    let output = args.output.as_deref();
    let found = compile(context, args).and_then(|checks| {
        let (outcomes, processes) = crate::app::measure::evaluate_settled(
            context,
            &checks,
            args.retry,
            args.interval,
            Some(&args.state_dir),
        )?;
        Ok((checks, outcomes, processes))
    });
    let (checks, outcomes, processes) = match found {
        Ok(found) => found,
        Err(e) if args.format == CheckFormat::Nagios => {
            emit(output, &format!("PROCS UNKNOWN - {e}\n"))?;
            return Ok(Exit::Nagios(NagiosState::Unknown));
        }
        Err(e) if args.format == CheckFormat::Prometheus => {
            emit(output, &prometheus::down("psdiff_check"))?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    take_actions(context, &checks, &outcomes, &processes, args.dry_run);
    for line in mon::not_applicable(&checks, &outcomes) {
        eprintln!("psdiff: {line}");
    }
    let failed = outcomes.iter().any(|o| o.level().is_some());
    let text = match args.format {
        CheckFormat::Mon => mon::checks(&checks, &outcomes),
        CheckFormat::Json => json::checks(&checks, &outcomes),
        CheckFormat::Prometheus => prometheus::checks(&checks, &outcomes),
        CheckFormat::Nagios => {
            let (text, state) = nagios::checks(&checks, &outcomes);
            emit(output, &text)?;
            return Ok(Exit::Nagios(state));
        }
    };
    emit(output, &text)?;
    Ok(if failed { Exit::Report } else { Exit::Clean })
}

/// The checks of the arguments, else of `--rules FILE`, else of the config.
fn compile(context: &Context, args: &CheckArgs) -> Result<Vec<Check>, Error> {
    if args.needs_restart {
        return Ok(vec![check::needs_restart()]);
    }
    if !args.specs.is_empty() {
        if args.rules.is_some() {
            return Err(Error::Usage(
                "give NAME:MIN-MAX rules or --rules FILE, not both".into(),
            ));
        }
        return args
            .specs
            .iter()
            .map(|s| check::parse_spec(s).map_err(Error::Usage))
            .collect();
    }
    let config = match &args.rules {
        Some(file) => config::load_file(file)?.for_host(&context.host_name)?,
        None => context.config()?,
    };
    let checks = check::compile_all(&config, &context.users()?)?;
    if checks.is_empty() && config.checks_elsewhere > 0 {
        // A fleet's file with no check for this host: all is as configured.
        eprintln!(
            "psdiff: no check applies on host {}: the {} [[check]] table(s) are for other hosts (`psdiff config check` lists them)",
            context.host_name.full, config.checks_elsewhere
        );
        return Ok(checks);
    }
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
