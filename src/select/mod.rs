//! The match language: which processes a `[[rule]]`, a `[[check]]` (and
//! anything later that picks processes) applies to. One table of keys
//! (`KEYS`, which the man page prints), each with one meaning, compiled
//! once and tested against a process in the company of its parent and of
//! what the machine says about it.
//!
//! Globs: `*` and `?` match within one `/`-separated part, `**` across
//! parts, `[...]` a set.

mod names;
mod patterns;
mod population;
mod self_held;

use std::ops::Range;

use nix::unistd::Group;
use regex::Regex;
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::schema::{Globs, MatchDef};
use crate::machine::Machine;
use crate::render;
use crate::snapshot::{Cgroup, ContainerId, Fields, Process, UserNames};
pub use names::names;
pub use patterns::Patterns;
pub use population::{Population, Subjects};

/// Every key of a `match` table and what it matches: the documentation,
/// in one place.
pub const KEYS: &[(&str, &str)] = &[
    ("pid", "the process id"),
    ("comm", "the kernel's 15-character process name"),
    (
        "exe",
        "/proc/PID/exe: a path or glob, or a list of them (a \" (deleted)\" suffix after an upgrade is ignored); a user cannot fake it",
    ),
    ("argv0", "argv[0] exactly"),
    (
        "command",
        "ps.monitor's NAME: comm, argv[0] or its basename, or an interpreter's script; with a /, as exe; \"*\" (counting checks only): every command no other check names",
    ),
    (
        "cmdline",
        "a regex searched in the cmdline as printed (in [[rule]]s, after the rewrites before the rule)",
    ),
    (
        "cmdline_prefix",
        "a list; the cmdline starts with one of them",
    ),
    (
        "user, uid",
        "the effective user, by name (from --passwd, else NSS) or number",
    ),
    ("group, gid", "the effective group, likewise"),
    ("kernel_thread", "true for kernel threads"),
    (
        "entered",
        "true when it was put into this pid namespace from outside (its parent is not in it: nsenter, docker exec, lxc-attach by the host's root); never on the host itself",
    ),
    (
        "state",
        "any of these state letters: R, S, D, Z (zombie), T, ...",
    ),
    (
        "selinux, selinux_domain",
        "a regex on the SELinux context, or its type",
    ),
    (
        "unit",
        "a glob on the systemd unit of the system manager (nginx.service, session-4.scope, user@1000.service)",
    ),
    (
        "user_unit",
        "a glob on the unit inside a user's manager (a systemd-run --user service); its user names it",
    ),
    (
        "slice",
        "a glob on the slice of the unit (system.slice, user-1000.slice)",
    ),
    (
        "cgroup",
        "a glob on the whole cgroup path; below user@UID.service its user names the parts",
    ),
    (
        "container",
        "a glob on the container's name (docker, podman) or id; \"*\": in any container; a user can name a cgroup of their own like one",
    ),
    (
        "login",
        "true when it belongs to a login still open: a session logind calls opening, active or online, or the systemd --user of a user logged in",
    ),
    ("timer_job", "true when a systemd timer starts its unit"),
    (
        "disguised",
        "true when argv[0] names a program file other than the one running",
    ),
    (
        "invocation",
        "true when it runs only to run psdiff (the invoker's shells, pipeline partners)",
    ),
    (
        "younger_than",
        "a time (90s, 5m, 1h): the process started less than that long ago, by the kernel's clock",
    ),
    (
        "parent",
        "a table of these keys that the parent process must match",
    ),
];

/// ps.monitor's NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Matches any of `names()`.
    Name(String),
    /// A NAME with a `/`: /proc/PID/exe, which a user cannot fake.
    Exe(String),
    /// `*`: each command that no other check names, counted on its own.
    Any,
}

