//! `psdiff dump`: the tree as a baseline would hold it.

use super::{print, print_with};
use crate::app::Error;
use crate::app::context::Context;
use crate::cli::DumpFormat;
use crate::exit::Exit;
use crate::snapshot::Fields;

pub fn run(context: &Context, format: DumpFormat) -> Result<Exit, Error> {
    let rules = context.rules()?;
    // JSON carries each process's unit, cgroup and container.
    let fields = Fields {
        cgroup: format == DumpFormat::Json,
        ..Fields::default()
    };
    let view = context.view_with(&rules, fields)?;
    match format {
        // Written as it goes: the whole text of a large host is half a MB.
        DumpFormat::Text => print_with(|out| view.write_text(out))?,
        DumpFormat::Json => {
            let mut json = serde_json::to_string(&view.lines).expect("lines serialize");
            json.push('\n');
            print(&json)?;
        }
    }
    Ok(Exit::Clean)
}
