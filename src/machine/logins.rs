//! Open logins, as logind says (over D-Bus, `logind.rs`; from its records
//! in /run/systemd where it does not answer, or for another machine's
//! root): a session is open while its state is `opening`, `active` or
//! `online`; `closing` means its user logged out and what is left in its
//! scope was left running.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub struct Logins {
    /// `None` when logind keeps no records here (no systemd, or another
    /// machine's /proc): every session then counts as open, since nothing
    /// says it is closed.
    known: Option<Known>,
}

struct Known {
    /// Each session's state and its user.
    sessions: HashMap<String, (String, Option<u32>)>,
    /// Each user's state, and when logind last wrote it.
    users: HashMap<u32, (String, Option<SystemTime>)>,
}

/// How long after a logout a user's manager still counts as part of the
/// login: logind's UserStopDelaySec (10 s by default), and a few seconds
/// for the manager to stop. A user service that ignores SIGTERM keeps the
/// manager stopping for TimeoutStopSec (90 s); it is shown after this.
pub const CLOSING_GRACE: Duration = Duration::from_secs(15);

/// Whether a session of logind's class `class` is a person's: not the
/// session systemd 256 and later open for each user manager (`manager`),
/// nor a non-interactive one (`background`). Records without a class
/// (older systemd) are a person's.
pub fn a_persons(class: &str) -> bool {
    !(class.starts_with("manager") || class.starts_with("background") || class == "none")
}

/// `opening` is a login under way: the person has authenticated and
/// logind waits for the session's scope or the user's manager to start
/// (what that manager runs as it starts, PAM's `unix_chkpwd` among it,
/// comes in this state). Only logind's own jobs set it, so no user can
/// hold it.
fn open(state: &str) -> bool {
    matches!(state, "opening" | "active" | "online")
}

impl Logins {
    pub fn read(root: &Path) -> Logins {
        let dir = root.join("run/systemd");
        if root == Path::new("/")
            && let Ok(answer) = super::logind::ask()
        {
            return Logins::answered(answer, &dir);
        }
        Logins::recorded(&dir)
    }

    /// From logind's answer; when each user's state last changed is the
    /// time logind rewrote the user's record.
    fn answered(answer: super::logind::Answer, dir: &Path) -> Logins {
        let sessions = answer
            .sessions
            .into_iter()
            .map(|(id, uid, state)| (id, (state, Some(uid))))
            .collect();
        let users = answer
            .users
            .into_iter()
            .map(|(uid, state)| (uid, (state, written(dir, &uid.to_string()))))
            .collect();
        Logins {
            known: Some(Known { sessions, users }),
        }
    }