impl Command {
    pub fn parse(name: &str) -> Command {
        match name {
            "*" => Command::Any,
            n if n.contains('/') => Command::Exe(n.to_string()),
            n => Command::Name(n.to_string()),
        }
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
}

/// A compiled `match`: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub exe: Option<Patterns>,
    pub argv0: Option<String>,
    pub command: Option<Command>,
    pub cmdline: Option<Regex>,
    pub cmdline_prefix: Vec<String>,
    pub user: Option<Id>,
    pub group: Option<Id>,
    pub kernel_thread: Option<bool>,
    pub entered: Option<bool>,
    pub state: Option<String>,
    pub selinux: Option<Regex>,
    pub selinux_domain: Option<String>,
    pub unit: Option<Patterns>,
    pub user_unit: Option<Patterns>,
    pub slice: Option<Patterns>,
    pub cgroup: Option<Patterns>,
    pub container: Option<Patterns>,
    pub login: Option<bool>,
    pub timer_job: Option<bool>,
    pub disguised: Option<bool>,
    pub invocation: Option<bool>,
    pub younger_than: Option<std::time::Duration>,
    pub parent: Option<Box<Selector>>,
    /// Whether the selector picks what is hidden: then it takes no name
    /// of a process whose disguise cannot be told, no executable the
    /// host does not attest (`Population::doubts`), and no user or group
    /// borrowed through a setuid or setgid file. See `matches`.
    pub strict: bool,
}

/// How a compile step reports an error at a key (`span`, when known) of
/// the table being compiled.
pub type Fail<'a> = dyn Fn(Option<Range<usize>>, String) -> ConfigError + 'a;

impl Selector {
    /// Compiles `def`; users are named through `users` (the `--passwd`
    /// file or NSS), groups through NSS.
    pub fn compile(
        def: &MatchDef,
        users: &UserNames,
        fail: &Fail,
    ) -> Result<Selector, ConfigError> {
        let regex = |s: &Spanned<String>, what: &str| {
            Regex::new(s.get_ref()).map_err(|e| {
                let detail = e.to_string().lines().last().unwrap_or_default().to_string();
                fail(
                    Some(s.span()),
                    format!("{what} is not a valid regex: {detail}"),
                )
            })
        };
        let id = |name: &Option<String>,
                  number: Option<u32>,
                  key: &str,
                  lookup: &dyn Fn(&str) -> Option<u32>| {
            match (name, number) {
                (Some(_), Some(_)) => Err(fail(
                    None,
                    format!(
                        "give `{key}` or `{}`, not both",
                        if key == "user" { "uid" } else { "gid" }
                    ),
                )),
                (Some(name), None) => Ok(Some(match name.parse() {
                    Ok(n) => Id::Known(n),
                    Err(_) => lookup(name).map_or_else(|| Id::Unknown(name.clone()), Id::Known),
                })),
                (None, number) => Ok(number.map(Id::Known)),
            }
        };
        let group_id = |name: &str| Some(Group::from_name(name).ok()??.gid.as_raw());
        let globs = |g: &Option<Globs>| g.as_ref().map(Patterns::compile);
        Ok(Selector {
            pid: def.pid,
            comm: def.comm.clone(),
            exe: globs(&def.exe),
            argv0: def.argv0.clone(),
            command: def.command.as_deref().map(Command::parse),
            cmdline: def
                .cmdline
                .as_ref()
                .map(|s| regex(s, "match.cmdline"))
                .transpose()?,
            cmdline_prefix: def.cmdline_prefix.clone().unwrap_or_default(),
            user: id(&def.user, def.uid, "user", &|n| users.uid_of(n))?,
            group: id(&def.group, def.gid, "group", &group_id)?,
            kernel_thread: def.kernel_thread,
            entered: def.entered,
            state: def.state.clone(),
            selinux: def
                .selinux
                .as_ref()
                .map(|s| regex(s, "match.selinux"))
                .transpose()?,
            selinux_domain: def.selinux_domain.clone(),
            unit: globs(&def.unit),
            user_unit: globs(&def.user_unit),
            slice: globs(&def.slice),
            cgroup: globs(&def.cgroup),
            container: globs(&def.container),
            login: def.login,
            timer_job: def.timer_job,
            disguised: def.disguised,
            invocation: def.invocation,
            younger_than: def
                .younger_than
                .as_ref()
                .map(|t| {
                    humantime::parse_duration(t.get_ref()).map_err(|e| {
                        fail(
                            Some(t.span()),
                            format!(
                                "match.younger_than {:?} is not a time ({e}); write 90s, 5m or 1h",
                                t.get_ref()
                            ),
                        )
                    })
                })
                .transpose()?,
            parent: def
                .parent
                .as_deref()
                .map(|p| Selector::compile(p, users, fail).map(Box::new))
                .transpose()?,
            strict: false,
        })
    }

