//! What `show`, `diff` and `check` report, in each output format: text
//! and JSON here and in `json`, Nagios plugin output in `nagios`, the
//! Prometheus text format in `prometheus`, ps.monitor's in `mon`.

pub mod json;
pub mod mon;
pub mod nagios;
pub mod prometheus;

pub use crate::diff::Change;
use crate::diff::Kind;

/// Which kinds of change were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub missing: bool,
    pub extra: bool,
}

impl Wanted {
    pub const BOTH: Wanted = Wanted {
        missing: true,
        extra: true,
    };

    pub fn includes(self, kind: Kind) -> bool {
        match kind {
            Kind::Missing => self.missing,
            Kind::Extra => self.extra,
        }
    }
}

/// The changes of the wanted kinds from one dump text to another.
pub fn changes<'a>(old: &'a str, new: &'a str, wanted: Wanted) -> Vec<Change<'a>> {
    if old == new {
        return Vec::new();
    }
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut changes = crate::diff::diff(&old, &new);
    changes.retain(|c| wanted.includes(c.kind));
    changes
}

/// `- LINE` for missing and `+ LINE` for extra, as the Python psdiff.
pub fn text(changes: &[Change]) -> String {
    let mut out = String::with_capacity(changes.iter().map(|c| c.line.len() + 3).sum());
    for change in changes {
        out.push_str(match change.kind {
            Kind::Missing => "- ",
            Kind::Extra => "+ ",
        });
        out.push_str(change.line);
        out.push('\n');
    }
    out
}

/// A missing and an extra line, for the formats' tests.
#[cfg(test)]
pub fn sample_changes() -> Vec<Change<'static>> {
    vec![
        Change {
            kind: Kind::Missing,
            line: "    /usr/sbin/cron -f  {user=root}",
        },
        Change {
            kind: Kind::Extra,
            line: "    nc -l 4444  {user=www-data}",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        assert_eq!(
            text(&sample_changes()),
            "-     /usr/sbin/cron -f  {user=root}\n+     nc -l 4444  {user=www-data}\n"
        );
    }
}
