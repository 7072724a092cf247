//! `psdiff config check` and `psdiff config defaults`.

use super::print;
use crate::app::Error;
use crate::app::context::Context;
use crate::cli::ConfigCommand;
use crate::config::DEFAULTS_TOML;
use crate::exit::Exit;

pub fn run(context: &Context, command: ConfigCommand) -> Result<Exit, Error> {
    match command {
        ConfigCommand::Check => {
            let config = context.config()?;
            let rules = context.rules_of(&config)?;
            let checks = crate::check::compile_all(&config, &context.users()?)?;
            let files: Vec<String> = config
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
                "OK: {} rules and {} checks for host {} ({from}, then the built-ins where not turned off)\n",
                rules.rules.len(),
                checks.len(),
                context.host_name.full
            ))?;
            for note in &config.host_notes {
                print(&format!("  {note}\n"))?;
            }
            for rule in rules.rules.iter().filter(|r| r.selector.strict) {
                if !rule.selector.kernel_attested() {
                    print(&format!(
                        "  warning: rule {:?} ({}) hides by what a local user can shape (titles, and the names of cgroups under their own user@UID.service: user_unit, container, cgroup); add exe, user or unit\n",
                        rule.name, rule.origin
                    ))?;
                }
            }
        }
        ConfigCommand::Defaults => print(DEFAULTS_TOML)?,
    }
    Ok(Exit::Clean)
}
