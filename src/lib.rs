//! psdiff: watch a server's processes against a known-good baseline.
//!
//! ```text
//! /proc ─snapshot─▶ processes ─tree─▶ tree ─rules─▶ view ─render─▶ lines
//!                                                     │
//!                   baseline file ◀── write, manual ──┤
//!                   baseline file ──── comparison ────┴─▶ report (text/json/nagios/prometheus)
//! processes ─check─▶ outcomes ─▶ report (mon/nagios/json/prometheus) + actions
//! ```
//!
//! Below the commands (each in `commands/`, called by `main`):
//! - `context`: where processes, rules, users and the baseline come from.
//! - `config`: the TOML file and its drop-ins, into one `Config`, with
//!   FILE:LINE:COLUMN errors; `select`: the one match language its
//!   `match` tables speak.
//! - `snapshot`: reading /proc (or `--proc-root`), cgroups included;
//!   `host`: what logind, timers and container runtimes say beyond it;
//!   `sockets`: the sockets of each network namespace and who holds them;
//!   `tree`: parents and
//!   the sibling order; `rules`: shaping the tree into a `View`;
//!   `render`: the line format.
//! - `baseline`: the stored file; `record`: the rules it was written
//!   with; `identity`: who each of its lines was; `diff`: the line diff; `comparison`:
//!   the baseline against a fresh dump; `settle`: the retry loop.
//! - `check`: counts, resources, ports, CPU, credential and deleted-file
//!   checks, and their actions; `contain`: how serve runs a command.
//! - `report`: every output format of show, diff and check.
//! - `serve`, `files`: the API server and the file watcher.

pub mod atomic;
pub mod baseline;
pub mod check;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod comparison;
pub mod config;
pub mod contain;
pub mod context;
pub mod diff;
pub mod error;
pub mod files;
pub mod fuzz;
pub mod host;
pub mod identity;
pub mod invocation;
pub mod mounts;
pub mod pidfd;
pub mod record;
pub mod render;
pub mod report;
pub mod rules;
pub mod select;
pub mod serve;
pub mod settle;
pub mod snapshot;
pub mod sockets;
pub mod tree;
