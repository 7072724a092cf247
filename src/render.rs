//! The line format: the compatibility contract with the Python psdiff and
//! with every baseline file ever written, kept in one place.
//!
//! `{indent}{cmdline}  {user=USER}`, two spaces of indent per depth.

use crate::snapshot::Process;

/// The first line of every dump: the pseudo-process above pid 1.
pub const ROOT_CMDLINE: &str = "root";
pub const ROOT_USER: &str = "root";

/// What separates the cmdline from the user in a line.
pub const USER_MARKER: &str = "  {user=";

/// Formats one line of a dump or baseline.
pub fn line(depth: usize, cmdline: &str, user: &str) -> String {
    let mut out = String::with_capacity(line_len(depth, cmdline, user));
    push_line(&mut out, depth, cmdline, user);
    out
}

/// `line` written at the end of `out`.
pub fn push_line(out: &mut String, depth: usize, cmdline: &str, user: &str) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    out.push_str(cmdline);
    out.push_str("  {user=");
    out.push_str(user);
    out.push('}');
}

/// The length of `line`'s text.
pub fn line_len(depth: usize, cmdline: &str, user: &str) -> usize {
    depth * 2 + cmdline.len() + user.len() + 9
}

/// A dump line taken apart: the inverse of `line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    pub depth: usize,
    pub cmdline: &'a str,
    pub user: &'a str,
}

/// Splits `{indent}{cmdline}  {user=USER}`. The user is after the *last*
/// `  {user=`, since a cmdline may itself contain that text.
pub fn parse_line(text: &str) -> Option<ParsedLine<'_>> {
    let body = text.strip_suffix('}')?;
    let (head, user) = body.rsplit_once(USER_MARKER)?;
    let cmdline = head.trim_start_matches(' ');
    let depth = (head.len() - cmdline.len()) / 2;
    if cmdline.is_empty() || user.is_empty() {
        return None;
    }
    Some(ParsedLine {
        depth,
        cmdline,
        user,
    })
}

/// `line` with `(mark)` after its cmdline, so it still parses as a line.
pub fn marked(line: &str, mark: &str) -> String {
    match parse_line(line) {
        Some(p) => self::line(p.depth, &format!("{} ({mark})", p.cmdline), p.user),
        None => format!("{line} ({mark})"),
    }
}

/// The cmdline as `ps -o args` prints it: argv joined by single spaces,
/// trailing spaces stripped; `[comm]` when argv is empty (kernel threads),
/// `[comm] <defunct>` for a zombie.
pub fn cmdline(process: &Process) -> String {
    if process.is_zombie() {
        return format!("[{}] <defunct>", printable(&process.comm));
    }
    let joined: Vec<u8> = process
        .cmdline
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    let text = printable(&joined);
    let trimmed = text.trim_end_matches(' ');
    if trimmed.is_empty() {
        return format!("[{}]", printable(&process.comm));
    }
    // Leading blanks would read as indent, a line deeper in the tree than
    // its process: each is shown as `?`, as a control character is.
    let body = trimmed.trim_start_matches(' ');
    let lead = trimmed.len() - body.len();
    if lead == 0 {
        trimmed.to_string()
    } else {
        format!("{}{body}", "?".repeat(lead))
    }
}

/// Bytes as printable text: invalid UTF-8 becomes U+FFFD and every control
/// character (C0, DEL, C1) becomes `?`, so that one process is always one
/// line and no terminal escape reaches the operator's screen; so do the
/// invisible characters that change how text reads (bidi overrides,
/// zero-width), so that no title can pass for another.
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(visible)
        .collect()
}

/// `c`, or `?` for a control or invisible formatting character.
pub fn visible(c: char) -> char {
    let invisible = matches!(
        c,
        '\u{200b}'..='\u{200f}'   // zero-width space, joiners, LRM, RLM
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2028}'..='\u{2029}' // line and paragraph separators
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{061c}'               // Arabic letter mark
            | '\u{feff}'               // zero-width no-break space
            | '\u{00ad}'               // soft hyphen
    );
    if c.is_control() || invisible { '?' } else { c }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        assert_eq!(line(0, "root", "root"), "root  {user=root}");
        assert_eq!(
            line(2, "/usr/sbin/cron -f", "root"),
            "    /usr/sbin/cron -f  {user=root}"
        );
    }

    #[test]
    fn parse_line_is_the_inverse_of_line() {
        let text = line(3, "evil  {user=root}", "mallory");
        let parsed = parse_line(&text).unwrap();
        assert_eq!(
            parsed,
            ParsedLine {
                depth: 3,
                cmdline: "evil  {user=root}",
                user: "mallory"
            }
        );
        assert_eq!(parse_line("root  {user=root}").unwrap().depth, 0);
        assert_eq!(parse_line("no user"), None);
        assert_eq!(parse_line("  {user=x}"), None);
        assert_eq!(parse_line("x  {user=}"), None);
    }

    #[test]
    fn printable_replaces_controls_and_bad_utf8() {
        assert_eq!(printable(b"a\tb\nc\x1b[31m\x7f"), "a?b?c?[31m?");
        assert_eq!(printable(b"caf\xc3\xa9 \xff"), "café \u{fffd}");
        assert_eq!(printable("x\u{85}y".as_bytes()), "x?y");
        assert_eq!(
            printable("/usr/sbin/\u{202e}dhss\u{200b}x".as_bytes()),
            "/usr/sbin/?dhss?x"
        );
        assert_eq!(printable("a\u{2028}b\u{2029}".as_bytes()), "a?b?");
    }

    /// A title cannot start with blanks that read as a deeper line.
    #[test]
    fn leading_blanks_show_as_marks() {
        let mut p = crate::snapshot::test_process(7, 1);
        p.cmdline = b"   INIT\0x".to_vec().into();
        let text = line(2, &cmdline(&p), "mallory");
        assert_eq!(text, "    ???INIT x  {user=mallory}");
        assert_eq!(parse_line(&text).unwrap().depth, 2);
    }
}
