//! The globs of a `match` key (`exe`, `unit`, `cgroup`...), compiled once.

use crate::config::schema::Globs;

/// Compiled globs; any may match. Plain names (most of them) are
/// compared as strings, which is many times faster than a glob.
#[derive(Debug, Clone)]
pub struct Patterns {
    literals: Vec<String>,
    globs: globset::GlobSet,
}

impl Patterns {
    pub(super) fn compile(globs: &Globs) -> Patterns {
        let (globs, literals): (Vec<&String>, Vec<&String>) =
            globs.0.iter().partition(|g| crate::config::is_glob(g));
        let mut set = globset::GlobSetBuilder::new();
        for glob in globs {
            // Checked when the config was read.
            set.add(crate::config::glob(glob).expect("a glob the config checked"));
        }
        Patterns {
            literals: literals.into_iter().cloned().collect(),
            globs: set.build().expect("globs that each compiled"),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        self.literals.iter().any(|l| l == text) || self.globs.is_match(text)
    }
}
