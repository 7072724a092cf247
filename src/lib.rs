//! psdiff: watch a server's processes against a known-good baseline.
//!
//! /proc ─snapshot─▶ processes ─tree─▶ tree ─rules─▶ view ─render─▶ lines
//! baseline file ─diff─▶ changes ─report─▶ text / json / nagios

pub mod atomic;
pub mod baseline;
pub mod check;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod diff;
pub mod error;
pub mod files;
pub mod fuzz;
pub mod mounts;
pub mod render;
pub mod report;
pub mod rules;
pub mod serve;
pub mod snapshot;
pub mod tree;
