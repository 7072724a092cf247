//! Rules that shape the process tree into the lines of a dump.
//!
//! Two kinds: transforms (rewrite, replace-arg, sort-args, rename) change a
//! cmdline before sorting, and all that match apply, in order; visibility
//! rules (hide, hide-tree, hide-children, once) are tried in order and the
//! first that applies decides. Both match against the cmdline as the
//! transforms left it, which is what `dump` prints.

mod compile;
mod shape;

use regex::Regex;

use crate::config::Origin;
use crate::config::schema::ActionKind;
use crate::select::Selector;
use crate::snapshot::Fields;

pub use shape::{Container, Decision, View, shape};

/// The compiled rules, the operator's first, then the built-ins.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Whether a rule may hide a process by its executable `exe`: then
    /// what it runs must be judged while it runs (`Selector::takes_by_exe`).
    pub fn takes_by_exe(&self, exe: &str) -> bool {
        self.rules.iter().any(|r| r.selector.takes_by_exe(exe))
    }

    /// What the rules look at beyond the basics: the exe link costs a
    /// syscall per process, so it is read only when a rule wants it.
    pub fn needs(&self) -> Fields {
        self.rules
            .iter()
            .map(|r| r.selector.needs().union(r.action.needs()))
            .fold(Fields::default(), Fields::union)
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub origin: Origin,
    pub selector: Selector,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub enum Action {
    Hide,
    HideTree,
    HideChildren,
    Once,
    Rewrite {
        pattern: Regex,
        replacement: String,
    },
    ReplaceArg {
        target: ArgTarget,
        placeholder: String,
        last_path_part: bool,
    },
    SortArgs {
        from: usize,
    },
    Rename {
        to: String,
    },
}

/// Which argument `replace-arg` replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgTarget {
    /// The value after this option (`-id VALUE` or `-id=VALUE`).
    After(String),
    /// The argument at this position; argv[0] is 0.
    Position(usize),
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Hide => ActionKind::Hide,
            Action::HideTree => ActionKind::HideTree,
            Action::HideChildren => ActionKind::HideChildren,
            Action::Once => ActionKind::Once,
            Action::Rewrite { .. } => ActionKind::Rewrite,
            Action::ReplaceArg { .. } => ActionKind::ReplaceArg,
            Action::SortArgs { .. } => ActionKind::SortArgs,
            Action::Rename { .. } => ActionKind::Rename,
        }
    }

    pub fn is_transform(&self) -> bool {
        matches!(
            self,
            Action::Rewrite { .. }
                | Action::ReplaceArg { .. }
                | Action::SortArgs { .. }
                | Action::Rename { .. }
        )
    }

    /// What the transform's texts name (`{exe}`, `{unit}`, `{container}`)
    /// that must be read for it.
    pub fn needs(&self) -> Fields {
        let text = match self {
            Action::Rewrite { replacement, .. } => replacement.as_str(),
            Action::ReplaceArg { placeholder, .. } => placeholder.as_str(),
            Action::Rename { to } => to.as_str(),
            _ => "",
        };
        Fields {
            exe: text.contains("{exe}"),
            cgroup: text.contains("{unit}") || text.contains("{container}"),
            ..Fields::default()
        }
    }

    /// The cmdline after this transform. Arguments are the words of the
    /// cmdline as printed, split at single spaces. `{exe}`, `{unit}` and
    /// `{container}` in the new text are the process's (`identity`).
    pub fn transform(&self, cmdline: &str, identity: &dyn Fn(Token) -> String) -> String {
        match self {
            Action::Rewrite {
                pattern,
                replacement,
            } => {
                // What is filled in is literal, not a `$1` of the regex.
                let replacement = fill(replacement, &|t| identity(t).replace('$', "$$"));
                pattern
                    .replace_all(cmdline, replacement.as_ref())
                    .into_owned()
            }
            Action::ReplaceArg {
                target,
                placeholder,
                last_path_part,
            } => {
                let placeholder = fill(placeholder, identity);
                let replace = |value: &str| match value.rsplit_once('/') {
                    Some((dir, _)) if *last_path_part => format!("{dir}/{placeholder}"),
                    _ => placeholder.to_string(),
                };
                let mut words: Vec<String> = cmdline.split(' ').map(str::to_string).collect();
                match target {
                    ArgTarget::Position(n) => {
                        if let Some(word) = words.get_mut(*n) {
                            *word = replace(word);
                        }
                    }
                    ArgTarget::After(option) => {
                        let joined = format!("{option}=");
                        for i in 0..words.len() {
                            if words[i] == *option && i + 1 < words.len() {
                                words[i + 1] = replace(&words[i + 1]);
                            } else if let Some(value) = words[i].strip_prefix(&joined) {
                                words[i] = format!("{joined}{}", replace(value));
                            }
                        }
                    }
                }
                words.join(" ")
            }
            Action::SortArgs { from } => {
                let mut words: Vec<&str> = cmdline.split(' ').collect();
                if *from < words.len() {
                    words[*from..].sort_unstable();
                }
                words.join(" ")
            }
            Action::Rename { to } => fill(to, identity).into_owned(),
            Action::Hide | Action::HideTree | Action::HideChildren | Action::Once => {
                cmdline.to_string()
            }
        }
    }
}

