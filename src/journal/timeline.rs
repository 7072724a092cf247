//! The journal's images as a timeline: starts, exits, execs and
//! restarts, in time order, for `history` and the API.

use super::{HistoryRow, OUT_OF_ORDER_SECONDS, RESTART_WINDOW_SECONDS};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Started by fork or exec while the watcher ran.
    Start,
    /// Running when the watcher started (its start time is the kernel's).
    Found,
    /// Started again after the same program ended in the same place.
    Restart,
    /// Exited (the code or signal says how).
    Exit,
    /// Ran another program; the next image is the same pid's.
    Exec,
    /// Gone when /proc was read again, its exit not seen.
    Lost,
}

/// One event of the timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event<'a> {
    pub time: f64,
    pub kind: Kind,
    #[serde(flatten)]
    pub image: &'a HistoryRow,
    /// For a restart: the pid that ended before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_of: Option<u32>,
}

/// The events of `rows` between two marks (`Journal::changes`): the
/// starts of images begun after `from` up to `to`, and the endings
/// settled in that span; each is in exactly one span. Oldest first.
pub fn between(rows: &[HistoryRow], from: super::Mark, to: super::Mark) -> Vec<Event<'_>> {
    events(rows, f64::MIN, f64::MAX)
        .into_iter()
        .filter(|e| match e.kind {
            Kind::Start | Kind::Found | Kind::Restart => {
                (from.image + 1..=to.image).contains(&e.image.id)
            }
            Kind::Exit | Kind::Exec | Kind::Lost => e
                .image
                .settled
                .is_some_and(|s| (from.settled + 1..=to.settled).contains(&s)),
        })
        .collect()
}

/// The events of `rows` within [since, until], oldest first.
pub fn events(rows: &[HistoryRow], since: f64, until: f64) -> Vec<Event<'_>> {
    let mut events = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        if (since..=until).contains(&row.started) {
            let kind = if row.origin == "scan" {
                Kind::Found
            } else {
                Kind::Start
            };
            events.push(Event {
                time: row.started,
                kind,
                image: row,
                restart_of: None,
            });
        }
        if let Some(ended) = row.ended.filter(|t| (since..=until).contains(t)) {
            let kind = match row.end_kind.as_deref() {
                Some("exec") => Kind::Exec,
                Some("lost") => Kind::Lost,
                _ => Kind::Exit,
            };
            events.push(Event {
                time: ended,
                kind,
                image: row,
                restart_of: None,
            });
        }
    }
    events.sort_by(|a, b| a.time.total_cmp(&b.time).then(a.image.id.cmp(&b.image.id)));
    mark_restarts(&mut events);
    events
}

/// A start is a restart when, shortly before, an image of the same
/// program (exe and cmdline) in the same unit exited or was lost, and it
/// is not that image's own fork (a daemon going into the background), as
/// `Journal::restarts` counts: a start journaled up to
/// [`OUT_OF_ORDER_SECONDS`] before the exit counts too, but never one
/// begun before the image that exited. Each exit is paired with one start
/// at most.
fn mark_restarts(events: &mut [Event]) {
    let same = |ended: &HistoryRow, start: &HistoryRow| {
        start.started > ended.started
            && ended.exe == start.exe
            && ended.unit == start.unit
            && ended.user == start.user
            && ended.cmdline() == start.cmdline()
            && !(start.origin == "fork" && start.ppid == ended.pid)
    };
    // Recent endings not yet paired, and recent starts that a later
    // ending may still claim; both as indices into `events`.
    let mut ended: Vec<usize> = Vec::new();
    let mut waiting: Vec<usize> = Vec::new();
    for i in 0..events.len() {
        let now = events[i].time;
        match events[i].kind {
            Kind::Exit | Kind::Lost => {
                waiting.retain(|&s| now - events[s].time <= OUT_OF_ORDER_SECONDS);
                let image = events[i].image;
                match waiting.iter().position(|&s| same(image, events[s].image)) {
                    Some(at) => {
                        let s = waiting.remove(at);
                        events[s].kind = Kind::Restart;
                        events[s].restart_of = Some(image.pid);
                    }
                    None => ended.push(i),
                }
            }
            Kind::Start => {
                ended.retain(|&e| now - events[e].time <= RESTART_WINDOW_SECONDS);
                let image = events[i].image;
                match ended.iter().position(|&e| same(events[e].image, image)) {
                    Some(at) => {
                        let e = ended.remove(at);
                        events[i].kind = Kind::Restart;
                        events[i].restart_of = Some(events[e].image.pid);
                    }
                    None => waiting.push(i),
                }
            }
            _ => {}
        }
    }
}

/// `seconds` as a person reads a lifetime: `250 ms`, `12 s`, `4 min 3 s`,
/// `3 d 2 h`.
pub fn human(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{} ms", (seconds * 1000.0).round() as u64);
    }
    let s = seconds.round() as u64;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, pid: u32, started: f64, ended: Option<(f64, &str)>) -> HistoryRow {
        HistoryRow {
            id,
            pid,
            ppid: 1,
            started,
            origin: "fork".to_string(),
            user: Some("root".to_string()),
            exe: Some("/usr/sbin/nginx".to_string()),
            argv: Some("nginx: master process".to_string()),
            unit: Some("nginx.service".to_string()),
            container: None,
            line: Some("nginx: master process  {user=root}".to_string()),
            verdict: "baseline".to_string(),
            rule: None,
            ended: ended.map(|e| e.0),
            end_kind: ended.map(|e| e.1.to_string()),
            exit_code: None,
            exit_signal: ended.map(|_| 9),
            settled: ended.map(|_| id),
        }
    }

    #[test]
    fn a_follower_hears_of_each_start_and_ending_once() {
        let rows = [
            row(1, 811, 100.0, Some((500.0, "exit"))),
            row(2, 812, 500.1, None),
        ];
        let end = super::super::Mark {
            image: 2,
            settled: 1,
        };
        let kinds = |mark| -> Vec<(u32, Kind)> {
            between(&rows, mark, end)
                .iter()
                .map(|e| (e.image.pid, e.kind))
                .collect()
        };
        // Past image 1's start but not its end: the end and image 2.
        let mark = super::super::Mark {
            image: 1,
            settled: 0,
        };
        assert_eq!(kinds(mark), [(811, Kind::Exit), (812, Kind::Restart)]);
        let mark = super::super::Mark {
            image: 2,
            settled: 1,
        };
        assert_eq!(kinds(mark), []);
    }

    #[test]
    fn a_start_soon_after_the_same_program_ended_is_its_restart() {
        let rows = [
            row(1, 811, 100.0, Some((500.0, "exit"))),
            row(2, 812, 500.1, None),
            // Too long after: a start of its own.
            row(3, 900, 1000.0, None),
        ];
        let events = events(&rows, 0.0, 2000.0);
        let kinds: Vec<(Kind, u32)> = events.iter().map(|e| (e.kind, e.image.pid)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Start, 811),
                (Kind::Exit, 811),
                (Kind::Restart, 812),
                (Kind::Start, 900)
            ]
        );
        assert_eq!(events[2].restart_of, Some(811));
        assert_eq!(rows[0].ending().as_deref(), Some("signal 9"));
    }

    #[test]
    fn lifetimes_read_as_people_say_them() {
        assert_eq!(human(0.25), "250 ms");
        assert_eq!(human(12.0), "12 s");
        assert_eq!(human(243.0), "4 min 3 s");
        assert_eq!(human(3.0 * 86_400.0 + 2.0 * 3600.0 + 5.0), "3 d 2 h");
    }
}
