//! The TOML schema of psdiff.toml, one struct per table, as the file is
//! written. Unknown keys are refused everywhere: a typo must never
//! silently turn a rule into one that matches nothing (or everything).
//! `crate::select` gives the `match` tables their meaning.

use std::path::PathBuf;

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
    pub checks: Vec<Spanned<CheckDef>>,
    /// `psdiff serve` settings.
    pub serve: Option<ServeDef>,
    /// Host groups for `groups`/`unless_groups`: NAME = [HOST GLOB, ...].
    pub groups: Option<std::collections::BTreeMap<String, Vec<String>>>,
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

/// A `[[rule]]`: which processes, and what to do with their lines.
#[derive(Debug, Clone, Deserialize)]
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
    /// On which hosts it applies (`crate::config::hosts`): globs on the
    /// host name, names of `[groups]`, and their exceptions.
    pub hosts: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub unless_hosts: Option<Vec<String>>,
    pub unless_groups: Option<Vec<String>>,
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

/// A `[[check]]`: which processes, what must hold of them, and what to do
/// when it does not.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDef {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matcher: MatchDef,
    /// ps.monitor's MIN-MAX; outside is critical.
    pub count: Option<String>,
    /// Nagios ranges.
    pub warn: Option<String>,
    pub crit: Option<String>,
    /// `"user"`: count each user's processes on their own (PIKT).
    pub per: Option<Per>,
    /// Per process: CPU use over the interval above this is critical.
    pub cpu_percent: Option<f64>,
    /// Per process: `gid0-not-uid0` or `ids-differ`.
    pub credential: Option<CredentialDef>,
    pub allow_users: Option<Vec<String>>,
    pub allow_commands: Option<Vec<String>>,
    /// Resources, each a critical Nagios range with units (`"~:2G"`) or
    /// `{ warn = ..., crit = ... }`: per matched process, or summed with
    /// `sum = true`; in a counting check, a range the counted are in.
    pub rss: Option<Spanned<LimitDef>>,
    pub vsz: Option<Spanned<LimitDef>>,
    pub swap: Option<Spanned<LimitDef>>,
    pub threads: Option<Spanned<LimitDef>>,
    pub fds: Option<Spanned<LimitDef>>,
    pub fd_ratio: Option<Spanned<LimitDef>>,
    pub age: Option<Spanned<LimitDef>>,
    pub cpu_time: Option<Spanned<LimitDef>>,
    pub sum: Option<bool>,
    /// How many times the matched daemon was replaced (`"0-2"`, MIN-MAX)
    /// `within` a window (`"1h"`).
    pub restarts: Option<Spanned<String>>,
    /// How many matching programs started `within` a window (`"0-30"`),
    /// as the watcher's journal saw them: fork and exec storms.
    pub starts: Option<Spanned<String>>,
    pub within: Option<Spanned<String>>,
    /// Per process: fails when its executable or a library it maps was
    /// deleted or replaced (an upgrade it was not restarted after).
    pub deleted: Option<bool>,
    /// Files (or folders, ending in `/`) a `deleted` check leaves alone.
    pub allow_deleted: Option<Vec<String>>,
    /// A listening socket a matched process must hold: `tcp:22`,
    /// `tcp6:22`, `udp:53`, `tcp:127.0.0.1:25`.
    pub listen: Option<Spanned<String>>,
    /// What answers a TCP connection must start with, after `send`;
    /// `expect` is a regex on the answer. At `address` (loopback at the
    /// listen's port by default), within `timeout` (default 5s).
    pub banner: Option<String>,
    pub send: Option<String>,
    pub expect: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// On which hosts it applies (`crate::config::hosts`): globs on the
    /// host name, names of `[groups]`, and their exceptions.
    pub hosts: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub unless_hosts: Option<Vec<String>>,
    pub unless_groups: Option<Vec<String>>,
    pub on_warn: Option<ActionsDef>,
    pub on_crit: Option<ActionsDef>,
}

/// A resource limit: `"~:2G"` (critical), or its warning and critical
/// ranges.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum LimitDef {
    Critical(String),
    Levels {
        warn: Option<String>,
        crit: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialDef {
    Gid0NotUid0,
    IdsDiffer,
}

/// `on_warn` / `on_crit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsDef {
    pub log: Option<PathBuf>,
    pub exec: Option<Vec<String>>,
    pub kill: Option<bool>,
    /// Seconds between SIGTERM and SIGKILL; default 5.
    pub grace: Option<u64>,
}

