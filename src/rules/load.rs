//! Finding, reading and compiling rule files.
//!
//! Order: `--config FILE`, else `$PSDIFF_CONFIG`, else
//! /usr/local/etc/psdiff.toml, else /etc/psdiff.toml; then every `*.toml`
//! in the `psdiff.d/` folder beside it, in name order; then the built-in
//! defaults unless a file says `defaults = false`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use toml::Spanned;

use super::schema::{ActionKind, ConfigFile, MatchDef, RuleDef};
use super::{Action, ArgTarget, Matcher, Origin, Rule, RuleSet};

/// The built-in rules, as shipped in etc/psdiff.toml.
pub const DEFAULTS_TOML: &str = include_str!("../../etc/psdiff.toml");
const DEFAULTS_NAME: &str = "<built-in etc/psdiff.toml>";
const SEARCH_PATH: [&str; 2] = ["/usr/local/etc/psdiff.toml", "/etc/psdiff.toml"];

/// A configuration that cannot be used: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// Line and column, both from 1.
    pub position: Option<(usize, usize)>,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule \"{rule}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Loads the rules. `explicit` is `--config` or `$PSDIFF_CONFIG`; it must
/// exist. Without it, a missing file in the search path is no error.
pub fn load(explicit: Option<&Path>) -> Result<RuleSet, ConfigError> {
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

    let mut rules = Vec::new();
    let mut checks = Vec::new();
    let mut run_allow = Vec::new();
    let mut use_defaults = true;
    for path in &files {
        let parsed = parse_path(path)?;
        use_defaults &= parsed.defaults.unwrap_or(true);
        rules.extend(parsed.rules);
        checks.extend(parsed.checks);
        run_allow.extend(parsed.run_allow);
    }
    if use_defaults {
        rules.extend(parse(DEFAULTS_NAME, DEFAULTS_TOML)?.rules);
    }
    Ok(RuleSet {
        rules,
        checks,
        files,
        run_allow,
    })
}

/// One file on its own (`psdiff check --rules FILE`): its rules and checks,
/// without drop-ins or defaults.
pub fn load_file(path: &Path) -> Result<RuleSet, ConfigError> {
    let parsed = parse_path(path)?;
    Ok(RuleSet {
        rules: parsed.rules,
        checks: parsed.checks,
        files: vec![path.to_path_buf()],
        run_allow: parsed.run_allow,
    })
}

/// Reads and parses one rule file, named by its path.
fn parse_path(path: &Path) -> Result<ParsedFile, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: name.clone(),
        position: None,
        rule: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(&name, &text)
}

fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError {
                file: dir.display().to_string(),
                position: None,
                rule: None,
                message: format!("cannot read the drop-in folder: {e}"),
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// One file's rules and its `defaults` setting.
pub struct ParsedFile {
    pub defaults: Option<bool>,
    pub rules: Vec<Rule>,
    pub checks: Vec<crate::check::load::CheckSource>,
    pub run_allow: Vec<Vec<String>>,
}

/// Parses and compiles one file; `name` is how errors and `explain` name it.
pub fn parse(name: &str, text: &str) -> Result<ParsedFile, ConfigError> {
    let config: ConfigFile = toml::from_str(text).map_err(|e| deserialize_error(name, text, &e))?;
    let file: Arc<str> = Arc::from(name);
    let mut rules = Vec::with_capacity(config.rules.len());
    for spanned in config.rules {
        let span = spanned.span();
        let (line, column) = line_column(text, span.start);
        let origin = Origin {
            file: file.clone(),
            line,
            column,
        };
        rules.push(compile(spanned.into_inner(), origin, text)?);
    }
    if let Some(dup) = duplicate_name(&rules) {
        return Err(ConfigError {
            file: name.to_string(),
            position: Some((dup.origin.line, dup.origin.column)),
            rule: Some(dup.name.clone()),
            message: "another rule in this file has the same name; give each rule its own".into(),
        });
    }
    let text_arc: Arc<str> = Arc::from(text);
    let checks = config
        .checks
        .into_iter()
        .map(|spanned| {
            let (line, column) = line_column(text, spanned.span().start);
            crate::check::load::CheckSource {
                def: spanned.into_inner(),
                origin: Origin {
                    file: file.clone(),
                    line,
                    column,
                },
                text: text_arc.clone(),
            }
        })
        .collect();
    let mut run_allow = Vec::new();
    for entry in config.serve.map(|s| s.run_allow).unwrap_or_default() {
        let (line, column) = line_column(text, entry.span().start);
        let argv = entry.into_inner();
        let wrong = match argv.first() {
            None => Some("an empty entry would allow every command".to_string()),
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
                message: format!("[serve] run_allow: {message}"),
            });
        }
        run_allow.push(argv);
    }
    Ok(ParsedFile {
        defaults: config.defaults,
        rules,
        checks,
        run_allow,
    })
}

