//! Where a setting was written, and errors that point there:
//! `FILE:LINE:COLUMN: rule "NAME": what is wrong` (or `check "NAME"`), with the nearest valid
//! key or value for a typo.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

/// A configuration that cannot be used: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// Line and column, both from 1.
    pub position: Option<(usize, usize)>,
    /// The `[[rule]]` or `[[check]]` it is in, by name.
    pub rule: Option<String>,
    /// Which of the two: `rule` or `check`.
    pub table: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": {} \"{rule}\"", self.table)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about a whole file, with no position in it.
    pub fn file(file: impl fmt::Display, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            position: None,
            rule: None,
            table: "rule",
            message: message.into(),
        }
    }
}

/// Where a table was written, for `explain` and for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A table of the file (a `[[rule]]`, a `[[check]]`) with where it was
/// written and the file's text, so that compiling it can point at the
/// exact key that is wrong.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub def: T,
    pub origin: Origin,
    /// What the table is: `rule` or `check`.
    pub table: &'static str,
    text: Arc<str>,
}

impl<T> Located<T> {
    pub fn new(
        table: &'static str,
        spanned: Spanned<T>,
        file: &Arc<str>,
        text: &Arc<str>,
    ) -> Located<T> {
        let (line, column) = line_column(text, spanned.span().start);
        Located {
            def: spanned.into_inner(),
            origin: Origin {
                file: file.clone(),
                line,
                column,
            },
            table,
            text: text.clone(),
        }
    }

    /// An error in this table named `name`: at `span` when given, else at
    /// the table's start.
    pub fn error(&self, name: &str, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError {
            file: self.origin.file.to_string(),
            position: Some(match span {
                Some(span) => line_column(&self.text, span.start),
                None => (self.origin.line, self.origin.column),
            }),
            rule: Some(name.to_string()),
            table: self.table,
            message,
        }
    }
}

/// Turns a TOML or schema error into one line with its position, the
/// table it is in, and for an unknown key or value the nearest valid one.
pub fn deserialize_error(name: &str, text: &str, error: &toml::de::Error) -> ConfigError {
    let span = error.span();
    let (table, rule) = match span.clone().and_then(|s| table_name_at(text, s)) {
        Some((table, name)) => (table, Some(name)),
        None => ("rule", None),
    };
    ConfigError {
        file: name.to_string(),
        position: span.as_ref().map(|s| line_column(text, s.start)),
        rule,
        table,
        message: with_suggestion(error.message().trim()),
    }
}

/// serde says "unknown field `nmae`, expected one of `name`, `match`";
/// point at the likely intended one.
fn with_suggestion(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let unknown = ["unknown field", "unknown variant"]
        .iter()
        .find(|p| message.starts_with(*p));
    let (Some(kind), Some((wrong, valid))) = (unknown, quoted.split_first()) else {
        return message.to_string();
    };
    let what = if *kind == "unknown field" {
        "key"
    } else {
        "value"
    };
    let list = valid.join(", ");
    match did_you_mean(wrong, valid) {
        Some(v) => format!("unknown {what} `{wrong}`; did you mean `{v}`? (valid: {list})"),
        None if valid.is_empty() => format!("unknown {what} `{wrong}`"),
        None => format!("unknown {what} `{wrong}` (valid: {list})"),
    }
}

/// The valid word nearest to `wrong`, when it is near enough to be the
/// one meant.
pub fn did_you_mean<'a>(wrong: &str, valid: &[&'a str]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(wrong, v), *v))
        .filter(|(d, _)| *d <= 2.max(wrong.chars().count() / 2))
        .min()
        .map(|(_, v)| v)
}

/// The name of the `[[rule]]` or `[[check]]` whose table holds `span`, if
/// any: the one whose header is the last table header before it.
fn table_name_at(text: &str, span: Range<usize>) -> Option<(&'static str, String)> {
    let table = toml::de::DeTable::parse(text).ok()?;
    let mut headers: Vec<(usize, Option<(&'static str, String)>)> = Vec::new();
    for (key, value) in table.get_ref() {
        let kind = match key.get_ref().as_ref() {
            "rule" => Some("rule"),
            "check" => Some("check"),
            _ => None,
        };
        let tables: Vec<_> = match value.get_ref().as_array() {
            Some(array) => array.iter().collect(),
            None => vec![value],
        };
        for t in tables.into_iter().filter(|t| t.get_ref().is_table()) {
            let name = kind.and_then(|kind| {
                Some((
                    kind,
                    t.get_ref().get("name")?.get_ref().as_str()?.to_string(),
                ))
            });
            headers.push((t.span().start, name));
        }
    }
    headers
        .into_iter()
        .filter(|(start, _)| *start <= span.start)
        .max_by_key(|(start, _)| *start)?
        .1
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}
