//! The application layer: what the commands, the API and the checks share
//! between the command line and the domain below. `context` says where
//! processes, rules, users and the baseline come from; `comparison` sets
//! the baseline against a fresh dump; `measure` takes the snapshots the
//! checks evaluate; `settle` is the `--retry` loop both use; `transients`
//! and `history` read the watcher's journal for show and for history and
//! the API; `error` is what they fail with.

pub mod comparison;
pub mod context;
mod error;
pub mod history;
pub mod measure;
pub mod settle;
pub mod transients;

pub use error::Error;
