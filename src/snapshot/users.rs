//! uid → user name, one NSS lookup per uid.

use std::collections::HashMap;
use std::sync::Arc;

use nix::unistd::{Uid, User};

/// Caches user names so that ten thousand processes of one user cost one
/// passwd lookup. Names are shared (`Arc<str>`) by every process of a user.
#[derive(Default)]
pub struct UserNames {
    names: HashMap<u32, Arc<str>>,
}

impl UserNames {
    pub fn new() -> Self {
        Self::default()
    }

    /// The full user name, or the number when passwd/NSS has no entry
    /// (as `ps` prints it).
    pub fn name(&mut self, uid: u32) -> Arc<str> {
        self.names
            .entry(uid)
            .or_insert_with(|| match User::from_uid(Uid::from_raw(uid)) {
                Ok(Some(user)) => Arc::from(user.name),
                _ => Arc::from(uid.to_string()),
            })
            .clone()
    }

    /// The uid of a user name, for rules that name a user.
    pub fn uid_of(name: &str) -> Option<u32> {
        match User::from_name(name) {
            Ok(Some(user)) => Some(user.uid.as_raw()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_unknown_uid_is_a_number() {
        let mut users = UserNames::new();
        assert_eq!(&*users.name(0), "root");
        assert_eq!(&*users.name(3_999_999_999), "3999999999");
    }
}