    /// This selector, and its parent's, as a rule that hides needs them
    /// (`strict`).
    pub fn into_strict(mut self) -> Selector {
        self.strict = true;
        self.parent = self.parent.map(|p| Box::new(p.into_strict()));
        self
    }

    /// Whether it names its processes by anything a user chooses: comm,
    /// argv, cmdline.
    pub fn by_name(&self) -> bool {
        self.comm.is_some()
            || self.argv0.is_some()
            || matches!(self.command, Some(Command::Name(_)))
            || self.cmdline.is_some()
            || !self.cmdline_prefix.is_empty()
    }

    /// The keys this selector tests, in the table's order, for `explain`
    /// (`parent` for any condition on the parent).
    pub fn keys(&self) -> Vec<&'static str> {
        let Selector {
            pid,
            comm,
            exe,
            argv0,
            command,
            cmdline,
            cmdline_prefix,
            user,
            group,
            kernel_thread,
            entered,
            state,
            selinux,
            selinux_domain,
            unit,
            user_unit,
            slice,
            cgroup,
            container,
            login,
            timer_job,
            disguised,
            invocation,
            younger_than,
            parent,
            strict: _,
        } = self;
        [
            ("pid", pid.is_some()),
            ("comm", comm.is_some()),
            ("exe", exe.is_some()),
            ("argv0", argv0.is_some()),
            ("command", command.is_some()),
            ("cmdline", cmdline.is_some()),
            ("cmdline_prefix", !cmdline_prefix.is_empty()),
            ("user", user.is_some()),
            ("group", group.is_some()),
            ("kernel_thread", kernel_thread.is_some()),
            ("entered", entered.is_some()),
            ("state", state.is_some()),
            ("selinux", selinux.is_some()),
            ("selinux_domain", selinux_domain.is_some()),
            ("unit", unit.is_some()),
            ("user_unit", user_unit.is_some()),
            ("slice", slice.is_some()),
            ("cgroup", cgroup.is_some()),
            ("container", container.is_some()),
            ("login", login.is_some()),
            ("timer_job", timer_job.is_some()),
            ("disguised", disguised.is_some()),
            ("invocation", invocation.is_some()),
            ("younger_than", younger_than.is_some()),
            ("parent", parent.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
    }

    /// Whether it names its processes by something the kernel attests and
    /// a user cannot choose: the executable, the user or group, the
    /// cgroup (unit, slice, container), or such a parent.
    pub fn attested(&self) -> bool {
        self.exe.is_some()
            || matches!(self.command, Some(Command::Exe(_)))
            || self.user.is_some()
            || self.group.is_some()
            || self.unit.is_some()
            || self.user_unit.is_some()
            || self.slice.is_some()
            || self.cgroup.is_some()
            || self.container.is_some()
            || self.parent.as_ref().is_some_and(|p| p.attested())
    }

    /// Whether it rests on something the kernel or root attests, not only
    /// on what a local user can shape: names (comm, argv, cmdline), and
    /// the cgroup names a user chooses in the subtree systemd delegates to
    /// them (`user_unit`, `container`, a `cgroup` glob). `config check`
    /// warns of a rule that hides without it. (`attested`, which kill
    /// checks use, still counts those cgroup keys.)
    pub fn kernel_attested(&self) -> bool {
        self.exe.is_some()
            || matches!(self.command, Some(Command::Exe(_)))
            || self.user.is_some()
            || self.group.is_some()
            || self.unit.is_some()
            || self.slice.is_some()
            || self.pid.is_some()
            || self.kernel_thread.is_some()
            || self.entered.is_some()
            || self.state.is_some()
            || self.login.is_some()
            || self.timer_job.is_some()
            || self.invocation.is_some()
            || self.parent.as_ref().is_some_and(|p| p.kernel_attested())
    }

    /// Users and groups named here that this host does not have, as
    /// `user "NAME"`: such a condition matches nothing.
    pub fn unknown_names(&self) -> Vec<String> {
        let mut unknown = Vec::new();
        for (what, id) in [("user", &self.user), ("group", &self.group)] {
            if let Some(Id::Unknown(name)) = id {
                unknown.push(format!("{what} {name:?}"));
            }
        }
        if let Some(parent) = &self.parent {
            unknown.extend(parent.unknown_names());
        }
        unknown
    }
    /// Whether, strict, it may take a process running `exe` by that
    /// executable (its own condition or an ancestor's). Such a process's
    /// doubts are judged while it runs: the watcher does so at its exec,
    /// as it may be gone before the rules look.
    pub fn takes_by_exe(&self, exe: &str) -> bool {
        self.strict && self.names_exe(exe)
    }

    fn names_exe(&self, exe: &str) -> bool {
        self.exe.as_ref().is_some_and(|p| p.matches(exe))
            || matches!(&self.command, Some(Command::Exe(path)) if path == exe)
            || self.parent.as_ref().is_some_and(|p| p.names_exe(exe))
    }

    /// What must be read from /proc beyond the basics to test this.
    pub fn needs(&self) -> Fields {
        let parent = self.parent.as_ref().map(|p| p.needs()).unwrap_or_default();
        let cgroup = self.reads_cgroup();
        Fields {
            exe: self.exe.is_some()
                || matches!(self.command, Some(Command::Exe(_)))
                || self.invocation.is_some(),
            selinux: self.selinux.is_some() || self.selinux_domain.is_some(),
            cgroup,
            // A name is taken only from a process known not to be
            // disguised.
            disguise: self.disguised.is_some() || self.by_name(),
        }
        .union(parent)
    }

    /// Whether process `i` meets every condition. A name (comm, argv,
    /// cmdline) is never taken from a process whose argv[0] names another
    /// program than it runs; a strict selector (a rule that hides) also
    /// takes none where that cannot be told, and trusts an executable,
    /// user or group only as far as `trusted` says.
    pub fn matches(&self, subjects: &(impl Subjects + ?Sized), i: usize) -> bool {
        let population = subjects.population();
        let process = &population.processes[i];
        (!self.by_name() || names_are_its_own(process, self.strict && population.machine.attests()))
            && self.pid.is_none_or(|pid| process.pid == pid)
            && self
                .kernel_thread
                .is_none_or(|k| process.kernel_thread == k)
            && self.entered.is_none_or(|e| entered(process) == e)
            && self
                .user
                .as_ref()
                .is_none_or(|u| u.is(process.uids.effective))
            && self
                .group
                .as_ref()
                .is_none_or(|g| g.is(process.gids.effective))
            && self
                .state
                .as_deref()
                .is_none_or(|s| s.contains(process.state))
            && self
                .comm
                .as_deref()
                .is_none_or(|c| render::printable(&process.comm) == c)
            && self
                .exe
                .as_ref()
                .is_none_or(|e| process.exe_path().is_some_and(|p| e.matches(p)))
            && self.argv0.as_deref().is_none_or(|a| {
                process
                    .argv()
                    .next()
                    .map(render::printable)
                    .unwrap_or_default()
                    == a
            })
            && self.command.as_ref().is_none_or(|c| match c {
                // A process whose argv[0] names another program than it
                // runs is not counted under that name.
                Command::Name(name) => {
                    process.disguised != Some(true) && population.names(i).iter().any(|n| n == name)
                }
                Command::Exe(path) => process.exe_path() == Some(path.as_str()),
                Command::Any => true,
            })
            && (self.cmdline_prefix.is_empty()
                || self
                    .cmdline_prefix
                    .iter()
                    .any(|p| subjects.cmdline(i).starts_with(p.as_str())))
            && self
                .cmdline
                .as_ref()
                .is_none_or(|re| re.is_match(subjects.cmdline(i)))
            && self
                .selinux
                .as_ref()
                .is_none_or(|re| process.selinux.as_deref().is_some_and(|c| re.is_match(c)))
            && self
                .selinux_domain
                .as_deref()
                .is_none_or(|d| process.selinux.as_deref().and_then(selinux_type) == Some(d))
            && self.disguised.is_none_or(|d| process.disguised == Some(d))
            && self
                .invocation
                .is_none_or(|v| population.invocation(i) == v)
            && self.matches_cgroup(population, process)
            && self.younger_than.is_none_or(|limit| {
                let (Some(now), Some(tps)) = (population.machine.uptime_ticks(), ticks_per_second())
                else {
                    return false;
                };
                let age = now.saturating_sub(process.start_time);
                (age as u128) * 1000 < limit.as_millis() * tps as u128
            })
            && self.parent.as_ref().is_none_or(|sel| {
                population
                    .parent(i)
                    .is_some_and(|p| sel.matches(subjects, p))
            })
            // Last: it may read /proc, so only for what matched otherwise.
            && (!self.strict || self.trusted(population, i))
    }

    /// Whether a strict selector may take process `i` at what its
    /// conditions on the executable, user and group saw: the executable
    /// is the host's file with no code slipped in (`Population::doubts`),
    /// and the user and group are the process's own, not lent by a
    /// setuid or setgid file it runs (`passwd` titled like a daemon).
    fn trusted(&self, population: &Population, i: usize) -> bool {
        let process = &population.processes[i];
        let by_exe = self.exe.is_some() || matches!(self.command, Some(Command::Exe(_)));
        (self.user.is_none() || process.uids.real == process.uids.effective)
            && (self.group.is_none() || process.gids.real == process.gids.effective)
            && (!by_exe || population.doubts(i).is_empty())
    }
}

/// Whether a process's comm and argv may be taken as naming it: not when
/// argv[0] names another program than it runs, and, for a strict
/// selector, not when an absolute argv[0] could not be told either way.
fn names_are_its_own(process: &Process, strict: bool) -> bool {
    match process.disguised {
        Some(disguised) => !disguised,
        None => {
            !strict
                || process
                    .argv()
                    .next()
                    .is_none_or(|argv0| argv0.trim_ascii_end().first() != Some(&b'/'))
        }
    }
}

/// The kernel's clock ticks per second, as process start times count.
fn ticks_per_second() -> Option<u64> {
    Some(procfs::ticks_per_second()).filter(|&t| t > 0)
}

impl Selector {
    /// Whether any of its own conditions is on what the cgroup says (the
    /// one list `needs` and `matches_cgroup` both go by).
    fn reads_cgroup(&self) -> bool {
        [
            &self.unit,
            &self.user_unit,
            &self.slice,
            &self.cgroup,
            &self.container,
        ]
        .iter()
        .any(|p| p.is_some())
            || self.login.is_some()
            || self.timer_job.is_some()
    }

