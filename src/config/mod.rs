//! The configuration file: finding it and its drop-ins, reading them into
//! one `Config`, and errors that point at FILE:LINE:COLUMN. What the
//! tables mean is for their owners: `rules` compiles the `[[rule]]`s,
//! `check` the `[[check]]`s, `select` every `match`.
//!
//! Order: `--config FILE`, else `$PSDIFF_CONFIG`, else
//! /usr/local/etc/psdiff.toml, else /etc/psdiff.toml; then every `*.toml`
//! in the `psdiff.d/` folder beside it, in name order; then the built-in
//! defaults unless a file says `defaults = false`.

mod error;
pub mod hosts;
pub mod schema;
pub mod trust;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{ConfigError, Located, Origin, line_column};
pub use hosts::HostName;
use schema::{CheckDef, ConfigFile, RuleDef};
pub use schema::{glob, is_glob};

/// The built-in rules, as shipped in etc/psdiff.toml.
pub const DEFAULTS_TOML: &str = include_str!("../../etc/psdiff.toml");
const DEFAULTS_NAME: &str = "<built-in etc/psdiff.toml>";
const SEARCH_PATH: [&str; 2] = ["/usr/local/etc/psdiff.toml", "/etc/psdiff.toml"];

/// Everything the files say, in the order read: the operator's files
/// first, then the built-ins.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Every file read, in order (the built-ins are not a file).
    pub files: Vec<PathBuf>,
    /// The text of every source of rules, in order, the built-ins last
    /// when they are used: what `psdiff write` records beside the
    /// baseline, so `show` can tell when the rules changed.
    pub sources: Vec<Source>,
    pub rules: Vec<Located<RuleDef>>,
    pub checks: Vec<Located<CheckDef>>,
    /// `[serve] run_allow`: the argv prefixes `POST /api/ps` may run.
    pub run_allow: Vec<Vec<String>>,
    /// `[groups]` of every file: host groups by name.
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// After `for_host`: why each rule or check with host conditions
    /// applies, and what was left out, as `config check` says it.
    pub host_notes: Vec<String>,
    /// After `for_host`: the `[[check]]` tables left out, as for other
    /// hosts. A fleet's file may have none for this one, which is no error.
    pub checks_elsewhere: usize,
}

/// One file's name and text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Config {
    fn append(&mut self, file: ParsedFile) {
        for (name, members) in file.groups {
            self.groups.entry(name).or_default().extend(members);
        }
        self.rules.extend(file.rules);
        self.checks.extend(file.checks);
        self.run_allow.extend(file.run_allow);
        self.sources.push(file.source);
    }

    /// The rules and checks that apply on `host`; the others are left
    /// out as if not written. A group that no file defines is an error.
    pub fn for_host(mut self, host: &HostName) -> Result<Config, ConfigError> {
        let mut notes = Vec::new();
        let (mut rules_out, mut checks_out) = (Vec::new(), Vec::new());
        let rules = hosts::keep(
            std::mem::take(&mut self.rules),
            host,
            &self.groups,
            |r: &RuleDef| &r.name,
            |r: &RuleDef| r.host_conditions(),
            &mut rules_out,
        )?;
        let checks = hosts::keep(
            std::mem::take(&mut self.checks),
            host,
            &self.groups,
            |c: &CheckDef| &c.name,
            |c: &CheckDef| c.host_conditions(),
            &mut checks_out,
        )?;
        for (what, name, why) in rules
            .iter()
            .map(|(r, why)| ("rule", &r.def.name, why))
            .chain(checks.iter().map(|(c, why)| ("check", &c.def.name, why)))
        {
            if let Some(why) = why {
                notes.push(format!("{what} {name:?} applies: {why}"));
            }
        }
        self.checks_elsewhere = checks_out.len();
        for (what, left_out) in [("rule", rules_out), ("check", checks_out)] {
            for name in left_out {
                notes.push(format!(
                    "{what} {name:?} does not apply on host {}",
                    host.full
                ));
            }
        }
        self.rules = rules.into_iter().map(|(r, _)| r).collect();
        self.checks = checks.into_iter().map(|(c, _)| c).collect();
        self.host_notes = notes;
        Ok(self)
    }

    /// The rules of `sources` alone (a record `psdiff write` kept).
    pub fn from_sources(sources: &[Source]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for source in sources {
            config.append(parse(&source.name, &source.text)?);
        }
        Ok(config)
    }
}

