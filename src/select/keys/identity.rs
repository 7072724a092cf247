//! Keys on what the kernel attests of a process and its user cannot
//! choose: the executable, the user and the group.

use nix::unistd::Group as NssGroup;

use super::{Compiling, Condition, Ground, Key, Subject};
use crate::config::ConfigError;
use crate::config::schema::MatchDef;
use crate::select::Patterns;
use crate::snapshot::Fields;

#[derive(Debug)]
pub struct Exe(Patterns);

impl Key for Exe {
    const NAME: &'static str = "exe";
    const DOC: &'static str = "/proc/PID/exe: a path or glob, or a list of them (a \" (deleted)\" suffix after an upgrade is ignored); a user cannot fake it";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.exe.as_ref().map(|g| Exe(Patterns::compile(g))))
    }
}

impl Condition for Exe {
    fn ground(&self) -> Ground {
        Ground::Identity
    }

    fn matches(&self, subject: &Subject) -> bool {
        subject
            .process()
            .exe_path()
            .is_some_and(|p| self.0.matches(p))
    }

    fn needs(&self) -> Fields {
        Fields {
            exe: true,
            ..Fields::default()
        }
    }

    /// The executable is the host's file with no code slipped in
    /// (`Population::doubts`).
    fn trusted(&self, subject: &Subject) -> bool {
        subject.population().doubts(subject.i).is_empty()
    }

    fn names_exe(&self, exe: &str) -> bool {
        self.0.matches(exe)
    }
}

/// A user or group id given by name: the id, or the name when this host
/// has no such user (which matches nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Known(u32),
    Unknown(String),
}

impl Id {
    fn is(&self, id: u32) -> bool {
        *self == Id::Known(id)
    }

    /// The id `name` or `number` gives (`key` and `number_key` the keys
    /// they are written with), looking a name up with `lookup`.
    fn compile(
        name: &Option<String>,
        number: Option<u32>,
        (key, number_key): (&str, &str),
        lookup: &dyn Fn(&str) -> Option<u32>,
        cx: &Compiling,
    ) -> Result<Option<Id>, ConfigError> {
        match (name, number) {
            (Some(_), Some(_)) => Err((cx.fail)(
                None,
                format!("give `{key}` or `{number_key}`, not both"),
            )),
            (Some(name), None) => Ok(Some(match name.parse() {
                Ok(n) => Id::Known(n),
                Err(_) => lookup(name).map_or_else(|| Id::Unknown(name.clone()), Id::Known),
            })),
            (None, number) => Ok(number.map(Id::Known)),
        }
    }

    fn unknown(&self, what: &str) -> Vec<String> {
        match self {
            Id::Unknown(name) => vec![format!("{what} {name:?}")],
            Id::Known(_) => Vec::new(),
        }
    }
}

/// The effective user.
#[derive(Debug)]
pub struct User(pub Id);

impl Key for User {
    const NAME: &'static str = "user";
    const WRITTEN: &'static str = "user, uid";
    const DOC: &'static str = "the effective user, by name (from --passwd, else NSS) or number";

    fn compile(def: &MatchDef, cx: &Compiling) -> Result<Option<Self>, ConfigError> {
        let lookup = |n: &str| cx.users.uid_of(n);
        Ok(Id::compile(&def.user, def.uid, ("user", "uid"), &lookup, cx)?.map(User))
    }
}

impl Condition for User {
    fn ground(&self) -> Ground {
        Ground::Identity
    }

    fn matches(&self, subject: &Subject) -> bool {
        self.0.is(subject.process().uids.effective)
    }

    /// The user is the process's own, not lent by a setuid file it runs
    /// (`passwd` titled like a daemon).
    fn trusted(&self, subject: &Subject) -> bool {
        let uids = &subject.process().uids;
        uids.real == uids.effective
    }

    fn unknown_names(&self) -> Vec<String> {
        self.0.unknown("user")
    }
}

/// The effective group.
#[derive(Debug)]
pub struct Group(pub Id);

impl Key for Group {
    const NAME: &'static str = "group";
    const WRITTEN: &'static str = "group, gid";
    const DOC: &'static str = "the effective group, likewise";

    fn compile(def: &MatchDef, cx: &Compiling) -> Result<Option<Self>, ConfigError> {
        let lookup = |name: &str| Some(NssGroup::from_name(name).ok()??.gid.as_raw());
        Ok(Id::compile(&def.group, def.gid, ("group", "gid"), &lookup, cx)?.map(Group))
    }
}

impl Condition for Group {
    fn ground(&self) -> Ground {
        Ground::Identity
    }

    fn matches(&self, subject: &Subject) -> bool {
        self.0.is(subject.process().gids.effective)
    }

    /// The group is the process's own, not lent by a setgid file.
    fn trusted(&self, subject: &Subject) -> bool {
        let gids = &subject.process().gids;
        gids.real == gids.effective
    }

    fn unknown_names(&self) -> Vec<String> {
        self.0.unknown("group")
    }
}