    /// The conditions on what the cgroup says. A process whose cgroup
    /// could not be read matches none of them.
    fn matches_cgroup(&self, population: &Population, process: &Process) -> bool {
        if !self.reads_cgroup() {
            return true;
        }
        let Some(cgroup) = process.cgroup.as_deref() else {
            return false;
        };
        let glob = |patterns: &Option<Patterns>, value: Option<&str>| {
            patterns
                .as_ref()
                .is_none_or(|p| value.is_some_and(|v| p.matches(v)))
        };
        let machine = population.machine;
        glob(&self.unit, cgroup.unit.as_deref())
            && glob(&self.user_unit, cgroup.user_unit.as_deref())
            && glob(&self.slice, cgroup.slice.as_deref())
            && glob(&self.cgroup, Some(&cgroup.path))
            && self.container.as_ref().is_none_or(|p| {
                cgroup
                    .container
                    .as_ref()
                    .is_some_and(|c| p.matches(container_name(machine, c)))
            })
            && self
                .login
                .is_none_or(|l| population.in_open_login(process) == l)
            && self
                .timer_job
                .is_none_or(|t| timer_job(machine, cgroup) == t)
    }
}

/// A container's name where its runtime keeps one, else its id.
pub fn container_name<'a>(machine: &'a Machine, container: &'a ContainerId) -> &'a str {
    machine.container_name(container).unwrap_or(&container.id)
}

/// The kernel gives a parent outside our pid namespace as 0; on the host
/// only init and kthreadd have it.
fn entered(process: &Process) -> bool {
    process.ppid == 0 && process.pid != 1 && !process.kernel_thread
}

fn timer_job(machine: &Machine, cgroup: &Cgroup) -> bool {
    cgroup
        .unit
        .as_deref()
        .is_some_and(|u| machine.is_timer_job(u))
}

/// The type (domain) of an SELinux context `user:role:type:level`.
fn selinux_type(context: &str) -> Option<&str> {
    context.split(':').nth(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// `KEYS` documents every key of a `match` table, and nothing else.
    #[test]
    fn every_key_is_documented() {
        let error = toml::from_str::<MatchDef>("nosuchkey = 1").unwrap_err();
        let message = error.message();
        let mut schema: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        let mut documented: Vec<&str> = KEYS.iter().flat_map(|(k, _)| k.split(", ")).collect();
        schema.sort();
        documented.sort();
        assert_eq!(documented, schema, "{message}");
    }

    /// Narrowing by name, exe or pid finds what testing every process
    /// finds, in the same order.
    #[test]
    fn candidates_are_what_a_full_scan_matches() {
        let mut processes: Vec<Process> = (1..=60)
            .map(|pid| crate::snapshot::test_process(pid, 1))
            .collect();
        for (n, p) in processes.iter_mut().enumerate() {
            let (comm, argv0) = match n % 3 {
                0 => ("nginx", "nginx: worker process"),
                1 => ("sshd", "/usr/sbin/sshd"),
                _ => ("python3", "/usr/bin/python3"),
            };
            p.comm = comm.as_bytes().into();
            p.cmdline = format!("{argv0}\0-x").into_bytes().into();
            p.exe = Some(PathBuf::from(format!("/usr/bin/{comm}")).into());
        }
        let parents: Vec<Option<usize>> = processes.iter().map(|_| None).collect();
        let machine = Machine::at(PathBuf::from("/nonexistent"));
        let population = Population::new(&processes, &parents, &machine);
        struct Plain<'a>(&'a Population<'a>);
        impl Subjects for Plain<'_> {
            fn population(&self) -> &Population<'_> {
                self.0
            }
            fn cmdline(&self, _: usize) -> &str {
                ""
            }
        }
        let selectors = [
            Selector {
                command: Some(Command::Name("sshd".into())),
                ..Selector::default()
            },
            Selector {
                command: Some(Command::Name("nginx".into())),
                ..Selector::default()
            },
            Selector {
                command: Some(Command::Name("absent".into())),
                ..Selector::default()
            },
            Selector {
                command: Some(Command::Exe("/usr/bin/python3".into())),
                ..Selector::default()
            },
            Selector {
                pid: Some(17),
                ..Selector::default()
            },
            Selector {
                pid: Some(600),
                ..Selector::default()
            },
            Selector {
                comm: Some("sshd".into()),
                ..Selector::default()
            },
        ];
        for selector in &selectors {
            let scanned: Vec<usize> = (0..processes.len())
                .filter(|&i| selector.matches(&Plain(&population), i))
                .collect();
            let narrowed: Vec<usize> = population
                .candidates(selector)
                .filter(|&i| selector.matches(&Plain(&population), i))
                .collect();
            assert_eq!(narrowed, scanned, "{selector:?}");
        }
        assert_eq!(population.candidates(&selectors[0]).count(), 20);
        assert_eq!(
            population.candidates(&selectors[4]).collect::<Vec<_>>(),
            [16]
        );
    }

    #[test]
    fn globs() {
        let p = Patterns::compile(&Globs(vec![
            "/usr/lib/postgresql/*/bin/postgres".into(),
            "getty@*.service".into(),
            "/a/**/z".into(),
            "x[0-9]".into(),
            "plain".into(),
            "systemd-fsck@dev-disk-by\\x2duuid-*.service".into(),
            "{ssh,sshd}.service".into(),
            "[!a-c]z".into(),
        ]));
        assert!(p.matches("/usr/lib/postgresql/15/bin/postgres"));
        assert!(!p.matches("/usr/lib/postgresql/15/x/bin/postgres"));
        assert!(p.matches("getty@tty1.service") && !p.matches("getty@.servicex"));
        assert!(p.matches("/a/b/c/z") && p.matches("x7") && !p.matches("xa"));
        assert!(p.matches("plain") && !p.matches("plainer"));
        // A unit name's escapes are literal backslashes.
        assert!(p.matches("systemd-fsck@dev-disk-by\\x2duuid-1234.service"));
        assert!(p.matches("sshd.service") && p.matches("ssh.service"));
        assert!(p.matches("dz") && !p.matches("az"));
    }
}
