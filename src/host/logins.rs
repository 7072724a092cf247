//! Open logins, as logind records them in /run/systemd: a session is open
//! while its state is `active` or `online`; `closing` means its user
//! logged out and what is left in its scope was left running.

use std::collections::HashMap;
use std::path::Path;

pub struct Logins {
    /// `None` when logind keeps no records here (no systemd, or another
    /// machine's /proc): every session then counts as open, since nothing
    /// says it is closed.
    known: Option<Known>,
}

struct Known {
    sessions: HashMap<String, String>,
    users: HashMap<u32, String>,
}

fn open(state: &str) -> bool {
    matches!(state, "active" | "online")
}

impl Logins {
    pub fn read(root: &Path) -> Logins {
        let dir = root.join("run/systemd");
        let Ok(sessions) = states(&dir.join("sessions")) else {
            return Logins { known: None };
        };
        let users = states(&dir.join("users"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(uid, state)| Some((uid.parse().ok()?, state)))
            .collect();
        Logins {
            known: Some(Known { sessions, users }),
        }
    }

    pub fn session_open(&self, id: &str) -> bool {
        self.known
            .as_ref()
            .is_none_or(|k| k.sessions.get(id).is_some_and(|s| open(s)))
    }

    pub fn user_logged_in(&self, uid: u32) -> bool {
        self.known
            .as_ref()
            .is_none_or(|k| k.users.get(&uid).is_some_and(|s| open(s)))
    }

    /// A session's state as logind wrote it, for `explain`.
    pub fn session_state(&self, id: &str) -> Option<&str> {
        match &self.known {
            None => Some("unknown (no logind records)"),
            Some(k) => k.sessions.get(id).map(String::as_str),
        }
    }
}

/// The `STATE=` of every file in `dir`, by file name.
fn states(dir: &Path) -> std::io::Result<HashMap<String, String>> {
    let mut states = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // logind writes each file whole (temp file and rename).
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some(state) = text.lines().find_map(|l| l.strip_prefix("STATE=")) {
            states.insert(name, state.to_string());
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_users_by_their_state() {
        let root = std::env::temp_dir().join(format!("psdiff-logins-{}", std::process::id()));
        let run = root.join("run/systemd");
        std::fs::create_dir_all(run.join("sessions")).unwrap();
        std::fs::create_dir_all(run.join("users")).unwrap();
        std::fs::write(run.join("sessions/4"), "# x\nUID=1000\nSTATE=active\n").unwrap();
        std::fs::write(run.join("sessions/5"), "STATE=closing\n").unwrap();
        std::fs::write(run.join("users/1000"), "STATE=online\n").unwrap();
        std::fs::write(run.join("users/1001"), "STATE=lingering\n").unwrap();
        let logins = Logins::read(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(logins.session_open("4"));
        assert!(!logins.session_open("5") && !logins.session_open("6"));
        assert!(logins.user_logged_in(1000));
        assert!(!logins.user_logged_in(1001) && !logins.user_logged_in(7));
        let nothing = Logins::read(Path::new("/nonexistent"));
        assert!(nothing.session_open("1") && nothing.user_logged_in(1));
    }
}
