//! The TOML schema of psdiff.toml, mirrored one struct per table.
//! Unknown keys are rejected everywhere: a typo must never silently turn
//! a rule into one that matches nothing (or everything).

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `false` starts from an empty rule list instead of the built-ins.
    pub defaults: Option<bool>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleDef>>,
    /// `psdiff check` rules.
    #[serde(default, rename = "check")]
    pub checks: Vec<Spanned<crate::check::load::CheckDef>>,
    /// `psdiff serve` settings.
    pub serve: Option<ServeDef>,
}

/// The `[serve]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeDef {
    /// The commands `POST /api/ps` may run: each entry is the start of an
    /// argv, its first element an absolute path.
    #[serde(default)]
    pub run_allow: Vec<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: Option<MatchDef>,
    pub action: ActionKind,
    /// rewrite: a regex over the whole cmdline, and what replaces it.
    pub pattern: Option<Spanned<String>>,
    pub replacement: Option<String>,
    /// replace-arg: the option whose value is replaced (`-id`), or the
    /// position of the argument (argv[0] is 0).
    pub option: Option<String>,
    pub position: Option<usize>,
    pub placeholder: Option<String>,
    /// replace-arg: replace only the last path part of the value.
    pub last_path_part: Option<bool>,
    /// sort-args: the first argument that takes part in the sort.
    pub from: Option<usize>,
    /// rename: the new cmdline.
    pub to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchDef {
    /// A regex searched for in the cmdline (anchor it with `^` / `$`).
    pub cmdline: Option<Spanned<String>>,
    /// The cmdline starts with one of these.
    pub cmdline_prefix: Option<Vec<String>>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub exe: Option<String>,
    pub comm: Option<String>,
    pub pid: Option<u32>,
    pub kernel_thread: Option<bool>,
}

impl MatchDef {
    pub fn is_empty(&self) -> bool {
        self.cmdline.is_none()
            && self.cmdline_prefix.is_none()
            && self.user.is_none()
            && self.uid.is_none()
            && self.exe.is_none()
            && self.comm.is_none()
            && self.pid.is_none()
            && self.kernel_thread.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Hide,
    HideTree,
    HideChildren,
    Once,
    Rewrite,
    ReplaceArg,
    SortArgs,
    Rename,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Hide => "hide",
            ActionKind::HideTree => "hide-tree",
            ActionKind::HideChildren => "hide-children",
            ActionKind::Once => "once",
            ActionKind::Rewrite => "rewrite",
            ActionKind::ReplaceArg => "replace-arg",
            ActionKind::SortArgs => "sort-args",
            ActionKind::Rename => "rename",
        }
    }
}
