//! `psdiff explain [PID...]`: for each process, the rewrites applied to its
//! cmdline and the rule that decided whether it is shown.

use std::fmt::Write;
use std::time::Duration;

use super::print;
use crate::app::Error;
use crate::app::context::Context;
use crate::exit::Exit;
use crate::identity;
use crate::machine::Machine;
use crate::render;
use crate::rules::{Decision, RuleSet, View};
use crate::snapshot::{self, Fields, Process};

pub fn run(context: &Context, pids: &[u32]) -> Result<Exit, Error> {
    let config = context.config()?;
    let rules = context.rules_of(&config)?;
    let view = context.view_with(
        &rules,
        Fields {
            exe: true,
            cgroup: true,
            ..Fields::default()
        },
    )?;
    let machine = Machine::of(&context.proc_root);
    let recorded = identity::read(&context.db).unwrap_or_else(|e| {
        eprintln!("psdiff: warning: {e}");
        identity::Recorded::default()
    });
    let mut missing = Vec::new();
    let targets: Vec<usize> = if pids.is_empty() {
        (0..view.tree.len()).collect()
    } else {
        pids.iter()
            .filter_map(|&pid| {
                let found = view.tree.index_of(pid);
                if found.is_none() {
                    missing.push(pid);
                }
                found
            })
            .collect()
    };
    let mut out = String::new();
    for i in targets {
        let age = snapshot::age(&context.proc_root, &view.tree.processes[i]);
        explain_one(
            &mut out,
            &view,
            &rules,
            &config.host_notes,
            &machine,
            i,
            age,
        );
        let process = &view.tree.processes[i];
        if view.decisions[i].is_shown() {
            let line = render::line(view.tree.depth(i), &view.cmdlines[i], &process.user);
            let live = identity::LiveLine::of(process, &context.proc_root);
            if let Some(said) = recorded.explain(&line, &live) {
                let _ = writeln!(out, "  identity {said}");
            }
        }
    }
    print(&out)?;
    for pid in &missing {
        eprintln!("psdiff: explain: no process with pid {pid} (it may have exited)");
    }
    Ok(if missing.is_empty() {
        Exit::Clean
    } else {
        Exit::Report
    })
}

