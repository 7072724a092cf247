//! `[[rule]]` tables into rules.

use super::{Action, ArgTarget, Rule, RuleSet};
use crate::config::schema::{ActionKind, RuleDef};
use crate::config::{Config, ConfigError, Located};
use crate::select::{Command, Selector, regex};
use crate::snapshot::UserNames;

impl RuleSet {
    /// Compiles every `[[rule]]` of `config`, in order.
    pub fn compile(config: &Config, users: &UserNames) -> Result<RuleSet, ConfigError> {
        let rules = config
            .rules
            .iter()
            .map(|r| compile(r, users))
            .collect::<Result<_, _>>()?;
        Ok(RuleSet { rules })
    }
}

fn compile(located: &Located<RuleDef>, users: &UserNames) -> Result<Rule, ConfigError> {
    let def = &located.def;
    let fail = |span, message| located.error(&def.name, span, message);
    if def.name.trim().is_empty() {
        return Err(fail(
            None,
            "the rule's `name` is empty; give it a name".into(),
        ));
    }
    let kind = def.action;
    let hides = matches!(
        kind,
        ActionKind::Hide | ActionKind::HideTree | ActionKind::HideChildren | ActionKind::Once
    );
    let selector = match &def.matcher {
        Some(m) if !m.is_empty() && hides => Selector::compile(m, users, &fail)?.into_strict(),
        Some(m) if !m.is_empty() => Selector::compile(m, users, &fail)?,
        _ => {
            return Err(fail(
                None,
                format!(
                    "action `{}` needs a `match` with at least one condition, e.g. match = {{ exe = \"/usr/sbin/foo\" }}",
                    kind.as_str()
                ),
            ));
        }
    };
    if selector.command() == Some(&Command::Any) {
        return Err(fail(
            None,
            "`command = \"*\"` is for counting checks; a rule names its processes".into(),
        ));
    }
    for (key, given, used_by) in parameters(def) {
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
    let action = action(def, &fail)?;
    for (key, text) in [
        ("replacement", &def.replacement),
        ("placeholder", &def.placeholder),
        ("to", &def.to),
    ] {
        if let Some(c) = text
            .as_deref()
            .and_then(|t| t.chars().find(|&c| crate::render::visible(c) != c))
        {
            return Err(fail(
                None,
                format!(
                    "`{key}` holds {c:?}: a line of a dump is one line of printable text; remove it"
                ),
            ));
        }
    }
    Ok(Rule {
        name: def.name.clone(),
        origin: located.origin.clone(),
        selector,
        action,
    })
}

fn action(def: &RuleDef, fail: &crate::select::Fail) -> Result<Action, ConfigError> {
    let kind = def.action;
    let require = |value: Option<String>, key: &str| {
        value.ok_or_else(|| fail(None, format!("action `{}` needs `{key}`", kind.as_str())))
    };
    Ok(match kind {
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
                pattern: regex(pattern, "`pattern`", fail)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        let parsed = crate::config::parse("t.toml", text).unwrap();
        let config = Config {
            rules: parsed.rules,
            ..Config::default()
        };
        match RuleSet::compile(&config, &UserNames::from_nss()) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_built_in_defaults_compile() {
        let config = crate::config::defaults().unwrap();
        let rules = RuleSet::compile(&config, &UserNames::from_nss()).unwrap();
        assert!(rules.rules.len() >= 10);
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
        let e = error(
            "[[rule]]\nname = \"nl\"\nmatch = { pid = 1 }\naction = \"rewrite\"\npattern = 'x'\nreplacement = \"a\\nb\"\n",
        );
        assert!(e.contains("rule \"nl\": `replacement` holds '\\n'"), "{e}");
    }
}