fn duplicate_name(rules: &[Rule]) -> Option<&Rule> {
    let mut seen = std::collections::HashSet::new();
    rules.iter().find(|r| !seen.insert(r.name.as_str()))
}

fn compile(def: RuleDef, origin: Origin, text: &str) -> Result<Rule, ConfigError> {
    let fail = |position: Option<(usize, usize)>, message: String| ConfigError {
        file: origin.file.to_string(),
        position: position.or(Some((origin.line, origin.column))),
        rule: Some(def.name.clone()),
        message,
    };
    if def.name.trim().is_empty() {
        return Err(fail(
            None,
            "the rule's `name` is empty; give it a name".into(),
        ));
    }
    let kind = def.action;
    let matcher_def = match &def.matcher {
        Some(m) if !m.is_empty() => m,
        _ => {
            return Err(fail(
                None,
                format!(
                    "action `{}` needs a `match` with at least one condition, e.g. match = {{ cmdline_prefix = [\"/usr/sbin/foo \"] }}",
                    kind.as_str()
                ),
            ));
        }
    };
    for (key, given, used_by) in parameters(&def) {
        if given && !used_by.contains(&kind) {
            let users: Vec<&str> = used_by.iter().map(|k| k.as_str()).collect();
            return Err(fail(
                None,
                format!(
                    "`{key}` does nothing for action `{}`; it belongs to action {}",
                    kind.as_str(),
                    users.join(", ")
                ),
            ));
        }
    }
    let regex = |s: &Spanned<String>, what: &str| {
        Regex::new(s.get_ref()).map_err(|e| {
            let detail = e.to_string().lines().last().unwrap_or_default().to_string();
            fail(
                Some(line_column(text, s.span().start)),
                format!("{what} is not a valid regex: {detail}"),
            )
        })
    };
    let matcher = compile_matcher(matcher_def, &regex)?;
    let require = |value: Option<String>, key: &str| {
        value.ok_or_else(|| fail(None, format!("action `{}` needs `{key}`", kind.as_str())))
    };
    let action = match kind {
        ActionKind::Hide => Action::Hide,
        ActionKind::HideTree => Action::HideTree,
        ActionKind::HideChildren => Action::HideChildren,
        ActionKind::Once => Action::Once,
        ActionKind::Rewrite => {
            let pattern = def.pattern.as_ref().ok_or_else(|| {
                fail(
                    None,
                    "action `rewrite` needs `pattern` (a regex) and `replacement`".into(),
                )
            })?;
            Action::Rewrite {
                pattern: regex(pattern, "`pattern`")?,
                replacement: require(def.replacement.clone(), "replacement")?,
            }
        }
        ActionKind::ReplaceArg => {
            let target = match (&def.option, def.position) {
                (Some(option), None) => ArgTarget::After(option.clone()),
                (None, Some(position)) => ArgTarget::Position(position),
                _ => {
                    return Err(fail(
                        None,
                        "action `replace-arg` needs exactly one of `option` (e.g. \"-id\") and `position`".into(),
                    ));
                }
            };
            Action::ReplaceArg {
                target,
                placeholder: def.placeholder.clone().unwrap_or_else(|| "<ID>".into()),
                last_path_part: def.last_path_part.unwrap_or(false),
            }
        }
        ActionKind::SortArgs => Action::SortArgs {
            from: def.from.unwrap_or(1),
        },
        ActionKind::Rename => Action::Rename {
            to: require(def.to.clone(), "to")?,
        },
    };
    Ok(Rule {
        name: def.name,
        origin,
        matcher,
        action,
    })
}

type CompileRegex<'a> = dyn Fn(&Spanned<String>, &str) -> Result<Regex, ConfigError> + 'a;

fn compile_matcher(def: &MatchDef, regex: &CompileRegex<'_>) -> Result<Matcher, ConfigError> {
    Ok(Matcher {
        cmdline: def
            .cmdline
            .as_ref()
            .map(|s| regex(s, "match.cmdline"))
            .transpose()?,
        cmdline_prefix: def.cmdline_prefix.clone().unwrap_or_default(),
        user: def.user.clone(),
        uid: def.uid,
        exe: def.exe.clone(),
        comm: def.comm.clone(),
        pid: def.pid,
        kernel_thread: def.kernel_thread,
    })
}

