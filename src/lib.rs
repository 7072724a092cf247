//! psdiff: watch a server's processes against a known-good baseline.
//!
//! ```text
//! cli ─▶ commands ─▶ app ─▶ snapshot ─▶ tree ─▶ rules/select ─▶ render ─▶ baseline ─▶ line_diff ─▶ report
//!                     │ (context, comparison, measure, settle)
//!                     └─ beside it, using it: check, serve, files, watch (→ journal)
//!
//! /proc ─snapshot─▶ processes ─tree─▶ tree ─rules─▶ view ─render─▶ lines
//!                   baseline file ◀── write, manual ── view
//!                   baseline file ──── comparison ───▶ report (text/json/nagios/prometheus)
//! processes ─check─▶ outcomes ─▶ report (mon/nagios/json/prometheus) + actions
//! ```
//!
//! - `cli`, `commands`: the command line and one module per subcommand;
//!   `exit`: the exit codes (a leaf); `paths`: the default paths.
//! - `app`: what the commands, the API and the checks share: `context`
//!   (where processes, rules, users and the baseline come from),
//!   `comparison`, `measure`, `settle` (the retry loop), `Error`.
//! - `config`: the TOML file and its drop-ins, into one `Config`, with
//!   FILE:LINE:COLUMN errors; `select`: the one match language its
//!   `match` tables speak.
//! - `snapshot`: reading /proc (or `--proc-root`), cgroups included;
//!   `machine`: what logind, timers and container runtimes say beyond it;
//!   `invocation`: psdiff's own invocation; `sockets`: the sockets of each
//!   network namespace and who holds them; `mounts`: this process's mounts.
//! - `tree`: parents and the sibling order; `rules`: shaping the tree into
//!   a `View`; `render`: the line format.
//! - `baseline`: the stored file (`atomic`: files made exclusively and
//!   renamed into place); `record`: the rules it was written with;
//!   `identity`: who each of its lines was; `line_diff`: the line diff.
//! - `check`: counts, resources, ports, CPU, credential and deleted-file
//!   checks, and their actions (`pidfd`: signals through pidfds).
//! - `report`: every output format of show, diff and check.
//! - `watch`: the daemon that journals every process start and exit from
//!   the kernel's events (`proc_events`); `journal`: its SQLite journal,
//!   which show (transient extras), check (restarts) and history read.
//! - `serve`, `files`: the API server and the file watcher; `contain`:
//!   nothing a command starts outlives its time limit. `clock`: times as
//!   psdiff prints them. `fuzz`: the fuzzer of the parsers (feature
//!   `fuzzing`, for `fuzz/run.sh`).

mod app;
mod atomic;
mod baseline;
mod bpf;
mod check;
pub mod cli;
mod clock;
pub mod commands;
mod config;
mod contain;
pub mod exit;
mod files;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
mod identity;
mod invocation;
mod journal;
pub mod line_diff;
mod machine;
mod mounts;
mod paths;
mod pidfd;
mod proc_events;
mod record;
pub mod render;
mod report;
mod rules;
mod select;
mod serve;
mod snapshot;
mod sockets;
mod tree;
mod watch;