    /// From logind's records under `dir`.
    fn recorded(dir: &Path) -> Logins {
        let Ok(sessions) = records(&dir.join("sessions")) else {
            return Logins { known: None };
        };
        let sessions = sessions
            .into_iter()
            .filter(|(_, record)| a_persons(record.get("CLASS").map_or("", String::as_str)))
            .filter_map(|(id, record)| {
                let uid = record.get("UID").and_then(|u| u.parse().ok());
                Some((id, (record.get("STATE")?.clone(), uid)))
            })
            .collect();
        let users = records(&dir.join("users"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(uid, record)| {
                let written = written(dir, &uid);
                Some((uid.parse().ok()?, (record.get("STATE")?.clone(), written)))
            })
            .collect();
        Logins {
            known: Some(Known { sessions, users }),
        }
    }

    pub fn session_open(&self, id: &str) -> bool {
        self.known
            .as_ref()
            .is_none_or(|k| k.sessions.get(id).is_some_and(|(s, _)| open(s)))
    }

    pub fn user_logged_in(&self, uid: u32) -> bool {
        self.known
            .as_ref()
            .is_none_or(|k| k.users.get(&uid).is_some_and(|(s, _)| open(s)))
    }

    /// Whether the user logged out at most `CLOSING_GRACE` ago (as the
    /// time logind wrote the user's record says) and logind is stopping
    /// what is theirs (or waits for what they left in a session).
    pub fn user_closing(&self, uid: u32) -> bool {
        self.known.as_ref().is_some_and(|k| {
            k.users.get(&uid).is_some_and(|(s, written)| {
                s == "closing"
                    && written
                        .and_then(|w| w.elapsed().ok())
                        .is_some_and(|age| age <= CLOSING_GRACE)
            })
        })
    }

    /// Whether logind keeps no record of user `uid` (known to keep them):
    /// the user is neither logged in, nor logging out, nor lingering.
    pub fn user_gone(&self, uid: u32) -> bool {
        self.known
            .as_ref()
            .is_some_and(|k| !k.users.contains_key(&uid))
    }

    /// Whether logind's sessions are known (else every one counts as open).
    pub fn knows_sessions(&self) -> bool {
        self.known.is_some()
    }

    /// The user of a session, as logind recorded it.
    pub fn session_user(&self, id: &str) -> Option<u32> {
        self.known.as_ref()?.sessions.get(id)?.1
    }

    /// The sessions of user `uid`, open or not.
    pub fn sessions_of(&self, uid: u32) -> impl Iterator<Item = &str> {
        self.known
            .iter()
            .flat_map(|k| k.sessions.iter())
            .filter(move |(_, (_, u))| *u == Some(uid))
            .map(|(id, _)| id.as_str())
    }

    /// A user's state as logind wrote it, for `explain`.
    pub fn user_state(&self, uid: u32) -> Option<&str> {
        match &self.known {
            None => Some("unknown (no logind records)"),
            Some(k) => k.users.get(&uid).map(|(s, _)| s.as_str()),
        }
    }

    /// A session's state as logind wrote it, for `explain`.
    pub fn session_state(&self, id: &str) -> Option<&str> {
        match &self.known {
            None => Some("unknown (no logind records)"),
            Some(k) => k.sessions.get(id).map(|(s, _)| s.as_str()),
        }
    }
}

/// When logind last wrote the record of user `uid` under `dir`.
fn written(dir: &Path, uid: &str) -> Option<SystemTime> {
    std::fs::metadata(dir.join("users").join(uid))
        .and_then(|m| m.modified())
        .ok()
}

/// The `KEY=VALUE` lines of every file in `dir`, by file name.
fn records(dir: &Path) -> std::io::Result<HashMap<String, HashMap<String, String>>> {
    let mut records = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Beside each session logind keeps a FIFO (`4.ref`): opening it
        // would wait for a writer.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // logind writes each file whole (temp file and rename).
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let record = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        records.insert(name, record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_users_by_their_state() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let run = root.join("run/systemd");
        std::fs::create_dir_all(run.join("sessions")).unwrap();
        std::fs::create_dir_all(run.join("users")).unwrap();
        std::fs::write(run.join("sessions/4"), "# x\nUID=1000\nSTATE=active\n").unwrap();
        nix::unistd::mkfifo(&run.join("sessions/4.ref"), nix::sys::stat::Mode::S_IRUSR).unwrap();
        std::fs::write(run.join("sessions/5"), "STATE=closing\n").unwrap();
        std::fs::write(run.join("sessions/7"), "UID=1003\nSTATE=opening\n").unwrap();
        std::fs::write(run.join("users/1000"), "STATE=online\n").unwrap();
        std::fs::write(run.join("users/1003"), "STATE=opening\n").unwrap();
        std::fs::write(run.join("users/1001"), "STATE=lingering\n").unwrap();
        std::fs::write(run.join("users/1002"), "STATE=closing\n").unwrap();
        let logins = Logins::read(root);
        assert!(logins.session_open("4"));
        // A login under way is open already.
        assert!(logins.session_open("7") && logins.user_logged_in(1003));
        assert!(!logins.session_open("5") && !logins.session_open("6"));
        assert!(logins.user_logged_in(1000));
        assert!(!logins.user_logged_in(1001) && !logins.user_logged_in(7));
        assert!(logins.user_closing(1002) && !logins.user_closing(1001));
        // A logout longer ago than the stop delay is no longer closing.
        let old = std::fs::File::options()
            .write(true)
            .open(run.join("users/1002"));
        old.unwrap()
            .set_modified(SystemTime::now() - CLOSING_GRACE - Duration::from_secs(1))
            .unwrap();
        assert!(!Logins::read(root).user_closing(1002));
        assert_eq!(logins.sessions_of(1000).collect::<Vec<_>>(), ["4"]);
        let nothing = Logins::read(Path::new("/nonexistent"));
        assert!(nothing.session_open("1") && nothing.user_logged_in(1));
    }
}
