//! Keys on what the kernel states of a process that names no program:
//! its pid, kind, namespace, state, security context, age, and whether it
//! is part of psdiff's own running.

use std::time::Duration;

use super::{Compiling, Condition, Ground, Key, Subject};
use crate::config::ConfigError;
use crate::config::schema::MatchDef;
use crate::select::regex;
use crate::snapshot::Fields;

#[derive(Debug)]
pub struct Pid(pub u32);

impl Key for Pid {
    const NAME: &'static str = "pid";
    const DOC: &'static str = "the process id";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.pid.map(Pid))
    }
}

impl Condition for Pid {
    fn ground(&self) -> Ground {
        Ground::Fact
    }

    fn matches(&self, subject: &Subject) -> bool {
        subject.process().pid == self.0
    }
}

#[derive(Debug)]
pub struct KernelThread(bool);

impl Key for KernelThread {
    const NAME: &'static str = "kernel_thread";
    const DOC: &'static str = "true for kernel threads";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.kernel_thread.map(KernelThread))
    }
}

impl Condition for KernelThread {
    fn ground(&self) -> Ground {
        Ground::Fact
    }

    fn matches(&self, subject: &Subject) -> bool {
        subject.process().kernel_thread == self.0
    }
}

#[derive(Debug)]
pub struct Entered(bool);

impl Key for Entered {
    const NAME: &'static str = "entered";
    const DOC: &'static str = "true when it was put into this pid namespace from outside (its parent is not in it: nsenter, docker exec, lxc-attach by the host's root); never on the host itself";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.entered.map(Entered))
    }
}

impl Condition for Entered {
    fn ground(&self) -> Ground {
        Ground::Fact
    }

    /// The kernel gives a parent outside our pid namespace as 0; on the
    /// host only init and kthreadd have it.
    fn matches(&self, subject: &Subject) -> bool {
        let process = subject.process();
        let entered = process.ppid == 0 && process.pid != 1 && !process.kernel_thread;
        entered == self.0
    }
}

#[derive(Debug)]
pub struct State(String);

impl Key for State {
    const NAME: &'static str = "state";
    const DOC: &'static str = "any of these state letters: R, S, D, Z (zombie), T, ...";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.state.clone().map(State))
    }
}

impl Condition for State {
    fn ground(&self) -> Ground {
        Ground::Fact
    }

    fn matches(&self, subject: &Subject) -> bool {
        self.0.contains(subject.process().state)
    }
}

fn reads_selinux() -> Fields {
    Fields {
        selinux: true,
        ..Fields::default()
    }
}

#[derive(Debug)]
pub struct Selinux(regex::Regex);

impl Key for Selinux {
    const NAME: &'static str = "selinux";
    const DOC: &'static str = "a regex on the SELinux context";

    fn compile(def: &MatchDef, cx: &Compiling) -> Result<Option<Self>, ConfigError> {
        let regex = def
            .selinux
            .as_ref()
            .map(|s| regex(s, "match.selinux", cx.fail));
        Ok(regex.transpose()?.map(Selinux))
    }
}

impl Condition for Selinux {
    fn ground(&self) -> Ground {
        Ground::Other
    }

    fn matches(&self, subject: &Subject) -> bool {
        let context = subject.process().selinux.as_deref();
        context.is_some_and(|c| self.0.is_match(c))
    }

    fn needs(&self) -> Fields {
        reads_selinux()
    }
}

#[derive(Debug)]
pub struct SelinuxDomain(String);

impl Key for SelinuxDomain {
    const NAME: &'static str = "selinux_domain";
    const DOC: &'static str =
        "the type (domain) of the SELinux context: init_t of system_u:system_r:init_t:s0";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.selinux_domain.clone().map(SelinuxDomain))
    }
}

impl Condition for SelinuxDomain {
    fn ground(&self) -> Ground {
        Ground::Other
    }

    /// The type is the third part of `user:role:type:level`.
    fn matches(&self, subject: &Subject) -> bool {
        let context = subject.process().selinux.as_deref();
        context.and_then(|c| c.split(':').nth(2)) == Some(self.0.as_str())
    }

    fn needs(&self) -> Fields {
        reads_selinux()
    }
}

#[derive(Debug)]
pub struct Invocation(bool);

impl Key for Invocation {
    const NAME: &'static str = "invocation";
    const DOC: &'static str =
        "true when it runs only to run psdiff (the invoker's shells, pipeline partners)";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.invocation.map(Invocation))
    }
}

impl Condition for Invocation {
    fn ground(&self) -> Ground {
        Ground::Fact
    }

    fn matches(&self, subject: &Subject) -> bool {
        subject.population().invocation(subject.i) == self.0
    }

    fn needs(&self) -> Fields {
        Fields {
            exe: true,
            ..Fields::default()
        }
    }

    fn costly(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub struct YoungerThan(Duration);

impl Key for YoungerThan {
    const NAME: &'static str = "younger_than";
    const DOC: &'static str =
        "a time (90s, 5m, 1h): the process started less than that long ago, by the kernel's clock";

    fn compile(def: &MatchDef, cx: &Compiling) -> Result<Option<Self>, ConfigError> {
        let Some(t) = &def.younger_than else {
            return Ok(None);
        };
        let limit = humantime::parse_duration(t.get_ref()).map_err(|e| {
            (cx.fail)(
                Some(t.span()),
                format!(
                    "match.younger_than {:?} is not a time ({e}); write 90s, 5m or 1h",
                    t.get_ref()
                ),
            )
        })?;
        Ok(Some(YoungerThan(limit)))
    }
}

impl Condition for YoungerThan {
    fn ground(&self) -> Ground {
        Ground::Other
    }

    fn matches(&self, subject: &Subject) -> bool {
        let ticks_per_second = Some(procfs::ticks_per_second()).filter(|&t| t > 0);
        let (Some(now), Some(tps)) = (
            subject.population().machine.uptime_ticks(),
            ticks_per_second,
        ) else {
            return false;
        };
        let age = now.saturating_sub(subject.process().start_time);
        (age as u128) * 1000 < self.0.as_millis() * tps as u128
    }
}
