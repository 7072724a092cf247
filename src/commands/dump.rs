//! `psdiff dump`: the tree as a baseline would hold it.

use super::print;
use crate::cli::DumpFormat;
use crate::context::Context;
use crate::error::{Error, Exit};

pub fn run(context: &Context, format: DumpFormat) -> Result<Exit, Error> {
    let rules = context.rules()?;
    let view = context.view(&rules)?;
    match format {
        DumpFormat::Text => print(&view.text())?,
        DumpFormat::Json => {
            let mut json = serde_json::to_string(&view.lines).expect("lines serialize");
            json.push('\n');
            print(&json)?;
        }
    }
    Ok(Exit::Clean)
}