/// Each action parameter: its key, whether the rule gives it, and the
/// actions that use it.
fn parameters(def: &RuleDef) -> [(&'static str, bool, &'static [ActionKind]); 8] {
    use ActionKind::*;
    [
        ("pattern", def.pattern.is_some(), &[Rewrite]),
        ("replacement", def.replacement.is_some(), &[Rewrite]),
        ("option", def.option.is_some(), &[ReplaceArg]),
        ("position", def.position.is_some(), &[ReplaceArg]),
        ("placeholder", def.placeholder.is_some(), &[ReplaceArg]),
        (
            "last_path_part",
            def.last_path_part.is_some(),
            &[ReplaceArg],
        ),
        ("from", def.from.is_some(), &[SortArgs]),
        ("to", def.to.is_some(), &[Rename]),
    ]
}

/// Turns a TOML or schema error into one line with its position, the rule
/// it is in, and for an unknown key or value the nearest valid one.
fn deserialize_error(name: &str, text: &str, error: &toml::de::Error) -> ConfigError {
    let span = error.span();
    ConfigError {
        file: name.to_string(),
        position: span.as_ref().map(|s| line_column(text, s.start)),
        rule: span.and_then(|s| rule_name_at(text, s)),
        message: with_suggestion(error.message().trim()),
    }
}

/// serde says "unknown field `nmae`, expected one of `name`, `match`";
/// point at the likely intended one.
fn with_suggestion(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let unknown = ["unknown field", "unknown variant"]
        .iter()
        .find(|p| message.starts_with(*p));
    let (Some(kind), Some((wrong, valid))) = (unknown, quoted.split_first()) else {
        return message.to_string();
    };
    let what = if *kind == "unknown field" {
        "key"
    } else {
        "value"
    };
    let nearest = valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(wrong, v), *v))
        .filter(|(d, _)| *d <= 2.max(wrong.chars().count() / 2))
        .min();
    let list = valid.join(", ");
    match nearest {
        Some((_, v)) => format!("unknown {what} `{wrong}`; did you mean `{v}`? (valid: {list})"),
        None if valid.is_empty() => format!("unknown {what} `{wrong}`"),
        None => format!("unknown {what} `{wrong}` (valid: {list})"),
    }
}

/// The name of the `[[rule]]` whose table holds `span`, if any: the rule
/// whose header is the last table header before it.
fn rule_name_at(text: &str, span: Range<usize>) -> Option<String> {
    let table = toml::de::DeTable::parse(text).ok()?;
    let mut headers: Vec<(usize, Option<String>)> = Vec::new();
    for (key, value) in table.get_ref() {
        let is_rule = key.get_ref() == "rule" || key.get_ref() == "check";
        let tables: Vec<_> = match value.get_ref().as_array() {
            Some(array) => array.iter().collect(),
            None => vec![value],
        };
        for t in tables.into_iter().filter(|t| t.get_ref().is_table()) {
            let name = is_rule
                .then(|| Some(t.get_ref().get("name")?.get_ref().as_str()?.to_string()))
                .flatten();
            headers.push((t.span().start, name));
        }
    }
    headers
        .into_iter()
        .filter(|(start, _)| *start <= span.start)
        .max_by_key(|(start, _)| *start)?
        .1
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
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
    fn the_built_in_defaults_compile() {
        let parsed = parse(DEFAULTS_NAME, DEFAULTS_TOML).unwrap();
        assert!(parsed.rules.len() >= 10);
        assert_eq!(parsed.defaults, None);
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
            e.contains("rule \"x\": unknown key `comand`; did you mean `comm`?"),
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
    fn bad_regex_points_at_the_pattern() {
        let e = error("[[rule]]\nname = \"re\"\nmatch = { cmdline = \"a(\" }\naction = \"hide\"\n");
        assert!(
            e.starts_with("t.toml:3:21: rule \"re\": match.cmdline is not a valid regex"),
            "{e}"
        );
    }

    #[test]
    fn action_without_match_and_misplaced_parameters() {
        let e = error("[[rule]]\nname = \"m\"\naction = \"hide\"\n");
        assert!(
            e.starts_with("t.toml:1:1: rule \"m\": action `hide` needs a `match`"),
            "{e}"
        );
        let e = error("[[rule]]\nname = \"m\"\nmatch = {}\naction = \"hide\"\n");
        assert!(e.contains("needs a `match`"), "{e}");
        let e =
            error("[[rule]]\nname = \"m\"\nmatch = { pid = 1 }\naction = \"hide\"\nto = \"X\"\n");
        assert!(
            e.contains("`to` does nothing for action `hide`; it belongs to action rename"),
            "{e}"
        );
        let e = error("[[rule]]\nname = \"m\"\nmatch = { pid = 1 }\naction = \"replace-arg\"\n");
        assert!(e.contains("needs exactly one of `option`"), "{e}");
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
}
