//! logind's own word on sessions and users, over D-Bus
//! (org.freedesktop.login1). Its files in /run/systemd say "This is
//! private data. Do not parse." and go stale: after a lingering user's
//! last session ended, the file still said `STATE=closing` while logind
//! said `lingering`, and the user's services stayed hidden.

use std::time::Duration;

use zbus::blocking::{Connection, Proxy, connection};
use zbus::zvariant::OwnedObjectPath;

const LOGIND: &str = "org.freedesktop.login1";

/// How long logind may take to answer. A logind that is restarting does
/// not answer in time; the look is then made from its files, and
/// `--retry` looks again.
const TIMEOUT: Duration = Duration::from_millis(500);

/// A person's sessions (id, uid, state) and users (uid, state), as
/// logind says.
pub struct Answer {
    pub sessions: Vec<(String, u32, String)>,
    pub users: Vec<(u32, String)>,
}

/// Asks logind on the system bus; an error when there is no bus, no
/// logind on it, or no answer in time.
pub fn ask() -> zbus::Result<Answer> {
    let bus = connection::Builder::system()?
        .method_timeout(TIMEOUT)
        .build()?;
    let manager = Proxy::new(
        &bus,
        LOGIND,
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
    )?;
    let listed: Vec<(String, u32, String, String, OwnedObjectPath)> =
        manager.call("ListSessions", &())?;
    let mut sessions = Vec::with_capacity(listed.len());
    for (id, uid, _, _, path) in listed {
        // A session that ends while it is asked about is no session.
        let session = "org.freedesktop.login1.Session";
        let (Ok(state), Ok(class)) = (
            property(&bus, &path, session, "State"),
            property(&bus, &path, session, "Class"),
        ) else {
            continue;
        };
        if super::logins::a_persons(&class) {
            sessions.push((id, uid, state));
        }
    }
    let listed: Vec<(u32, String, OwnedObjectPath)> = manager.call("ListUsers", &())?;
    let mut users = Vec::with_capacity(listed.len());
    for (uid, _, path) in listed {
        if let Ok(state) = property(&bus, &path, "org.freedesktop.login1.User", "State") {
            users.push((uid, state));
        }
    }
    Ok(Answer { sessions, users })
}

fn property(
    bus: &Connection,
    path: &OwnedObjectPath,
    interface: &str,
    name: &str,
) -> zbus::Result<String> {
    let proxy = zbus::blocking::proxy::Builder::<Proxy>::new(bus)
        .destination(LOGIND)?
        .path(path.clone())?
        .interface(interface)?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()?;
    proxy.get_property(name)
}