fn explain_one(
    out: &mut String,
    view: &View,
    rules: &RuleSet,
    host_notes: &[String],
    machine: &Machine,
    i: usize,
    age: Option<Duration>,
) {
    let tree = &view.tree;
    let process = &tree.processes[i];
    let rule_ref = |r: usize| {
        let rule = &rules.rules[r];
        // Which host condition let it in, where it has one.
        let applies = format!("rule {:?} applies: ", rule.name);
        let because = host_notes
            .iter()
            .find_map(|n| n.strip_prefix(&applies))
            .map_or(String::new(), |why| format!(" (here because {why})"));
        format!(
            "rule \"{}\" ({}, {}) on {}{because}",
            rule.name,
            rule.action.kind().as_str(),
            rule.origin,
            rule.selector.keys().join(", ")
        )
    };
    let describe = |j: usize| format!("{} ({})", tree.processes[j].pid, view.cmdlines[j]);
    let _ = writeln!(
        out,
        "pid {} (ppid {}, user {}, comm {})",
        process.pid,
        process.ppid,
        process.user,
        render::printable(&process.comm)
    );
    let _ = writeln!(out, "  cmdline  {}", render::cmdline(process));
    if let Some(exe) = &process.exe {
        let _ = writeln!(
            out,
            "  exe      {}",
            render::printable(exe.as_os_str().as_encoded_bytes())
        );
    }
    identity(out, process, machine);
    if let Some(age) = age {
        let _ = writeln!(out, "  started  {} ago", human(age));
    }
    for rewrite in &view.rewrites[i] {
        let _ = writeln!(out, "  rewrite  by {}", rule_ref(rewrite.rule));
        let _ = writeln!(out, "           before: {}", rewrite.before);
        let _ = writeln!(out, "           after:  {}", rewrite.after);
    }
    let verdict = match &view.decisions[i] {
        Decision::Shown => {
            // A tree is hidden only through processes that run (rules::shape).
            let held = (!machine.held_stopped(process))
                .then(|| {
                    std::iter::successors(tree.parent(i), |&j| tree.parent(j))
                        .find(|&j| machine.held_stopped(&tree.processes[j]))
                })
                .flatten();
            match held {
                Some(j) => format!(
                    "shown    no visibility rule applies: it runs below {}, which is stopped, \
                     and an ancestor's rule hides nothing through a stopped process",
                    describe(j)
                ),
                None => "shown    no visibility rule applies".to_string(),
            }
        }
        Decision::ShownOnce { rule } => {
            format!(
                "shown    by {}: the first of its identical siblings",
                rule_ref(*rule)
            )
        }
        Decision::Hidden {
            rule,
            ancestor: None,
        } => format!("hidden   by {}: the process matches", rule_ref(*rule)),
        Decision::Hidden {
            rule,
            ancestor: Some(a),
        } => format!(
            "hidden   by {}: its ancestor {} matches",
            rule_ref(*rule),
            describe(*a)
        ),
        Decision::Duplicate { rule, first } => format!(
            "hidden   by {}: same parent, user and cmdline as pid {}, which is shown",
            rule_ref(*rule),
            tree.processes[*first].pid
        ),
    };
    let _ = writeln!(out, "  {verdict}");
    if view.decisions[i].is_shown() {
        let line = render::line(tree.depth(i), &view.cmdlines[i], &process.user);
        let _ = writeln!(out, "  line     {line:?}");
    } else if !view.rewrites[i].is_empty() {
        let _ = writeln!(out, "  would print as {:?}", view.cmdlines[i]);
    }
}

/// What the kernel attests beyond the basics: the cgroup and what systemd,
/// logind and the container runtime make of it; and a disguise.
fn identity(out: &mut String, process: &Process, machine: &Machine) {
    if let Some(cgroup) = process.cgroup.as_deref() {
        let _ = writeln!(
            out,
            "  cgroup   {}",
            render::printable(cgroup.path.as_bytes())
        );
        if let Some(unit) = &cgroup.unit {
            let slice = cgroup.slice.as_deref().unwrap_or("-");
            let timer = if machine.is_timer_job(unit) {
                ", started by a timer"
            } else {
                ""
            };
            let _ = writeln!(out, "  unit     {unit} (slice {slice}{timer})");
        }
        if let Some(unit) = &cgroup.user_unit {
            let _ = writeln!(out, "  user unit {unit}");
        }
        if let Some(session) = &cgroup.session {
            let state = machine.logins().session_state(session).unwrap_or("gone");
            let _ = writeln!(out, "  session  {session} ({state})");
        } else if let Some(uid) = cgroup.user_manager {
            let state = machine.logins().user_state(uid).unwrap_or("no record");
            let _ = writeln!(out, "  login    user manager of uid {uid} (user {state})");
        }
        if let Some(container) = &cgroup.container {
            let name = machine
                .container_name(container)
                .unwrap_or("(no name kept)");
            let _ = writeln!(
                out,
                "  container {} {} {}",
                container.runtime, name, container.id
            );
        }
    }
    if process.disguised == Some(true) {
        let _ = writeln!(
            out,
            "  disguised argv[0] names another program than the one running"
        );
    }
    if process.uids.real != process.uids.effective {
        let _ = writeln!(
            out,
            "  setuid   runs as uid {} for uid {}: no rule that hides takes its user",
            process.uids.effective, process.uids.real
        );
    }
    if process.exe.is_some() {
        for doubt in machine.doubts(process) {
            let _ = writeln!(out, "  doubted  {doubt}: no rule that hides takes its exe");
        }
    }
}

fn human(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}