/// Loads the configuration. `explicit` is `--config` or `$PSDIFF_CONFIG`;
/// it must exist. Without it, a missing file in the search path is no
/// error.
pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    let main = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => SEARCH_PATH.iter().map(PathBuf::from).find(|p| p.exists()),
    };
    let drop_in_dir = match &main {
        Some(path) => path.parent().unwrap_or(Path::new(".")).join("psdiff.d"),
        None => PathBuf::from("/etc/psdiff.d"),
    };
    let mut files: Vec<PathBuf> = main.into_iter().collect();
    files.extend(drop_ins(&drop_in_dir)?);

    let mut config = Config::default();
    let mut use_defaults = true;
    for path in &files {
        let parsed = parse_path(path)?;
        use_defaults &= parsed.defaults.unwrap_or(true);
        config.append(parsed);
    }
    if use_defaults {
        // A rule of the operator's named like a built-in one takes its
        // place: the way to change a built-in bound or list.
        let defaults = parse(DEFAULTS_NAME, DEFAULTS_TOML)?;
        let taken: std::collections::HashSet<String> =
            config.rules.iter().map(|r| r.def.name.clone()).collect();
        config.rules.extend(
            defaults
                .rules
                .into_iter()
                .filter(|r| !taken.contains(&r.def.name)),
        );
        config.sources.push(defaults.source);
    }
    config.files = files;
    Ok(config)
}

/// One file on its own (`psdiff check --rules FILE`), without drop-ins or
/// defaults.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    config.append(parse_path(path)?);
    config.files = vec![path.to_path_buf()];
    Ok(config)
}

/// The built-in rules alone.
#[cfg(test)]
pub fn defaults() -> Result<Config, ConfigError> {
    let mut config = Config::default();
    config.append(parse(DEFAULTS_NAME, DEFAULTS_TOML)?);
    Ok(config)
}

/// Reads one file, refusing one that someone else could change
/// (`trust`): its rules run as root.
fn parse_path(path: &Path) -> Result<ParsedFile, ConfigError> {
    use std::io::Read;
    let name = path.display().to_string();
    let unreadable = |e: std::io::Error| ConfigError::file(&name, format!("cannot read: {e}"));
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if is_null_device(&meta) {
        // `--config /dev/null`: the documented way to say "no file".
        return parse(&name, "");
    }
    if !meta.is_file() {
        return Err(ConfigError::file(&name, "is not a regular file"));
    }
    trust::file(path, &meta).map_err(|u| ConfigError::file(&name, format!("refused: {u}")))?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(unreadable)?;
    parse(&name, &text)
}

/// The kernel's null device (char 1:3), whatever its name or mode.
fn is_null_device(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device()
        && nix::sys::stat::major(meta.rdev()) == 1
        && nix::sys::stat::minor(meta.rdev()) == 3
}

fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => {
            trust::drop_in_folder(dir)
                .map_err(|u| ConfigError::file(dir.display(), format!("refused: {u}")))?;
            entries
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::file(
                dir.display(),
                format!("cannot read the drop-in folder: {e}"),
            ));
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// What one file says.
#[derive(Debug)]
pub struct ParsedFile {
    pub source: Source,
    pub defaults: Option<bool>,
    pub rules: Vec<Located<RuleDef>>,
    pub checks: Vec<Located<CheckDef>>,
    pub run_allow: Vec<Vec<String>>,
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
}

