//! Checks from `[[check]]` tables and from `NAME:MIN-MAX` arguments.
//!
//! A check that names a user or group that does not exist is an error, not
//! a count of 0 that quietly never fires (Zabbix's proc.num trap).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Group, User};
use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::actions::Actions;
use super::range::{Bounds, NagiosRange};
use super::{Allow, Check, Command, Credential, Kind, Matcher};
use crate::rules::{ConfigError, Origin, line_column};

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
    pub on_warn: Option<ActionsDef>,
    pub on_crit: Option<ActionsDef>,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchDef {
    /// ps.monitor's NAME; with a `/`, the exe path; `*` for every command
    /// no other check names.
    pub command: Option<String>,
    pub comm: Option<String>,
    pub argv0: Option<String>,
    pub exe: Option<String>,
    pub cmdline: Option<Spanned<String>>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub group: Option<String>,
    pub gid: Option<u32>,
    pub selinux: Option<Spanned<String>>,
    pub selinux_domain: Option<String>,
    /// Any of these state letters (R, S, D, Z, T, ...).
    pub state: Option<String>,
    pub parent: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsDef {
    pub log: Option<PathBuf>,
    pub exec: Option<Vec<String>>,
    pub kill: Option<bool>,
    /// Seconds between SIGTERM and SIGKILL; default 5.
    pub grace: Option<u64>,
}

/// A `[[check]]` as read, with what is needed to report errors in it.
#[derive(Debug, Clone)]
pub struct CheckSource {
    pub def: CheckDef,
    pub origin: Origin,
    pub text: Arc<str>,
}

/// Compiles every check; `uid_of`/`gid_of` name users and groups.
pub fn compile_all(sources: &[CheckSource]) -> Result<Vec<Check>, ConfigError> {
    sources.iter().map(compile).collect()
}

fn compile(source: &CheckSource) -> Result<Check, ConfigError> {
    let def = &source.def;
    let origin = &source.origin;
    let fail = |position: Option<(usize, usize)>, message: String| ConfigError {
        file: origin.file.to_string(),
        position: position.or(Some((origin.line, origin.column))),
        rule: Some(def.name.clone()),
        message: format!("check: {message}"),
    };
    let regex = |s: &Spanned<String>, what: &str| {
        Regex::new(s.get_ref()).map_err(|e| {
            let detail = e.to_string().lines().last().unwrap_or_default().to_string();
            fail(
                Some(line_column(&source.text, s.span().start)),
                format!("{what} is not a valid regex: {detail}"),
            )
        })
    };
    let m = &def.matcher;
    let matcher = Matcher {
        command: m.command.as_deref().map(command),
        comm: m.comm.clone(),
        argv0: m.argv0.clone(),
        exe: m.exe.clone(),
        cmdline: m
            .cmdline
            .as_ref()
            .map(|s| regex(s, "match.cmdline"))
            .transpose()?,
        uid: match (&m.user, m.uid) {
            (Some(name), None) => Some(uid_of(name).map_err(|e| fail(None, e))?),
            (None, uid) => uid,
            (Some(_), Some(_)) => return Err(fail(None, "give `user` or `uid`, not both".into())),
        },
        gid: match (&m.group, m.gid) {
            (Some(name), None) => Some(gid_of(name).map_err(|e| fail(None, e))?),
            (None, gid) => gid,
            (Some(_), Some(_)) => return Err(fail(None, "give `group` or `gid`, not both".into())),
        },
        selinux: m
            .selinux
            .as_ref()
            .map(|s| regex(s, "match.selinux"))
            .transpose()?,
        selinux_domain: m.selinux_domain.clone(),
        state: m.state.clone(),
        parent: m
            .parent
            .as_ref()
            .map(|s| regex(s, "match.parent"))
            .transpose()?,
    };
    let allow = || -> Result<Allow, ConfigError> {
        Ok(Allow {
            uids: def
                .allow_users
                .iter()
                .flatten()
                .map(|u| uid_of(u).map_err(|e| fail(None, format!("allow_users: {e}"))))
                .collect::<Result<_, _>>()?,
            commands: def.allow_commands.clone().unwrap_or_default(),
        })
    };
    let per_process = def.cpu_percent.is_some() || def.credential.is_some();
    let counted =
        def.count.is_some() || def.warn.is_some() || def.crit.is_some() || def.per.is_some();
    let kind = match (def.cpu_percent, def.credential) {
        (Some(_), Some(_)) => {
            return Err(fail(
                None,
                "give `cpu_percent` or `credential`, not both".into(),
            ));
        }
        _ if per_process && counted => {
            return Err(fail(
                None,
                "`count`, `warn`, `crit` and `per` are for counting checks; a `cpu_percent` or `credential` check reports each process".into(),
            ));
        }
        (Some(max_percent), None) => {
            if max_percent.is_nan() || max_percent <= 0.0 {
                return Err(fail(
                    None,
                    format!("cpu_percent {max_percent} must be above 0"),
                ));
            }
            Kind::Cpu {
                max_percent,
                allow: allow()?,
            }
        }
        (None, Some(test)) => Kind::Credential {
            test: match test {
                CredentialDef::Gid0NotUid0 => Credential::Gid0NotUid0,
                CredentialDef::IdsDiffer => Credential::IdsDiffer,
            },
            allow: allow()?,
        },
        (None, None) => {
            if def.allow_users.is_some() || def.allow_commands.is_some() {
                return Err(fail(None, "`allow_users` and `allow_commands` are for `cpu_percent` and `credential` checks".into()));
            }
            if !counted {
                return Err(fail(
                    None,
                    "say what to check: `count = \"MIN-MAX\"`, `warn`/`crit` (Nagios ranges), `cpu_percent` or `credential`".into(),
                ));
            }
            if def.count.is_some() && def.crit.is_some() {
                return Err(fail(
                    None,
                    "give `count` or `crit`, not both: `count` is the critical bounds".into(),
                ));
            }
            let range = |r: &Option<String>, what: &str| {
                r.as_deref()
                    .map(|t| NagiosRange::parse(t).map_err(|e| fail(None, format!("{what}: {e}"))))
                    .transpose()
            };
            Kind::Count {
                bounds: def
                    .count
                    .as_deref()
                    .map(|t| Bounds::parse(t).map_err(|e| fail(None, format!("count: {e}"))))
                    .transpose()?,
                warn: range(&def.warn, "warn")?,
                crit: range(&def.crit, "crit")?,
                per_user: def.per == Some(Per::User),
            }
        }
    };
    if matcher.command == Some(Command::Any) && !matches!(kind, Kind::Count { .. }) {
        return Err(fail(
            None,
            "`command = \"*\"` is for counting checks".into(),
        ));
    }
    let actions = |a: &Option<ActionsDef>| {
        a.as_ref()
            .map(Actions::from_def)
            .transpose()
            .map_err(|e| fail(None, e))
    };
    Ok(Check {
        name: def.name.clone(),
        origin: Some(origin.clone()),
        matcher,
        kind,
        on_warn: actions(&def.on_warn)?,
        on_crit: actions(&def.on_crit)?,
    })
}

fn command(name: &str) -> Command {
    match name {
        "*" => Command::Any,
        n if n.contains('/') => Command::Exe(n.to_string()),
        n => Command::Name(n.to_string()),
    }
}

/// `NAME:MIN-MAX`, as ps.monitor takes it.
pub fn parse_spec(spec: &str) -> Result<Check, String> {
    let (name, bounds) = spec
        .rsplit_once(':')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| {
            format!("check rule {spec:?} is not NAME:MIN-MAX (e.g. sshd:1- or tor:1-1)")
        })?;
    let bounds = Bounds::parse(bounds).map_err(|e| format!("check rule {spec:?}: {e}"))?;
    Ok(Check {
        name: name.to_string(),
        origin: None,
        matcher: Matcher {
            // Literal, as ps.monitor takes it: `*` here is no wildcard.
            command: Some(if name.contains('/') {
                Command::Exe(name.to_string())
            } else {
                Command::Name(name.to_string())
            }),
            ..Matcher::default()
        },
        kind: Kind::Count {
            bounds: Some(bounds),
            warn: None,
            crit: None,
            per_user: false,
        },
        on_warn: None,
        on_crit: None,
    })
}

