//! API tokens: stored as SHA-256 hashes, one per line, in a file only its
//! owner may read. A token is shown once, when it is made.
//!
//! File format: `NAME SCOPE HASH`, where SCOPE is `read` or `control` and
//! HASH is the hex SHA-256 of the token; `#` starts a comment.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters of a token: 64 of them, so each random byte's low six bits
/// pick one without bias.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// 43 characters of 6 bits: 258 bits of randomness.
const TOKEN_LENGTH: usize = 43;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The read routes, without what only ptrace access would show of
    /// another user's process (`exe`, `cwd`, `open_files`, `connections`).
    Read,
    /// The read routes with every field.
    Inspect,
    /// Every field and, with `--allow-control`, the control routes.
    Control,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Inspect => "inspect",
            Scope::Control => "control",
        }
    }

    /// Whether it sees the fields of `process::SENSITIVE`.
    pub fn inspects(self) -> bool {
        matches!(self, Scope::Inspect | Scope::Control)
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub scope: Scope,
    hash: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {}: {source}; create a token with `psdiff token add NAME`", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the token file {} has mode {mode:04o}: group or others may read or change it; run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    Insecure { path: PathBuf, mode: u32 },
    #[error("refused the token file {}: {why}", .path.display())]
    Untrusted { path: PathBuf, why: String },
    #[error("{}:{line}: {message}", .path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot write the token file {}: {source}", .path.display())]
    Unwritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

/// The tokens of one file.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub entries: Vec<Token>,
}

impl Tokens {
    /// Reads `path`, refusing a file that group or others may read or write.
    pub fn load(path: &Path) -> Result<Tokens, TokenError> {
        let unreadable = |source| TokenError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Insecure {
                path: path.to_path_buf(),
                mode,
            });
        }
        crate::config::trust::file(path, &meta).map_err(|u| TokenError::Untrusted {
            path: path.to_path_buf(),
            why: u.why,
        })?;
        let text = std::io::read_to_string(file).map_err(unreadable)?;
        Tokens::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Tokens, TokenError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |message: String| TokenError::Malformed {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, scope, hash] = fields[..] else {
                return Err(malformed(
                    "expected `NAME SCOPE SHA256`; remake the file with `psdiff token add`".into(),
                ));
            };
            check_name(name).map_err(malformed)?;
            let scope = match scope {
                "read" => Scope::Read,
                "inspect" => Scope::Inspect,
                "control" => Scope::Control,
                other => {
                    return Err(malformed(format!(
                        "unknown scope `{other}` (valid: read, inspect, control)"
                    )));
                }
            };
            let hash = parse_hex(hash)
                .ok_or_else(|| malformed("the hash is not 64 hexadecimal digits".into()))?;
            entries.push(Token {
                name: name.to_string(),
                scope,
                hash,
            });
        }
        Ok(Tokens { entries })
    }

    /// The token whose hash matches `presented`. Every entry is compared in
    /// constant time, so the answer's timing tells nothing of the tokens.
    pub fn verify(&self, presented: &str) -> Option<&Token> {
        let hash = sha256(presented);
        let mut found = None;
        for token in &self.entries {
            if bool::from(token.hash.ct_eq(&hash)) {
                found = Some(token);
            }
        }
        found
    }

    fn render(&self) -> String {
        let mut out =
            String::from("# psdiff API tokens: NAME SCOPE SHA256; see `psdiff token --help`\n");
        for t in &self.entries {
            out.push_str(&format!(
                "{} {} {}\n",
                t.name,
                t.scope.as_str(),
                hex(&t.hash)
            ));
        }
        out
    }
}

/// Adds a token named `name` to the file at `path` (made 0600, with its
/// folder, when missing) and returns the token, the only time it is seen.
pub fn add(path: &Path, name: &str, scope: Scope) -> Result<String, TokenError> {
    check_name(name).map_err(TokenError::Usage)?;
    let mut tokens = load_or_empty(path)?;
    if tokens.entries.iter().any(|t| t.name == name) {
        return Err(TokenError::Usage(format!(
            "a token named `{name}` exists; revoke it first (`psdiff token revoke {name}`) or pick another name"
        )));
    }
    let token = new_token().map_err(|source| TokenError::Unwritable {
        path: path.to_path_buf(),
        source,
    })?;
    tokens.entries.push(Token {
        name: name.to_string(),
        scope,
        hash: sha256(&token),
    });
    store(path, &tokens)?;
    Ok(token)
}

/// Removes the token named `name`; an unknown name is a usage error.
pub fn revoke(path: &Path, name: &str) -> Result<(), TokenError> {
    let mut tokens = Tokens::load(path)?;
    let before = tokens.entries.len();
    tokens.entries.retain(|t| t.name != name);
    if tokens.entries.len() == before {
        return Err(TokenError::Usage(format!(
            "no token named `{name}` in {}; `psdiff token list` shows them",
            path.display()
        )));
    }
    store(path, &tokens)
}

fn load_or_empty(path: &Path) -> Result<Tokens, TokenError> {
    match Tokens::load(path) {
        Err(TokenError::Unreadable { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(Tokens::default())
        }
        other => other,
    }
}

/// Writes the file whole: a 0600 temp file beside it, renamed over it, so
/// a failed write never leaves the server without its tokens.
fn store(path: &Path, tokens: &Tokens) -> Result<(), TokenError> {
    let unwritable = |source| TokenError::Unwritable {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Only root (its owner) may list or change what is in it.
        crate::atomic::create_dirs(dir, 0o700).map_err(unwritable)?;
    }
    crate::atomic::write(path, tokens.render().as_bytes(), 0o600).map_err(unwritable)
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "token name `{name}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
        ))
    }
}

fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_LENGTH];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect())
}

/// 32 hexadecimal characters of randomness: an id nobody can guess.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the kernel's random source works");
    hex(&bytes)
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), TOKEN_LENGTH);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn verify_finds_only_the_matching_token() {
        let text = format!(
            "# comment\nmon read {}\nops control {}\naudit inspect {}\n",
            hex(&sha256("secret-one")),
            hex(&sha256("secret-two")),
            hex(&sha256("secret-four"))
        );
        let tokens = Tokens::parse(Path::new("t"), &text).unwrap();
        assert_eq!(tokens.verify("secret-one").unwrap().name, "mon");
        assert_eq!(tokens.verify("secret-two").unwrap().scope, Scope::Control);
        assert_eq!(tokens.verify("secret-four").unwrap().scope, Scope::Inspect);
        assert!(Scope::Inspect.inspects() && !Scope::Read.inspects());
        assert!(tokens.verify("secret-three").is_none());
        assert!(tokens.verify("").is_none());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let err = Tokens::parse(Path::new("t"), "\nmon read abc\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t:2: the hash is not 64 hexadecimal digits"
        );
        let err = Tokens::parse(Path::new("t"), &format!("mon admin {}\n", "0".repeat(64)));
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("unknown scope `admin`")
        );
    }
}
