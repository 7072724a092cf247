//! The baseline against a fresh dump: the texts `show`, `/api/diff` and
//! `/metrics` compare, looked at again (with `--retry`) until the kinds
//! of change asked for are gone.

use crate::baseline;
use crate::context::Context;
use crate::error::Error;
use crate::report::{self, Wanted};
use crate::settle::settle;

/// What to compare: the baseline's text (empty without one) and a dump.
pub struct Comparison {
    /// Whether there is a baseline.
    pub baseline: bool,
    pub old: String,
    pub new: String,
}

impl Comparison {
    pub fn changes(&self, wanted: Wanted) -> Vec<report::Change<'_>> {
        report::changes(&self.old, &self.new, wanted)
    }
}

/// Reads the rules and the baseline, and dumps until the wanted kinds of
/// change are gone or the retries are used up. Without a baseline there
/// is nothing to settle, so no retry.
pub fn settled(context: &Context, wanted: Wanted, retry: bool) -> Result<Comparison, Error> {
    let rules = context.rules()?;
    let baseline = baseline::read(&context.db)?;
    let present = baseline.is_some();
    let old = baseline.map_or(String::new(), |b| b.text);
    let new = settle(
        retry && present,
        |_| context.view(&rules).map(|v| v.text()),
        |new| !report::changes(&old, new, wanted).is_empty(),
    )?;
    Ok(Comparison {
        baseline: present,
        old,
        new,
    })
}
