//! The keys of a `match` table, one type each: a key's name, its
//! documentation, how it compiles, what it rests on, what it reads from
//! /proc and how it tests a process all sit in its own `impl`s. Adding a
//! key is a field in `MatchDef` (the file's shape), a type here, and its
//! row in `KEYS`.

mod cgroup;
mod chosen;
mod identity;
mod parent;
mod state;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use super::{Fail, Population, Subjects};
use crate::config::ConfigError;
use crate::config::schema::MatchDef;
use crate::snapshot::{Fields, Process, UserNames};

pub use cgroup::{CgroupPath, Container, Login, Slice, TimerJob, Unit, UserUnit};
pub use chosen::{Argv0, Cmdline, CmdlinePrefix, Comm, CommandKey, Disguised};
pub use identity::{Exe, Group, User};
pub use parent::Parent;
pub use state::{
    Entered, Invocation, KernelThread, Pid, Selinux, SelinuxDomain, State, YoungerThan,
};

/// What a condition rests on, which decides how far a rule built on it
/// is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ground {
    /// A name the process's user chooses: comm, argv, cmdline. Taken
    /// only from a process whose argv[0] is not disguised.
    Name,
    /// What the kernel attests and a user cannot choose: the executable,
    /// the user and group, the system manager's unit and slice.
    Identity,
    /// A cgroup name in the subtree systemd delegates to a user
    /// (`user_unit`, `container`, a `cgroup` glob): attested enough for a
    /// kill check to aim at, not for a rule to hide by.
    Delegated,
    /// A fact the kernel or root states that names no program: the pid,
    /// kernel thread, pid namespace, state, login, timer, invocation.
    Fact,
    /// Neither: SELinux context, disguise, age.
    Other,
}

/// One process under test, with what a condition may need to judge it.
pub struct Subject<'s> {
    pub subjects: &'s dyn Subjects,
    pub i: usize,
    /// Whether the selector picks what is hidden (`Selector::strict`).
    pub strict: bool,
}

impl<'s> Subject<'s> {
    pub fn population(&self) -> &'s Population<'s> {
        self.subjects.population()
    }

    pub fn process(&self) -> &'s Process {
        &self.population().processes[self.i]
    }

    /// The cmdline as printed (`Subjects::cmdline`).
    pub fn cmdline(&self) -> &'s str {
        self.subjects.cmdline(self.i)
    }
}

/// A compiled condition of a `match` table.
pub trait Condition: Any + Debug + Send + Sync {
    fn ground(&self) -> Ground;

    /// Whether the process meets it.
    fn matches(&self, subject: &Subject) -> bool;

    /// What must be read from /proc beyond the basics to test it.
    fn needs(&self) -> Fields {
        Fields::default()
    }

    /// For a strict selector, once every condition matched: whether what
    /// it saw may be trusted (an executable with no doubts, a user not
    /// lent by a setuid file). It may read /proc.
    fn trusted(&self, _subject: &Subject) -> bool {
        true
    }

    /// Whether it names its processes by what the kernel attests, the
    /// cgroup names a user may choose included (what kill checks need).
    fn attested(&self) -> bool {
        matches!(self.ground(), Ground::Identity | Ground::Delegated)
    }

    /// Whether it rests on what the kernel or root attests, not only on
    /// what a local user can shape (what `config check` wants of a rule
    /// that hides).
    fn kernel_attested(&self) -> bool {
        matches!(self.ground(), Ground::Identity | Ground::Fact)
    }

    /// Whether it is tested after the others, which may spare it: it
    /// renders or searches the cmdline, walks to the parent, or works
    /// something out over the whole population.
    fn costly(&self) -> bool {
        false
    }

    /// Whether it takes a process running `exe` by that executable.
    fn names_exe(&self, _exe: &str) -> bool {
        false
    }

    /// A user or group it names that this host does not have, as
    /// `user "NAME"`: such a condition matches nothing.
    fn unknown_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What compiling a `match` table has at hand.
pub struct Compiling<'a> {
    /// The `--passwd` file or NSS.
    pub users: &'a UserNames,
    pub fail: &'a Fail<'a>,
}

/// A key's type: its name, documentation and how it compiles.
pub trait Key: Condition + Sized {
    /// The key as `explain` names it.
    const NAME: &'static str;
    /// The keys of `MatchDef` it is written with, as the man page heads
    /// its entry.
    const WRITTEN: &'static str = Self::NAME;
    /// What it matches.
    const DOC: &'static str;

    /// The condition `def` gives, if it gives one.
    fn compile(def: &MatchDef, cx: &Compiling) -> Result<Option<Self>, ConfigError>;
}

/// A compiled condition with the name of its key.
pub type Compiled = (&'static str, Arc<dyn Condition>);

/// One row of `KEYS`.
pub struct Row {
    pub written: &'static str,
    pub doc: &'static str,
    pub compile: fn(&MatchDef, &Compiling) -> Result<Option<Compiled>, ConfigError>,
}

const fn row<K: Key>() -> Row {
    fn compile<K: Key>(def: &MatchDef, cx: &Compiling) -> Result<Option<Compiled>, ConfigError> {
        Ok(K::compile(def, cx)?.map(|k| (K::NAME, Arc::new(k) as Arc<dyn Condition>)))
    }
    Row {
        written: K::WRITTEN,
        doc: K::DOC,
        compile: compile::<K>,
    }
}

/// Every key of a `match` table, in the order the man page lists them and
/// a selector tests them.
pub const KEYS: &[Row] = &[
    row::<Pid>(),
    row::<Comm>(),
    row::<Exe>(),
    row::<Argv0>(),
    row::<CommandKey>(),
    row::<Cmdline>(),
    row::<CmdlinePrefix>(),
    row::<User>(),
    row::<Group>(),
    row::<KernelThread>(),
    row::<Entered>(),
    row::<State>(),
    row::<Selinux>(),
    row::<SelinuxDomain>(),
    row::<Unit>(),
    row::<UserUnit>(),
    row::<Slice>(),
    row::<CgroupPath>(),
    row::<Container>(),
    row::<Login>(),
    row::<TimerJob>(),
    row::<Disguised>(),
    row::<Invocation>(),
    row::<YoungerThan>(),
    row::<Parent>(),
];
