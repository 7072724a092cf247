//! `psdiff manual add|remove USER CMDLINE`: edit a child-of-INIT line of
//! the baseline by hand, with the same locked, atomic write as `write`.

use super::print;
use crate::app::Error;
use crate::app::context::Context;
use crate::baseline::{self, WriteLock};
use crate::cli::ManualCommand;
use crate::exit::Exit;
use crate::render;

/// Depth of a child of INIT.
const DEPTH: usize = 2;

pub fn run(context: &Context, command: ManualCommand) -> Result<Exit, Error> {
    let (ManualCommand::Add { user, cmdline } | ManualCommand::Remove { user, cmdline }) = &command;
    check_field("USER", user)?;
    check_field("CMDLINE", cmdline)?;
    // A line no process could ever match would be missing forever.
    if matches!(command, ManualCommand::Add { .. })
        && user.parse::<u32>().is_err()
        && !context.users()?.exists(user)
    {
        return Err(Error::Usage(format!(
            "there is no user {user:?} on this host, so no process could ever match the line; give a user that exists (or a uid)"
        )));
    }
    let path = &context.db;
    let lock = WriteLock::acquire(path)?;
    let Some(bytes) = baseline::read_bytes(path)? else {
        eprintln!(
            "psdiff: no baseline at {}; run `psdiff write` first, then edit it",
            path.display()
        );
        return Ok(Exit::Report);
    };
    let current = baseline::parse(path, bytes.clone())?;
    let lines: Vec<&str> = current.lines().collect();
    let target = render::line(DEPTH, cmdline, user);
    let Some(init) = lines
        .iter()
        .position(|l| render::parse_line(l).is_some_and(|p| p.depth == 1 && p.cmdline == "INIT"))
    else {
        eprintln!(
            "psdiff: {} has no `  INIT  {{user=...}}` line to edit under",
            path.display()
        );
        return Ok(Exit::Report);
    };
    let end = subtree_end(&lines, init);
    let (edited, message) = match command {
        ManualCommand::Add { .. } => {
            if lines[init + 1..end].contains(&target.as_str()) {
                eprintln!(
                    "psdiff: {} has the line {target:?} under INIT already; nothing added",
                    path.display()
                );
                return Ok(Exit::Report);
            }
            let at = insert_position(&lines, init, end, cmdline, user);
            let mut edited = lines.clone();
            edited.insert(at, &target);
            (edited, format!("Added to {}: {target}\n", path.display()))
        }
        ManualCommand::Remove { .. } => {
            let mut edited = Vec::with_capacity(lines.len());
            let (mut removed, mut under) = (0, 0);
            let mut i = 0;
            while i < lines.len() {
                if i > init && i < end && lines[i] == target {
                    let skip_to = subtree_end(&lines, i);
                    removed += 1;
                    under += skip_to - i - 1;
                    i = skip_to;
                } else {
                    edited.push(lines[i]);
                    i += 1;
                }
            }
            if removed == 0 {
                eprintln!(
                    "psdiff: {} has no line {target:?} under INIT; nothing removed",
                    path.display()
                );
                return Ok(Exit::Report);
            }
            let mut message = format!("Removed from {}: {target}", path.display());
            if removed > 1 {
                message.push_str(&format!(" ({removed} times)"));
            }
            if under > 0 {
                message.push_str(&format!(" and {under} line(s) under it"));
            }
            message.push('\n');
            (edited, message)
        }
    };
    let mut text = edited.join("\n");
    text.push('\n');
    lock.replace(Some(&bytes), &text)?;
    print(&message)?;
    Ok(Exit::Clean)
}

fn check_field(what: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty()
        || render::printable(value.as_bytes()) != value
        || value.ends_with(' ')
    {
        return Err(Error::Usage(format!(
            "{what} {value:?} cannot be a baseline field: it is empty, ends with a space or holds control characters"
        )));
    }
    Ok(())
}

fn depth(line: &str) -> usize {
    render::parse_line(line).map_or(0, |p| p.depth)
}

/// The index after the last line under `lines[at]`.
fn subtree_end(lines: &[&str], at: usize) -> usize {
    let d = depth(lines[at]);
    lines[at + 1..]
        .iter()
        .position(|l| depth(l) <= d)
        .map_or(lines.len(), |i| at + 1 + i)
}

/// Where a new child of INIT goes: before the first sibling that sorts
/// after it (by cmdline, then user), as the dump would place it.
fn insert_position(lines: &[&str], init: usize, end: usize, cmdline: &str, user: &str) -> usize {
    let mut i = init + 1;
    while i < end {
        if let Some(p) = render::parse_line(lines[i])
            && p.depth == DEPTH
            && (p.cmdline, p.user) > (cmdline, user)
        {
            return i;
        }
        i = subtree_end(lines, i);
    }
    end
}