fn uid_of(name: &str) -> Result<u32, String> {
    match name.parse() {
        Ok(uid) => Ok(uid),
        Err(_) => match User::from_name(name) {
            Ok(Some(user)) => Ok(user.uid.as_raw()),
            _ => Err(format!(
                "there is no user {name:?} on this host (checked through NSS)"
            )),
        },
    }
}

fn gid_of(name: &str) -> Result<u32, String> {
    match name.parse() {
        Ok(gid) => Ok(gid),
        Err(_) => match Group::from_name(name) {
            Ok(Some(group)) => Ok(group.gid.as_raw()),
            _ => Err(format!(
                "there is no group {name:?} on this host (checked through NSS)"
            )),
        },
    }
}

/// The default grace between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let c = parse_spec("tor:1-1").unwrap();
        assert_eq!(c.name, "tor");
        assert_eq!(c.matcher.command, Some(Command::Name("tor".into())));
        assert_eq!(
            parse_spec("/usr/sbin/sshd:1-").unwrap().matcher.command,
            Some(Command::Exe("/usr/sbin/sshd".into()))
        );
        for bad in ["tor", ":1-1", "tor:x-1", "tor:1", "tor:2-1"] {
            let e = parse_spec(bad).unwrap_err();
            assert!(e.starts_with(&format!("check rule {bad:?}")), "{e}");
        }
    }
}
