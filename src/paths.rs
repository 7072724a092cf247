//! Where psdiff keeps its files by default. A leaf, so the command line
//! (which shows them in `--help`) and the modules that own each file read
//! the same value.

/// The baseline (as the Python psdiff kept it); `psdiff.rules` and
/// `psdiff.ids` lie beside it.
pub const BASELINE: &str = "/var/lib/psdiff.db";

/// State that checks keep between runs (the restarts ledger).
pub const STATE_DIR: &str = "/var/lib/psdiff";

/// The API's tokens, hashed.
pub const TOKENS: &str = "/etc/psdiff/tokens";

/// The watcher's journal (`psdiff watch`), read by show, check and history.
pub const JOURNAL: &str = "/var/lib/psdiff/journal.sqlite";
