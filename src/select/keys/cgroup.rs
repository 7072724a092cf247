//! Keys on what a process's cgroup says: the unit, slice and container it
//! runs in, and whether a login or a timer holds it. A process whose
//! cgroup could not be read matches none of them.

use super::{Compiling, Condition, Ground, Key, Subject};
use crate::config::ConfigError;
use crate::config::schema::{Globs, MatchDef};
use crate::select::Patterns;
use crate::snapshot::{Cgroup, Fields};

fn reads_cgroup() -> Fields {
    Fields {
        cgroup: true,
        ..Fields::default()
    }
}

fn cgroup<'s>(subject: &Subject<'s>) -> Option<&'s Cgroup> {
    subject.process().cgroup.as_deref()
}

fn globs(globs: &Option<Globs>) -> Option<Patterns> {
    globs.as_ref().map(Patterns::compile)
}

fn glob(patterns: &Patterns, value: Option<&str>) -> bool {
    value.is_some_and(|v| patterns.matches(v))
}

#[derive(Debug)]
pub struct Unit(Patterns);

impl Key for Unit {
    const NAME: &'static str = "unit";
    const DOC: &'static str = "a glob on the systemd unit of the system manager (nginx.service, session-4.scope, user@1000.service)";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(globs(&def.unit).map(Unit))
    }
}

impl Condition for Unit {
    fn ground(&self) -> Ground {
        Ground::Identity
    }

    fn matches(&self, subject: &Subject) -> bool {
        glob(&self.0, cgroup(subject).and_then(|c| c.unit.as_deref()))
    }

    fn needs(&self) -> Fields {
        reads_cgroup()
    }
}

#[derive(Debug)]
pub struct UserUnit(Patterns);

impl Key for UserUnit {
    const NAME: &'static str = "user_unit";
    const DOC: &'static str = "a glob on the unit inside a user's manager (a systemd-run --user service); its user names it";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(globs(&def.user_unit).map(UserUnit))
    }
}

impl Condition for UserUnit {
    fn ground(&self) -> Ground {
        Ground::Delegated
    }

    fn matches(&self, subject: &Subject) -> bool {
        glob(
            &self.0,
            cgroup(subject).and_then(|c| c.user_unit.as_deref()),
        )
    }

    fn needs(&self) -> Fields {
        reads_cgroup()
    }
}

#[derive(Debug)]
pub struct Slice(Patterns);

impl Key for Slice {
    const NAME: &'static str = "slice";
    const DOC: &'static str = "a glob on the slice of the unit (system.slice, user-1000.slice)";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(globs(&def.slice).map(Slice))
    }
}

impl Condition for Slice {
    fn ground(&self) -> Ground {
        Ground::Identity
    }

    fn matches(&self, subject: &Subject) -> bool {
        glob(&self.0, cgroup(subject).and_then(|c| c.slice.as_deref()))
    }

    fn needs(&self) -> Fields {
        reads_cgroup()
    }
}

/// `cgroup`: the whole path.
#[derive(Debug)]
pub struct CgroupPath(Patterns);

impl Key for CgroupPath {
    const NAME: &'static str = "cgroup";
    const DOC: &'static str =
        "a glob on the whole cgroup path; below user@UID.service its user names the parts";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(globs(&def.cgroup).map(CgroupPath))
    }
}

impl Condition for CgroupPath {
    fn ground(&self) -> Ground {
        Ground::Delegated
    }

    fn matches(&self, subject: &Subject) -> bool {
        glob(&self.0, cgroup(subject).map(|c| c.path.as_str()))
    }

    fn needs(&self) -> Fields {
        reads_cgroup()
    }
}

#[derive(Debug)]
pub struct Container(Patterns);

impl Key for Container {
    const NAME: &'static str = "container";
    const DOC: &'static str = "a glob on the container's name (docker, podman) or id; \"*\": in any container; a user can name a cgroup of their own like one";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(globs(&def.container).map(Container))
    }
}

impl Condition for Container {
    fn ground(&self) -> Ground {
        Ground::Delegated
    }

    fn matches(&self, subject: &Subject) -> bool {
        let machine = subject.population().machine;
        let name = cgroup(subject)
            .and_then(|c| c.container.as_ref())
            .map(|c| machine.container_name(c).unwrap_or(&c.id));
        glob(&self.0, name)
    }

    fn needs(&self) -> Fields {
        reads_cgroup()
    }
}

#[derive(Debug)]
pub struct Login(bool);

impl Key for Login {
    const NAME: &'static str = "login";
    const DOC: &'static str = "true when it belongs to a login still open: a session logind calls opening, active or online, or the systemd --user of a user logged in";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.login.map(Login))
    }
}

impl Condition for Login {
    fn ground(&self) -> Ground {
        Ground::Fact
    }

    fn matches(&self, subject: &Subject) -> bool {
        let process = subject.process();
        process.cgroup.is_some() && subject.population().in_open_login(process) == self.0
    }

    fn needs(&self) -> Fields {
        reads_cgroup()
    }
}

#[derive(Debug)]
pub struct TimerJob(bool);

impl Key for TimerJob {
    const NAME: &'static str = "timer_job";
    const DOC: &'static str = "true when a systemd timer starts its unit";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.timer_job.map(TimerJob))
    }
}

impl Condition for TimerJob {
    fn ground(&self) -> Ground {
        Ground::Fact
    }

    fn matches(&self, subject: &Subject) -> bool {
        let machine = subject.population().machine;
        cgroup(subject).is_some_and(|c| {
            let timer = c.unit.as_deref().is_some_and(|u| machine.is_timer_job(u));
            timer == self.0
        })
    }

    fn needs(&self) -> Fields {
        reads_cgroup()
    }
}
