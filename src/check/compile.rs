//! Checks from `[[check]]` tables and from `NAME:MIN-MAX` arguments.
//!
//! A check that names a user or group that does not exist is an error, not
//! a count of 0 that quietly never fires (Zabbix's proc.num trap).

use std::time::Duration;

use super::actions::Actions;
use super::port::{Listen, Probe, parse_timeout};
use super::range::{Bounds, NagiosRange};
use super::{Allow, Check, Credential, Kind, Limit, Resource};
use crate::config::schema::{ActionsDef, CheckDef, CredentialDef, LimitDef, Per};
use crate::config::{Config, ConfigError, Located};
use crate::select::{Command, Fail, Selector};
use crate::snapshot::UserNames;

/// The default grace between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Compiles every `[[check]]` of `config`.
pub fn compile_all(config: &Config, users: &UserNames) -> Result<Vec<Check>, ConfigError> {
    config.checks.iter().map(|c| compile(c, users)).collect()
}

fn compile(located: &Located<CheckDef>, users: &UserNames) -> Result<Check, ConfigError> {
    let def = &located.def;
    let fail = |span, message: String| located.error(&def.name, span, message);
    let selector = Selector::compile(&def.matcher, users, &fail)?;
    if let Some(unknown) = selector.unknown_names().first() {
        return Err(fail(
            None,
            format!("there is no {unknown} on this host (checked through NSS)"),
        ));
    }
    let kind = kind(def, users, &fail)?;
    if selector.command() == Some(&Command::Any) && !matches!(kind, Kind::Count { .. }) {
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
    let (on_warn, on_crit) = (actions(&def.on_warn)?, actions(&def.on_crit)?);
    let kills = [&on_warn, &on_crit]
        .iter()
        .any(|a| a.as_ref().is_some_and(|a| a.kill));
    // A count over processes found by name kills whoever took the name; a
    // count per user kills only that user's own, and CPU or credential
    // checks pick their target by what the kernel measures.
    let named_count = matches!(
        kind,
        Kind::Count {
            per_user: false,
            ..
        }
    );
    if kills && named_count && !selector.attested() {
        return Err(fail(
            None,
            "`kill = true` would reach whatever process any user names so: the match names it only by names a user chooses (command, comm, argv0, cmdline). Add what the kernel attests: `exe = \"/usr/sbin/...\"` or `user = \"...\"` (or `unit =`)".into(),
        ));
    }
    Ok(Check {
        name: def.name.clone(),
        selector,
        kind,
        on_warn,
        on_crit,
    })
}

/// The resource keys given, compiled.
fn limits(def: &CheckDef, fail: &Fail) -> Result<Vec<Limit>, ConfigError> {
    let given = [
        (Resource::Rss, &def.rss),
        (Resource::Vsz, &def.vsz),
        (Resource::Swap, &def.swap),
        (Resource::Threads, &def.threads),
        (Resource::Fds, &def.fds),
        (Resource::FdRatio, &def.fd_ratio),
        (Resource::Age, &def.age),
        (Resource::CpuTime, &def.cpu_time),
    ];
    let mut limits = Vec::new();
    for (resource, written) in given {
        let Some(written) = written else { continue };
        let key = resource.key();
        let at = Some(written.span());
        let range = |text: &Option<String>| {
            text.as_deref()
                .map(|t| {
                    resource
                        .range(t)
                        .map_err(|e| fail(at.clone(), format!("{key}: {e}")))
                })
                .transpose()
        };
        let (warn, crit) = match written.get_ref() {
            LimitDef::Critical(text) => (None, range(&Some(text.clone()))?),
            LimitDef::Levels { warn, crit } => (range(warn)?, range(crit)?),
        };
        if warn.is_none() && crit.is_none() {
            return Err(fail(at, format!("{key}: give `warn`, `crit` or both")));
        }
        limits.push(Limit {
            resource,
            warn,
            crit,
        });
    }
    Ok(limits)
}

/// What the check tests: a count, resources, CPU use, or credentials.
fn kind(def: &CheckDef, users: &UserNames, fail: &Fail) -> Result<Kind, ConfigError> {
    let limits = limits(def, fail)?;
    let per_process =
        def.cpu_percent.is_some() || def.credential.is_some() || def.deleted.is_some();
    let counted =
        def.count.is_some() || def.warn.is_some() || def.crit.is_some() || def.per.is_some();
    let allow = || -> Result<Allow, ConfigError> {
        Ok(Allow {
            uids: def
                .allow_users
                .iter()
                .flatten()
                .map(|u| uid_of(users, u).map_err(|e| fail(None, format!("allow_users: {e}"))))
                .collect::<Result<_, _>>()?,
            commands: def.allow_commands.clone().unwrap_or_default(),
        })
    };
    if let Some(starts) = &def.starts {
        let others = per_process
            || def.count.is_some()
            || def.warn.is_some()
            || def.crit.is_some()
            || def.restarts.is_some()
            || !limits.is_empty();
        if others {
            return Err(fail(
                None,
                "`starts` goes in a check of its own (give the count, restarts or other test its own [[check]])".into(),
            ));
        }
        let Some(within) = &def.within else {
            return Err(fail(
                Some(starts.span()),
                "`starts = \"MIN-MAX\"` needs `within = \"1m\"`, how far back to count".into(),
            ));
        };
        return Ok(Kind::Starts {
            bounds: Bounds::parse(starts.get_ref())
                .map_err(|e| fail(Some(starts.span()), format!("starts: {e}")))?,
            within: super::restarts::parse_window(within.get_ref())
                .map_err(|e| fail(Some(within.span()), e))?,
            window: within.get_ref().clone(),
            per_user: def.per == Some(Per::User),
        });
    }
    if def.restarts.is_some() || def.within.is_some() {
        if per_process || counted || !limits.is_empty() {
            return Err(fail(
                None,
                "`restarts` goes in a check of its own (give the count or other test its own [[check]])".into(),
            ));
        }
        let (Some(restarts), Some(within)) = (&def.restarts, &def.within) else {
            return Err(fail(
                None,
                "`restarts = \"MIN-MAX\"` and `within = \"1h\"` go together".into(),
            ));
        };
        return Ok(Kind::Restarts {
            bounds: Bounds::parse(restarts.get_ref())
                .map_err(|e| fail(Some(restarts.span()), format!("restarts: {e}")))?,
            within: super::restarts::parse_window(within.get_ref())
                .map_err(|e| fail(Some(within.span()), e))?,
            window: within.get_ref().clone(),
        });
    }
    let port_keys = [
        def.listen.is_some(),
        def.banner.is_some(),
        def.expect.is_some(),
        def.send.is_some(),
        def.address.is_some(),
        def.timeout.is_some(),
    ];
    if port_keys.contains(&true) {
        if per_process || counted || !limits.is_empty() {
            return Err(fail(
                None,
                "`listen` and `banner` go in a check of their own (give the count, resource or other test its own [[check]])".into(),
            ));
        }
        return port(def, fail);
    }
    if def.allow_deleted.is_some() && def.deleted != Some(true) {
        return Err(fail(
            None,
            "`allow_deleted` is for `deleted = true` checks".into(),
        ));
    }
    let tests = [
        def.cpu_percent.is_some(),
        def.credential.is_some(),
        def.deleted.is_some(),
    ];
    if tests.iter().filter(|&&t| t).count() > 1 {
        return Err(fail(
            None,
            "give one of `cpu_percent`, `credential` and `deleted`".into(),
        ));
    }
    if def.deleted == Some(false) {
        return Err(fail(
            None,
            "`deleted = false` tests nothing; leave it out".into(),
        ));
    }
    match (def.cpu_percent, def.credential) {
        _ if def.deleted == Some(true) && !counted && limits.is_empty() => Ok(Kind::Deleted {
            allow: allow()?,
            allow_files: def.allow_deleted.clone().unwrap_or_default(),
        }),
        _ if per_process && counted => Err(fail(
            None,
            "`count`, `warn`, `crit` and `per` are for counting checks; a `cpu_percent`, `credential` or `deleted` check reports each process".into(),
        )),
        _ if per_process && !limits.is_empty() => Err(fail(
            None,
            "resource keys (rss, fds, age, ...) go in a check of their own, not with `cpu_percent`, `credential` or `deleted`".into(),
        )),
        (None, None) if !counted && !limits.is_empty() => resources(def, limits, allow()?, fail),
        (Some(max_percent), None) => {
            if max_percent.is_nan() || max_percent <= 0.0 {
                return Err(fail(
                    None,
                    format!("cpu_percent {max_percent} must be above 0"),
                ));
            }
            Ok(Kind::Cpu {
                max_percent,
                allow: allow()?,
            })
        }
        (None, Some(test)) => Ok(Kind::Credential {
            test: match test {
                CredentialDef::Gid0NotUid0 => Credential::Gid0NotUid0,
                CredentialDef::IdsDiffer => Credential::IdsDiffer,
            },
            allow: allow()?,
        }),
        // Both at once was refused above.
        _ => count(def, counted, limits, fail),
    }
}

fn port(def: &CheckDef, fail: &Fail) -> Result<Kind, ConfigError> {
    let listen = text(&def.listen)
        .map(|t| Listen::parse(t).map_err(|e| fail(span(&def.listen), format!("listen: {e}"))))
        .transpose()?;
    if def.banner.is_none() && def.expect.is_none() {
        if let Some(key) = [
            ("send", def.send.is_some()),
            ("address", def.address.is_some()),
            ("timeout", def.timeout.is_some()),
        ]
        .iter()
        .find(|(_, given)| *given)
        .map(|(k, _)| *k)
        {
            return Err(fail(
                None,
                format!(
                    "`{key}` belongs to a banner check: add `banner = \"...\"` or `expect = \"REGEX\"`"
                ),
            ));
        }
        return Ok(Kind::Port {
            listen,
            probe: None,
        });
    }
    if listen
        .as_ref()
        .is_some_and(|l| l.protocol == crate::sockets::Protocol::Udp)
    {
        return Err(fail(
            None,
            "banners are read over TCP; a udp listen takes no banner".into(),
        ));
    }
    let address = Probe::address(text(&def.address), listen.as_ref())
        .map_err(|e| fail(span(&def.address), e))?;
    let expect = text(&def.expect)
        .map(|r| {
            regex::Regex::new(r)
                .map_err(|e| fail(span(&def.expect), format!("expect: not a regex: {e}")))
        })
        .transpose()?;
    let timeout = text(&def.timeout)
        .map(|t| parse_timeout(t).map_err(|e| fail(span(&def.timeout), e)))
        .transpose()?
        .unwrap_or(Duration::from_secs(5));
    Ok(Kind::Port {
        listen,
        probe: Some(Probe {
            address,
            send: def.send.clone(),
            banner: def.banner.clone(),
            expect,
            timeout,
        }),
    })
}

fn resources(
    def: &CheckDef,
    limits: Vec<Limit>,
    allow: Allow,
    fail: &Fail,
) -> Result<Kind, ConfigError> {
    let sum = def.sum.unwrap_or(false);
    if let Some(l) = limits.iter().find(|l| sum && !l.resource.sums()) {
        return Err(fail(
            None,
            format!(
                "`{}` does not add up over processes; give it per process (without `sum = true`)",
                l.resource.key()
            ),
        ));
    }
    Ok(Kind::Resources { limits, sum, allow })
}

fn count(
    def: &CheckDef,
    counted: bool,
    only: Vec<Limit>,
    fail: &Fail,
) -> Result<Kind, ConfigError> {
    if def.sum.is_some() {
        return Err(fail(
            None,
            "`sum` is for resource checks; a counting check counts processes".into(),
        ));
    }
    if let Some(l) = only.iter().find(|l| l.warn.is_some()) {
        return Err(fail(
            None,
            format!(
                "in a counting check `{}` says which processes are counted: give one range (`{} = \"1m:\"`), not warn/crit",
                l.resource.key(),
                l.resource.key()
            ),
        ));
    }
    if def.allow_users.is_some() || def.allow_commands.is_some() {
        return Err(fail(
            None,
            "`allow_users` and `allow_commands` are for `cpu_percent` and `credential` checks"
                .into(),
        ));
    }
    if !counted {
        return Err(fail(
            None,
            "say what to check: `count = \"MIN-MAX\"`, `warn`/`crit` (Nagios ranges), a resource (`rss = \"~:2G\"`, fds, threads, ...), `listen`/`banner`, `deleted`, `cpu_percent` or `credential`".into(),
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
    Ok(Kind::Count {
        bounds: def
            .count
            .as_deref()
            .map(|t| Bounds::parse(t).map_err(|e| fail(None, format!("count: {e}"))))
            .transpose()?,
        warn: range(&def.warn, "warn")?,
        crit: range(&def.crit, "crit")?,
        per_user: def.per == Some(Per::User),
        only,
    })
}

/// `check --needs-restart`: every process running a deleted or replaced
/// executable or library.
pub fn needs_restart() -> Check {
    Check {
        name: "needs-restart".into(),
        selector: Selector::default(),
        kind: Kind::Deleted {
            allow: Allow::default(),
            allow_files: Vec::new(),
        },
        on_warn: None,
        on_crit: None,
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
        // Literal, as ps.monitor takes it: `*` here is no wildcard.
        selector: Selector::of_command(if name.contains('/') {
            Command::Exe(name.to_string())
        } else {
            Command::Name(name.to_string())
        }),
        kind: Kind::Count {
            bounds: Some(bounds),
            warn: None,
            crit: None,
            per_user: false,
            only: Vec::new(),
        },
        on_warn: None,
        on_crit: None,
    })
}

fn uid_of(users: &UserNames, name: &str) -> Result<u32, String> {
    match name.parse() {
        Ok(uid) => Ok(uid),
        Err(_) => users
            .uid_of(name)
            .ok_or_else(|| format!("there is no user {name:?} on this host (checked through NSS)")),
    }
}

/// Where a key's value was written, for errors that point at it.
fn span(value: &Option<toml::Spanned<String>>) -> Option<std::ops::Range<usize>> {
    value.as_ref().map(|v| v.span())
}

fn text(value: &Option<toml::Spanned<String>>) -> Option<&str> {
    value.as_ref().map(|v| v.get_ref().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let c = parse_spec("tor:1-1").unwrap();
        assert_eq!(c.name, "tor");
        assert_eq!(c.selector.command(), Some(&Command::Name("tor".into())));
        assert_eq!(
            parse_spec("/usr/sbin/sshd:1-").unwrap().selector.command(),
            Some(&Command::Exe("/usr/sbin/sshd".into()))
        );
        for bad in ["tor", ":1-1", "tor:x-1", "tor:1", "tor:2-1"] {
            let e = parse_spec(bad).unwrap_err();
            assert!(e.starts_with(&format!("check rule {bad:?}")), "{e}");
        }
    }
}
