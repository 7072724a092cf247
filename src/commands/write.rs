//! `psdiff write`: store the current tree as the baseline.

use super::print;
use crate::app::Error;
use crate::app::context::Context;
use crate::baseline::{self, WriteLock, Written};
use crate::exit::Exit;
use crate::identity;
use crate::record;
use crate::report::{self, Wanted};

pub fn run(context: &Context, verbose: bool) -> Result<Exit, Error> {
    let config = context.config()?;
    let rules = context.rules_of(&config)?;
    let path = &context.db;
    let lock = WriteLock::acquire(path)?;
    let current = baseline::read_bytes(path)?;
    let current_text = match &current {
        Some(bytes) => match baseline::parse(path, bytes.clone()) {
            Ok(b) => b.text,
            Err(e) => {
                // Never silently: say that the damaged file goes to .old.
                eprintln!("psdiff: warning: {e}");
                String::new()
            }
        },
        None => String::new(),
    };
    let view = context.view_with(&rules, identity::FIELDS)?;
    let text = view.text();
    let written = lock.replace(current.as_deref(), &text)?;
    // The rules and who each line is go with the baseline, readable by
    // whoever reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o777);
    let recorded = record::read(path).ok().flatten();
    if recorded.is_none_or(|r| r.sources != config.sources) {
        record::write(path, &config.sources, mode)?;
    }
    identity::write(
        path,
        &text,
        &identity::of_view(&view, &context.proc_root),
        mode,
    )?;
    let mut out = String::new();
    if verbose {
        out.push_str(&report::text(&report::changes(
            &current_text,
            &text,
            Wanted {
                missing: true,
                extra: true,
            },
        )));
    }
    match written {
        Written::Wrote => out.push_str(&format!("Wrote to {}\n", path.display())),
        Written::Unchanged => out.push_str(&format!("No changes to {}\n", path.display())),
    }
    print(&out)?;
    Ok(Exit::Clean)
}