/// Parses one file; `name` is how errors and `explain` name it. Checks
/// what can be checked without knowing what a table means: the schema,
/// unique rule names, and `[serve] run_allow`.
pub fn parse(name: &str, text: &str) -> Result<ParsedFile, ConfigError> {
    let file: ConfigFile =
        toml::from_str(text).map_err(|e| error::deserialize_error(name, text, &e))?;
    let name_arc: Arc<str> = Arc::from(name);
    let text_arc: Arc<str> = Arc::from(text);
    let rules: Vec<Located<RuleDef>> = file
        .rules
        .into_iter()
        .map(|r| Located::new("rule", r, &name_arc, &text_arc))
        .collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = rules.iter().find(|r| !seen.insert(r.def.name.as_str())) {
        return Err(dup.error(
            &dup.def.name,
            None,
            "another rule in this file has the same name; give each rule its own".into(),
        ));
    }
    let checks = file
        .checks
        .into_iter()
        .map(|c| Located::new("check", c, &name_arc, &text_arc))
        .collect();
    let mut run_allow = Vec::new();
    for entry in file.serve.map(|s| s.run_allow).unwrap_or_default() {
        let (line, column) = line_column(text, entry.span().start);
        let argv = entry.into_inner();
        let dots = argv.iter().position(|a| a == "...");
        let wrong = match argv.first() {
            None => Some("an empty entry would allow every command".to_string()),
            Some(_) if dots.is_some_and(|at| at + 1 != argv.len() || at == 0) => Some(
                "\"...\" (any further arguments) may only end an entry, after the program"
                    .to_string(),
            ),
            Some(program) if !program.starts_with('/') => Some(format!(
                "`{program}` is not an absolute path; name the program as /usr/bin/{program} (or wherever it is), so PATH cannot change what runs"
            )),
            Some(_) => None,
        };
        if let Some(message) = wrong {
            return Err(ConfigError {
                file: name.to_string(),
                position: Some((line, column)),
                rule: None,
                table: "rule",
                message: format!("[serve] run_allow: {message}"),
            });
        }
        run_allow.push(argv);
    }
    Ok(ParsedFile {
        source: Source {
            name: name.to_string(),
            text: text.to_string(),
        },
        defaults: file.defaults,
        rules,
        checks,
        run_allow,
        groups: file.groups.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match parse("t.toml", text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_key_names_rule_position_and_nearest_key() {
        let e =
            error("[[rule]]\nname = \"cron\"\nmatch = { comm = \"cron\" }\nactoin = \"hide\"\n");
        assert!(
            e.starts_with(
                "t.toml:4:1: rule \"cron\": unknown key `actoin`; did you mean `action`?"
            ),
            "{e}"
        );
        let e = error("[[rule]]\nname = \"x\"\nmatch = { comand = \"cron\" }\naction = \"hide\"\n");
        assert!(
            e.contains("rule \"x\": unknown key `comand`; did you mean `command`?"),
            "{e}"
        );
        let e = error("[[rule]]\nname = \"x\"\nmatch = { comm = \"c\" }\naction = \"hide-tre\"\n");
        assert!(
            e.contains(
                "t.toml:4:10: rule \"x\": unknown value `hide-tre`; did you mean `hide-tree`?"
            ),
            "{e}"
        );
    }

    #[test]
    fn malformed_toml_has_a_position() {
        let e = error("[[rule]\nname = \"x\"\n");
        assert!(e.starts_with("t.toml:1:"), "{e}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let rule = "[[rule]]\nname = \"d\"\nmatch = { pid = 1 }\naction = \"hide\"\n";
        let e = error(&format!("{rule}{rule}"));
        assert!(e.starts_with("t.toml:5:1: rule \"d\": another rule"), "{e}");
    }

    #[test]
    fn run_allow_names_programs_by_absolute_path() {
        let e = error("[serve]\nrun_allow = [[\"systemctl\", \"status\"]]\n");
        assert!(
            e.starts_with("t.toml:2:14: [serve] run_allow: `systemctl` is not an absolute path"),
            "{e}"
        );
    }
}
