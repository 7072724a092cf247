//! What `show`, `diff` and `check` report, in each output format: text
//! and JSON here and in `json`, Nagios plugin output in `nagios`, the
//! Prometheus text format in `prometheus`, ps.monitor's in `mon`.

pub mod json;
pub mod mon;
pub mod nagios;
pub mod prometheus;

pub use crate::line_diff::Change;
use crate::line_diff::Kind;

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
    let mut changes = crate::line_diff::diff(&old, &new);
    changes.retain(|c| wanted.includes(c.kind));
    changes
}

/// The longest line a text report prints: a title of 512 KB is cut to
/// this, with a mark that says so.
pub const LINE_MAX: usize = 4096;

/// The most a text report prints. zabbix_agentd takes less than 512 KiB
/// from a command and above that returns ZBX_NOTSUPPORTED with no text,
/// so the trigger never fires; a report is cut to fit, keeping a line
/// for every change.
pub const TEXT_MAX: usize = 512 * 1024 - 4096;

/// The least of a line kept when many changes share `TEXT_MAX`.
const LINE_MIN: usize = 96;

/// `- LINE` for missing and `+ LINE` for extra, as the Python psdiff; each
/// line at most `LINE_MAX` bytes, and the whole within `TEXT_MAX`.
pub fn text(changes: &[Change]) -> String {
    let room = (TEXT_MAX / changes.len().max(1)).clamp(LINE_MIN, LINE_MAX);
    let mut out = String::with_capacity(changes.iter().map(|c| c.line.len().min(room) + 3).sum());
    for (i, change) in changes.iter().enumerate() {
        // A line deep in the tree is longer than its room: the indent stays.
        let line = cut(change.line, room);
        if out.len() + line.len() + 3 > TEXT_MAX {
            out.push_str(&format!(
                "... {} more changes not printed: more than a monitoring agent carries; `--format json` prints them all\n",
                changes.len() - i
            ));
            break;
        }
        out.push_str(match change.kind {
            Kind::Missing => "- ",
            Kind::Extra => "+ ",
        });
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `line` in at most `room` bytes: a longer cmdline is cut, marked with
/// how much was left out, and the user kept.
fn cut(line: &str, room: usize) -> std::borrow::Cow<'_, str> {
    if line.len() <= room {
        return line.into();
    }
    let (depth, cmdline, user) = match crate::render::parse_line(line) {
        Some(p) => (p.depth, p.cmdline, p.user),
        None => (0, line, ""),
    };
    let fixed = crate::render::line_len(depth, "", user) + " ...(cut: 00000000 bytes)".len();
    let mut keep = room.saturating_sub(fixed).min(cmdline.len());
    while !cmdline.is_char_boundary(keep) {
        keep -= 1;
    }
    let marked = format!(
        "{} ...(cut: {} bytes)",
        &cmdline[..keep],
        cmdline.len() - keep
    );
    if user.is_empty() {
        marked.into()
    } else {
        crate::render::line(depth, &marked, user).into()
    }
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
    fn a_huge_title_is_cut_and_the_report_fits_an_agent() {
        let huge = format!("  {}  {{user=mallory}}", "x".repeat(512 * 1024));
        let one = [Change {
            kind: Kind::Extra,
            line: &huge,
        }];
        let out = text(&one);
        assert!(out.len() <= LINE_MAX + 3, "{}", out.len());
        assert!(out.starts_with("+   xxx"), "{out:.20}");
        assert!(
            out.ends_with(" ...(cut: 520235 bytes)  {user=mallory}\n"),
            "{}",
            &out[out.len() - 60..]
        );
        // Many changes: every one keeps a line while they fit.
        let lines: Vec<String> = (0..3000)
            .map(|i| format!("miner {i} {}  {{user=x}}", "y".repeat(400)))
            .collect();
        let many: Vec<Change> = lines
            .iter()
            .map(|l| Change {
                kind: Kind::Extra,
                line: l,
            })
            .collect();
        let out = text(&many);
        assert!(out.len() <= TEXT_MAX, "{}", out.len());
        assert_eq!(out.lines().count(), 3000);
        assert!(
            out.lines()
                .all(|l| l.starts_with("+ miner ") && l.ends_with("{user=x}"))
        );
        // Past what fits, the rest is counted.
        let lines: Vec<String> = (0..10_000).map(|i| format!("m{i}  {{user=x}}")).collect();
        let all: Vec<Change> = lines
            .iter()
            .map(|l| Change {
                kind: Kind::Missing,
                line: l,
            })
            .collect();
        assert_eq!(text(&all).lines().count(), 10_000, "short lines all fit");
    }

    #[test]
    fn text_format() {
        assert_eq!(
            text(&sample_changes()),
            "-     /usr/sbin/cron -f  {user=root}\n+     nc -l 4444  {user=www-data}\n"
        );
    }
}
