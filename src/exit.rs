//! How psdiff exits: the exit codes of README.md's "Exit codes", and the
//! Nagios plugin states `--format nagios` exits with. A leaf: every layer
//! may say how it ends.

/// What each plain exit code means: the one text README.md's table, the
/// man page and `--help` give (tests/it/docs.rs holds them to it).
pub const CODES: [(u8, &str); 4] = [
    (0, "nothing to report"),
    (
        1,
        "something to report: differences, failed checks (for explain: a pid that does not exist)",
    ),
    (2, "usage or configuration error"),
    (
        3,
        "runtime failure: /proc unreadable, hidden (hidepid) or not a proc tree; the executables \
         of other users' processes unreadable (psdiff is not root); the baseline unreadable or \
         damaged; a write failed",
    ),
];

/// How psdiff exits. Plain formats use the first four (see README.md);
/// `--format nagios` uses the Nagios plugin states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing to report.
    Clean,
    /// Something to report: differences, failed checks, unknown pids.
    Report,
    /// Usage or configuration error.
    Usage,
    /// Runtime failure: /proc, the baseline or output unreadable/unwritable.
    Runtime,
    Nagios(NagiosState),
    /// `psdiff files -- CMD`, `psdiff contain`: the command's own exit status.
    Command(u8),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::Report => 1,
            Exit::Usage => 2,
            Exit::Runtime => 3,
            Exit::Nagios(state) => state as u8,
            Exit::Command(status) => status,
        }
    }
}

/// The Nagios plugin states, in order of severity; each is its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NagiosState {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl NagiosState {
    pub fn label(self) -> &'static str {
        match self {
            NagiosState::Ok => "OK",
            NagiosState::Warning => "WARNING",
            NagiosState::Critical => "CRITICAL",
            NagiosState::Unknown => "UNKNOWN",
        }
    }
}
