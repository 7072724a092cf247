//! One config for many hosts, as PIKT's `#if moscow ... #else ... #endif`:
//! `hosts`, `groups`, `unless_hosts` and `unless_groups` on a `[[rule]]`
//! or `[[check]]`, with `[groups] NAME = [HOST, ...]` at the top of any
//! file. Host patterns are globs on the short and the full host name.

use std::collections::BTreeMap;

use super::error::{ConfigError, Located};

/// The host the config is read for: the system's name, or `--host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    pub full: String,
    pub short: String,
}

impl HostName {
    pub fn new(name: &str) -> HostName {
        HostName {
            full: name.to_string(),
            short: name.split('.').next().unwrap_or(name).to_string(),
        }
    }

    /// The system's host name (`uname -n`).
    pub fn of_system() -> HostName {
        let name = nix::unistd::gethostname()
            .ok()
            .and_then(|n| n.into_string().ok())
            .unwrap_or_default();
        HostName::new(&name)
    }

    fn matches(&self, pattern: &str) -> bool {
        [&self.full, &self.short]
            .iter()
            .any(|name| glob(pattern.as_bytes(), name.as_bytes()))
    }
}

/// A rule's or check's host conditions, as written.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostConditions<'a> {
    pub hosts: Option<&'a [String]>,
    pub groups: Option<&'a [String]>,
    pub unless_hosts: Option<&'a [String]>,
    pub unless_groups: Option<&'a [String]>,
}

impl HostConditions<'_> {
    /// Why it applies on `host` (`None` when it has no condition), or
    /// that it does not (`Err(())`); an unknown group is an error.
    pub fn verdict(
        &self,
        host: &HostName,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<Result<Option<String>, ()>, String> {
        let group_has = |name: &String| -> Result<bool, String> {
            let members = groups.get(name).ok_or_else(|| {
                let known: Vec<&str> = groups.keys().map(String::as_str).collect();
                format!(
                    "there is no group {name:?} (groups: {}); define it in a [groups] table",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            })?;
            Ok(members.iter().any(|m| host.matches(m)))
        };
        let first_host = |list: Option<&[String]>| {
            list.into_iter()
                .flatten()
                .find(|p| host.matches(p))
                .cloned()
        };
        let first_group = |list: Option<&[String]>| -> Result<Option<String>, String> {
            for g in list.into_iter().flatten() {
                if group_has(g)? {
                    return Ok(Some(g.clone()));
                }
            }
            Ok(None)
        };
        if first_host(self.unless_hosts).is_some() {
            return Ok(Err(()));
        }
        if first_group(self.unless_groups)?.is_some() {
            return Ok(Err(()));
        }
        // Every group named must exist, whether or not it decides.
        for g in self.groups.into_iter().flatten() {
            group_has(g)?;
        }
        if self.hosts.is_none() && self.groups.is_none() {
            return Ok(Ok((self.unless_hosts.is_some()
                || self.unless_groups.is_some())
            .then(|| format!("host {} is in no `unless_` list", host.full))));
        }
        if let Some(p) = first_host(self.hosts) {
            return Ok(Ok(Some(format!("host {} matches hosts {p:?}", host.full))));
        }
        if let Some(g) = first_group(self.groups)? {
            return Ok(Ok(Some(format!("host {} is in group {g:?}", host.full))));
        }
        Ok(Err(()))
    }
}

/// An entry in force here, with the host condition that let it in.
pub type Applying<T> = (Located<T>, Option<String>);

/// Keeps the entries that apply on `host`, each with why; the names of
/// the others go to `left_out`.
pub fn keep<T>(
    entries: Vec<Located<T>>,
    host: &HostName,
    groups: &BTreeMap<String, Vec<String>>,
    name: impl Fn(&T) -> &str,
    conditions: impl Fn(&T) -> HostConditions<'_>,
    left_out: &mut Vec<String>,
) -> Result<Vec<Applying<T>>, ConfigError> {
    let mut kept = Vec::new();
    for entry in entries {
        match conditions(&entry.def).verdict(host, groups) {
            Ok(Ok(why)) => kept.push((entry, why)),
            Ok(Err(())) => left_out.push(name(&entry.def).to_string()),
            Err(message) => return Err(entry.error(name(&entry.def), None, message)),
        }
    }
    Ok(kept)
}

/// A shell-style glob on a whole name: `*`, `?` and `[...]`.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return name.first() == Some(&b'[') && glob(rest, &name[1..]);
            };
            let (set, rest) = (&rest[..end], &rest[end + 1..]);
            name.first().is_some_and(|c| set.contains(c)) && glob(rest, &name[1..])
        }
        Some((&c, rest)) => name.first() == Some(&c) && glob(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(
            "mailserver".into(),
            vec!["mail1".into(), "mail2.example.com".into()],
        )])
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hosts_groups_and_their_else() {
        let mail2 = HostName::new("mail2.example.com");
        let moscow = HostName::new("moscow");
        let hosts = list(&["mail*", "moscow"]);
        let only = HostConditions {
            hosts: Some(&hosts),
            ..Default::default()
        };
        assert_eq!(
            only.verdict(&mail2, &groups()).unwrap(),
            Ok(Some(
                "host mail2.example.com matches hosts \"mail*\"".into()
            ))
        );
        assert!(
            only.verdict(&HostName::new("web1"), &groups())
                .unwrap()
                .is_err()
        );
        let mail = list(&["mailserver"]);
        let in_group = HostConditions {
            groups: Some(&mail),
            ..Default::default()
        };
        assert_eq!(
            in_group.verdict(&mail2, &groups()).unwrap(),
            Ok(Some(
                "host mail2.example.com is in group \"mailserver\"".into()
            ))
        );
        assert!(in_group.verdict(&moscow, &groups()).unwrap().is_err());
        let not_mail = HostConditions {
            unless_groups: Some(&mail),
            ..Default::default()
        };
        assert!(not_mail.verdict(&mail2, &groups()).unwrap().is_err());
        assert!(not_mail.verdict(&moscow, &groups()).unwrap().is_ok());
        let nothing = HostConditions::default();
        assert_eq!(nothing.verdict(&moscow, &groups()).unwrap(), Ok(None));
        let typo = list(&["mailservers"]);
        let e = HostConditions {
            groups: Some(&typo),
            ..Default::default()
        }
        .verdict(&moscow, &groups())
        .unwrap_err();
        assert!(
            e.contains("no group \"mailservers\" (groups: mailserver)"),
            "{e}"
        );
    }

    #[test]
    fn globs_on_the_short_and_full_name() {
        let host = HostName::new("web3.dc1.example.com");
        assert!(host.matches("web3") && host.matches("web?") && host.matches("*.example.com"));
        assert!(host.matches("web[123]") && !host.matches("web[12]") && !host.matches("web"));
    }
}
