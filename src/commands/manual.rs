//! `psdiff manual add|remove USER CMDLINE`: edit a child-of-INIT line of
//! the baseline by hand, with the same locked, atomic write as `write`.

use super::print;
use crate::app::Error;
use crate::app::context::Context;
use crate::baseline::{self, Unchanged, WriteLock};
use crate::cli::ManualCommand;
use crate::exit::Exit;
use crate::render;

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
    let edited = match command {
        ManualCommand::Add { .. } => current
            .add_under_init(cmdline, user)
            .map(|(text, line)| (text, format!("Added to {}: {line}\n", path.display()))),
        ManualCommand::Remove { .. } => current.remove_under_init(cmdline, user).map(|r| {
            let mut message = format!("Removed from {}: {}", path.display(), r.line);
            if r.times > 1 {
                message.push_str(&format!(" ({} times)", r.times));
            }
            if r.under > 0 {
                message.push_str(&format!(" and {} line(s) under it", r.under));
            }
            message.push('\n');
            (r.text, message)
        }),
    };
    let (text, message) = match edited {
        Ok(edited) => edited,
        Err(unchanged) => {
            let why = match unchanged {
                Unchanged::NoInit => "has no `  INIT  {user=...}` line to edit under".to_string(),
                Unchanged::Present(line) => {
                    format!("has the line {line:?} under INIT already; nothing added")
                }
                Unchanged::Absent(line) => {
                    format!("has no line {line:?} under INIT; nothing removed")
                }
            };
            eprintln!("psdiff: {} {why}", path.display());
            return Ok(Exit::Report);
        }
    };
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