/// What a transform's new text may name of the process it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// `{exe}`: its executable.
    Exe,
    /// `{unit}`: its systemd unit.
    Unit,
    /// `{container}`: the name of the container it runs in or (a
    /// runtime's shim) runs for.
    Container,
}

/// `template` with each token filled in.
fn fill<'a>(template: &'a str, identity: &dyn Fn(Token) -> String) -> std::borrow::Cow<'a, str> {
    if !template.contains('{') {
        return std::borrow::Cow::Borrowed(template);
    }
    let mut text = template.to_string();
    for (name, token) in [
        ("{exe}", Token::Exe),
        ("{unit}", Token::Unit),
        ("{container}", Token::Container),
    ] {
        if text.contains(name) {
            text = text.replace(name, &identity(token));
        }
    }
    std::borrow::Cow::Owned(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Action {
        fn transform_plain(&self, cmdline: &str) -> String {
            self.transform(cmdline, &|t| format!("{t:?}"))
        }
    }

    #[test]
    fn tokens_are_filled_in_literally() {
        let rw = Action::Rewrite {
            pattern: Regex::new("$").unwrap(),
            replacement: " (running {exe})".into(),
        };
        let exe = |_| "/tmp/$1 x".to_string();
        assert_eq!(
            rw.transform("/usr/sbin/ntpd", &exe),
            "/usr/sbin/ntpd (running /tmp/$1 x)"
        );
        let id = Action::ReplaceArg {
            target: ArgTarget::After("-id".into()),
            placeholder: "{container}".into(),
            last_path_part: false,
        };
        assert_eq!(id.transform_plain("shim -id 3f1d"), "shim -id Container");
        assert_eq!(
            id.needs(),
            Fields {
                cgroup: true,
                ..Fields::default()
            }
        );
    }

    fn replace_arg(target: ArgTarget, last_path_part: bool) -> Action {
        Action::ReplaceArg {
            target,
            placeholder: "<ID>".into(),
            last_path_part,
        }
    }

    #[test]
    fn replace_arg_after_an_option() {
        let id = replace_arg(ArgTarget::After("-id".into()), false);
        assert_eq!(
            id.transform_plain("shim -namespace moby -id 3f1d -address /run/x.sock"),
            "shim -namespace moby -id <ID> -address /run/x.sock"
        );
        assert_eq!(id.transform_plain("shim -id=3f1d"), "shim -id=<ID>");
        assert_eq!(id.transform_plain("shim -id"), "shim -id");
        let dir = replace_arg(ArgTarget::After("-workdir".into()), true);
        assert_eq!(
            dir.transform_plain("shim -workdir /var/lib/c/3f1d -x"),
            "shim -workdir /var/lib/c/<ID> -x"
        );
        assert_eq!(
            dir.transform_plain("shim -workdir 3f1d"),
            "shim -workdir <ID>"
        );
    }

    #[test]
    fn replace_arg_by_position() {
        let first = replace_arg(ArgTarget::Position(1), false);
        assert_eq!(first.transform_plain("a b c"), "a <ID> c");
        assert_eq!(first.transform_plain("a"), "a");
    }

    #[test]
    fn sort_args_keeps_the_program_first() {
        let sort = Action::SortArgs { from: 1 };
        assert_eq!(
            sort.transform_plain("java -Xmx1g -Da=1 -cp x"),
            "java -Da=1 -Xmx1g -cp x"
        );
        assert_eq!(Action::SortArgs { from: 5 }.transform_plain("a b"), "a b");
    }

    #[test]
    fn rewrite_uses_groups() {
        let rw = Action::Rewrite {
            pattern: Regex::new(r"^([^ ]*) .*$").unwrap(),
            replacement: "$1".into(),
        };
        assert_eq!(rw.transform_plain("astcanary /var/run/x 123"), "astcanary");
    }
}
