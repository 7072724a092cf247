//! `parent`: a table of keys that the parent process must match.

use super::{Compiling, Condition, Ground, Key, Subject};
use crate::config::ConfigError;
use crate::config::schema::MatchDef;
use crate::select::Selector;
use crate::snapshot::Fields;

#[derive(Debug)]
pub struct Parent(Selector);

impl Key for Parent {
    const NAME: &'static str = "parent";
    const DOC: &'static str = "a table of these keys that the parent process must match";

    fn compile(def: &MatchDef, cx: &Compiling) -> Result<Option<Self>, ConfigError> {
        let Some(parent) = def.parent.as_deref() else {
            return Ok(None);
        };
        Ok(Some(Parent(Selector::compile(parent, cx.users, cx.fail)?)))
    }
}

impl Condition for Parent {
    fn ground(&self) -> Ground {
        Ground::Other
    }

    /// The parent is held to the selector's own strictness.
    fn matches(&self, subject: &Subject) -> bool {
        let population = subject.population();
        population
            .parent(subject.i)
            .is_some_and(|p| self.0.test(subject.subjects, p, subject.strict))
    }

    fn needs(&self) -> Fields {
        self.0.needs()
    }

    fn costly(&self) -> bool {
        true
    }

    fn attested(&self) -> bool {
        self.0.attested()
    }

    fn kernel_attested(&self) -> bool {
        self.0.kernel_attested()
    }

    fn names_exe(&self, exe: &str) -> bool {
        self.0.names_exe(exe)
    }

    fn unknown_names(&self) -> Vec<String> {
        self.0.unknown_names()
    }
}
