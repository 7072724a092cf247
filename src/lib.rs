//! psdiff: watch a server's processes against a known-good baseline.
//!
//! /proc ─snapshot─▶ processes ─tree─▶ tree ─rules─▶ view ─render─▶ lines

pub mod cli;
pub mod commands;
pub mod error;
pub mod render;
pub mod rules;
pub mod snapshot;
pub mod tree;
