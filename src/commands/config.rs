//! `psdiff config check` and `psdiff config defaults`.

use super::{Context, print};
use crate::cli::ConfigCommand;
use crate::error::{Error, Exit};
use crate::rules::DEFAULTS_TOML;

pub fn run(context: &Context, command: ConfigCommand) -> Result<Exit, Error> {
    match command {
        ConfigCommand::Check => {
            let rules = context.rules()?;
            let checks = crate::check::load::compile_all(&rules.checks)?;
            let files: Vec<String> = rules
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            let from = if files.is_empty() {
                "no rule files".to_string()
            } else {
                files.join(", ")
            };
            print(&format!(
                "OK: {} rules and {} checks ({from}, then the built-ins where not turned off)\n",
                rules.rules.len(),
                checks.len()
            ))?;
        }
        ConfigCommand::Defaults => print(DEFAULTS_TOML)?,
    }
    Ok(Exit::Clean)
}
