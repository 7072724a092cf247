//! uid → user name, one lookup per uid.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use nix::unistd::{Uid, User};

/// Names users the way `ps` does, but in full. The source is NSS (so LDAP
/// and sssd users are named), or a passwd file: a container reading its
/// host's /proc wants the host's /etc/passwd, not its own.
pub struct UserNames {
    names: HashMap<u32, Arc<str>>,
    /// Entries of a passwd file; `None` asks NSS.
    passwd: Option<HashMap<u32, String>>,
}

impl UserNames {
    pub fn from_nss() -> Self {
        UserNames {
            names: HashMap::new(),
            passwd: None,
        }
    }

    pub fn from_passwd_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let passwd = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let uid = fields.nth(1)?.parse().ok()?;
                Some((uid, name.to_string()))
            })
            .collect();
        Ok(UserNames {
            names: HashMap::new(),
            passwd: Some(passwd),
        })
    }

    /// The full user name, or the number when there is no entry for it.
    pub fn name(&mut self, uid: u32) -> Arc<str> {
        let passwd = &self.passwd;
        self.names
            .entry(uid)
            .or_insert_with(|| {
                let name = match passwd {
                    Some(map) => map.get(&uid).cloned(),
                    None => User::from_uid(Uid::from_raw(uid))
                        .ok()
                        .flatten()
                        .map(|u| u.name),
                };
                Arc::from(name.unwrap_or_else(|| uid.to_string()))
            })
            .clone()
    }

    /// The uid of the user called `name`, when there is one.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        match &self.passwd {
            Some(map) => map.iter().find(|(_, n)| *n == name).map(|(&uid, _)| uid),
            None => User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()),
        }
    }

    /// Whether `name` is a user here, whether or not anything runs as it.
    pub fn exists(&self, name: &str) -> bool {
        match &self.passwd {
            Some(map) => map.values().any(|n| n == name),
            None => User::from_name(name).ok().flatten().is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_unknown_uid_is_a_number() {
        let mut users = UserNames::from_nss();
        assert_eq!(&*users.name(0), "root");
        assert_eq!(&*users.name(3_999_999_999), "3999999999");
    }

    #[test]
    fn passwd_file_names() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "root:x:0:0::/root:/bin/sh\nbroken\nsvc-account-long:x:1234:1234::/:/bin/false\n",
        )
        .unwrap();
        let mut users = UserNames::from_passwd_file(file.path()).unwrap();
        assert_eq!(&*users.name(1234), "svc-account-long");
        assert_eq!(&*users.name(0), "root");
        assert_eq!(&*users.name(7), "7");
        assert!(users.exists("svc-account-long") && !users.exists("nobody"));
        assert_eq!(users.uid_of("svc-account-long"), Some(1234));
        assert_eq!(users.uid_of("nobody"), None);
    }
}