/// A `match` table as written; `crate::select` says what each key means.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchDef {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Globs of /proc/PID/exe.
    pub exe: Option<Globs>,
    pub argv0: Option<String>,
    /// ps.monitor's NAME; with a `/`, the exe path; `*` (counting checks
    /// only) for every command no other check names.
    pub command: Option<String>,
    pub cmdline: Option<Spanned<String>>,
    pub cmdline_prefix: Option<Vec<String>>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub group: Option<String>,
    pub gid: Option<u32>,
    pub kernel_thread: Option<bool>,
    /// Put into this pid namespace from outside it (its parent is not in
    /// it): what the host's root runs in a container.
    pub entered: Option<bool>,
    /// Any of these state letters (R, S, D, Z, T, ...).
    pub state: Option<String>,
    pub selinux: Option<Spanned<String>>,
    pub selinux_domain: Option<String>,
    /// Globs of what the cgroup says: the system unit, the unit inside a
    /// user's manager, the slice, the whole path, the container's name.
    pub unit: Option<Globs>,
    pub user_unit: Option<Globs>,
    pub slice: Option<Globs>,
    pub cgroup: Option<Globs>,
    pub container: Option<Globs>,
    /// In a login that is still open.
    pub login: Option<bool>,
    /// In a unit that a timer starts.
    pub timer_job: Option<bool>,
    /// argv[0] names another program than the one that runs.
    pub disguised: Option<bool>,
    /// Part of the running of psdiff itself (`crate::invocation`).
    pub invocation: Option<bool>,
    /// Started less than this long ago (`90s`, `5m`).
    pub younger_than: Option<Spanned<String>>,
    /// Conditions on the parent process.
    pub parent: Option<Box<MatchDef>>,
}

impl MatchDef {
    /// Whether no condition is given.
    pub fn is_empty(&self) -> bool {
        *self == MatchDef::default()
    }
}

/// One glob or a list of them (any may match): `"nginx.service"` or
/// `["getty@*.service", "serial-getty@*.service"]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Globs(pub Vec<String>);

impl<'de> Deserialize<'de> for Globs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Globs, D::Error> {
        struct OneOrMany;
        impl<'de> serde::de::Visitor<'de> for OneOrMany {
            type Value = Globs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Globs, E> {
                checked::<E>(v)?;
                Ok(Globs(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Globs, A::Error> {
                let mut all = Vec::new();
                while let Some(one) = seq.next_element::<String>()? {
                    checked::<A::Error>(&one)?;
                    all.push(one);
                }
                if all.is_empty() {
                    return Err(serde::de::Error::invalid_length(0, &"at least one"));
                }
                Ok(Globs(all))
            }
        }
        fn checked<E: serde::de::Error>(text: &str) -> Result<(), E> {
            if is_glob(text) {
                glob(text).map_err(|e| {
                    E::custom(format!(
                        "{text:?} is no glob: {}; `*` and `?` match within a path part, `**` across parts, `[a-z]` or `[!a-z]` one of a set, `{{a,b}}` either",
                        e.kind()
                    ))
                })?;
            }
            Ok(())
        }
        deserializer.deserialize_any(OneOrMany)
    }
}

/// Whether `text` is a glob rather than a plain name.
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// `text` as a glob: `*` and `?` within a `/`-separated part, `**`
/// across parts; a backslash is itself (unit names escape with it:
/// `dev-disk-by\x2duuid`).
pub fn glob(text: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
}

/// The host conditions of a rule or check.
macro_rules! host_conditions {
    ($($def:ty),*) => {$(
        impl $def {
            pub fn host_conditions(&self) -> super::hosts::HostConditions<'_> {
                super::hosts::HostConditions {
                    hosts: self.hosts.as_deref(),
                    groups: self.groups.as_deref(),
                    unless_hosts: self.unless_hosts.as_deref(),
                    unless_groups: self.unless_groups.as_deref(),
                }
            }
        }
    )*};
}
host_conditions!(RuleDef, CheckDef);
