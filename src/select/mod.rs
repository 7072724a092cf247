//! The match language: which processes a `[[rule]]`, a `[[check]]` (and
//! anything later that picks processes) applies to. One table of keys
//! (`KEYS`, which the man page prints), each a type of its own in `keys`
//! with one meaning, compiled once and tested against a process in the
//! company of its parent and of what the machine says about it.
//!
//! Globs: `*` and `?` match within one `/`-separated part, `**` across
//! parts, `[...]` a set.

mod keys;
mod names;
mod patterns;
mod population;
mod self_held;

use std::any::Any;
use std::ops::Range;
use std::sync::Arc;

use regex::Regex;
use toml::Spanned;

use crate::config::ConfigError;
use crate::config::schema::MatchDef;
use crate::snapshot::{Fields, Process, UserNames};
pub use keys::KEYS;
use keys::{CommandKey, Compiled, Compiling, Condition, Ground, Key, Pid, Subject};
pub use names::names;
pub use patterns::Patterns;
pub use population::{Population, Subjects};

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

/// A compiled `match`: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Its keys, in `KEYS`' order.
    keys: Vec<&'static str>,
    /// Its conditions, the cheap ones first (`Condition::costly`).
    conditions: Vec<Arc<dyn Condition>>,
    /// Whether any condition is on a name (`Ground::Name`).
    by_name: bool,
    /// Whether the selector picks what is hidden: then it takes no name
    /// of a process whose disguise cannot be told, no executable the
    /// host does not attest (`Population::doubts`), and no user or group
    /// borrowed through a setuid or setgid file. See `matches`.
    pub strict: bool,
}

/// How a compile step reports an error at a key (`span`, when known) of
/// the table being compiled.
pub type Fail<'a> = dyn Fn(Option<Range<usize>>, String) -> ConfigError + 'a;

/// `s` as a regex, or an error at its span naming `what` with the last
/// line of the regex crate's message (the one that says what is wrong).
pub fn regex(s: &Spanned<String>, what: &str, fail: &Fail) -> Result<Regex, ConfigError> {
    Regex::new(s.get_ref()).map_err(|e| {
        let detail = e.to_string().lines().last().unwrap_or_default().to_string();
        fail(
            Some(s.span()),
            format!("{what} is not a valid regex: {detail}"),
        )
    })
}

impl Selector {
    fn new(compiled: Vec<Compiled>) -> Selector {
        let (keys, mut conditions): (Vec<_>, Vec<_>) = compiled.into_iter().unzip();
        conditions.sort_by_key(|c| c.costly());
        let by_name = conditions.iter().any(|c| c.ground() == Ground::Name);
        Selector {
            keys,
            conditions,
            by_name,
            strict: false,
        }
    }

    /// Compiles `def`; users are named through `users` (the `--passwd`
    /// file or NSS), groups through NSS.
    pub fn compile(
        def: &MatchDef,
        users: &UserNames,
        fail: &Fail,
    ) -> Result<Selector, ConfigError> {
        let cx = Compiling { users, fail };
        let mut conditions = Vec::new();
        for row in KEYS {
            conditions.extend((row.compile)(def, &cx)?);
        }
        Ok(Selector::new(conditions))
    }

    /// A selector of one condition, as code (not a `match` table) asks.
    pub fn of<K: Key>(key: K) -> Selector {
        Selector::new(vec![(K::NAME, Arc::new(key))])
    }

    /// A selector of ps.monitor's NAME, as `NAME:MIN-MAX` gives it.
    pub fn of_command(command: Command) -> Selector {
        Selector::of(CommandKey(command))
    }

    /// This selector as a rule that hides needs it (`strict`); its
    /// `parent` is held to the same.
    pub fn into_strict(mut self) -> Selector {
        self.strict = true;
        self
    }

    /// The keys this selector tests, in the table's order, for `explain`
    /// (`parent` for any condition on the parent).
    pub fn keys(&self) -> Vec<&'static str> {
        self.keys.clone()
    }

    /// The `pid` it requires, if any.
    pub fn pid(&self) -> Option<u32> {
        self.find::<Pid>().map(|p| p.0)
    }

    /// The `command` it requires, if any.
    pub fn command(&self) -> Option<&Command> {
        self.find::<CommandKey>().map(|c| &c.0)
    }

    fn find<K: Key>(&self) -> Option<&K> {
        self.conditions
            .iter()
            .find_map(|c| (c.as_ref() as &dyn Any).downcast_ref::<K>())
    }

    /// Whether it names its processes by something the kernel attests and
    /// a user cannot choose: the executable, the user or group, the
    /// cgroup (unit, slice, container), or such a parent.
    pub fn attested(&self) -> bool {
        self.conditions.iter().any(|c| c.attested())
    }

    /// Whether it rests on something the kernel or root attests, not only
    /// on what a local user can shape: names (comm, argv, cmdline), and
    /// the cgroup names a user chooses in the subtree systemd delegates to
    /// them (`user_unit`, `container`, a `cgroup` glob). `config check`
    /// warns of a rule that hides without it. (`attested`, which kill
    /// checks use, still counts those cgroup keys.)
    pub fn kernel_attested(&self) -> bool {
        self.conditions.iter().any(|c| c.kernel_attested())
    }

    /// Users and groups named here that this host does not have, as
    /// `user "NAME"`: such a condition matches nothing.
    pub fn unknown_names(&self) -> Vec<String> {
        self.conditions
            .iter()
            .flat_map(|c| c.unknown_names())
            .collect()
    }

    /// Whether, strict, it may take a process running `exe` by that
    /// executable (its own condition or an ancestor's). Such a process's
    /// doubts are judged while it runs: the watcher does so at its exec,
    /// as it may be gone before the rules look.
    pub fn takes_by_exe(&self, exe: &str) -> bool {
        self.strict && self.names_exe(exe)
    }

    fn names_exe(&self, exe: &str) -> bool {
        self.conditions.iter().any(|c| c.names_exe(exe))
    }

    /// What must be read from /proc beyond the basics to test this.
    pub fn needs(&self) -> Fields {
        let needs = self
            .conditions
            .iter()
            .fold(Fields::default(), |all, c| all.union(c.needs()));
        // A name is taken only from a process known not to be disguised.
        Fields {
            disguise: needs.disguise || self.by_name,
            ..needs
        }
    }

    /// Whether process `i` meets every condition. A name (comm, argv,
    /// cmdline) is never taken from a process whose argv[0] names another
    /// program than it runs; a strict selector (a rule that hides) also
    /// takes none where that cannot be told, and trusts what its
    /// conditions saw only as far as each one's `trusted` says.
    pub fn matches(&self, subjects: &dyn Subjects, i: usize) -> bool {
        self.test(subjects, i, self.strict)
    }

    /// `matches`, strict or not (a `parent` is held to its child's).
    fn test(&self, subjects: &dyn Subjects, i: usize, strict: bool) -> bool {
        let population = subjects.population();
        let process = &population.processes[i];
        let subject = Subject {
            subjects,
            i,
            strict,
        };
        (!self.by_name || names_are_its_own(process, strict && population.machine.attests()))
            && self.conditions.iter().all(|c| c.matches(&subject))
            // Last: it may read /proc, so only for what matched otherwise.
            && (!strict || self.conditions.iter().all(|c| c.trusted(&subject)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::Globs;
    use crate::machine::Machine;
    use std::path::PathBuf;

    /// `KEYS` documents every key of a `match` table, and nothing else.
    #[test]
    fn every_key_is_documented() {
        let error = toml::from_str::<MatchDef>("nosuchkey = 1").unwrap_err();
        let message = error.message();
        let mut schema: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        let mut documented: Vec<&str> = KEYS.iter().flat_map(|k| k.written.split(", ")).collect();
        schema.sort();
        documented.sort();
        assert_eq!(documented, schema, "{message}");
    }

    /// README's table of the match language has a row for every key.
    #[test]
    fn readme_lists_every_key() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("### The match language")
            .nth(1)
            .expect("README has the match language")
            .lines()
            .skip_while(|l| !l.starts_with("| key"))
            .take_while(|l| l.starts_with('|'));
        let mut listed: Vec<&str> = table
            .filter_map(|row| row.split('|').nth(1))
            .flat_map(|keys| keys.split('`').skip(1).step_by(2))
            .collect();
        let mut keys: Vec<&str> = KEYS.iter().flat_map(|k| k.written.split(", ")).collect();
        listed.sort();
        keys.sort();
        assert_eq!(listed, keys);
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
            Selector::of(CommandKey(Command::Name("sshd".into()))),
            Selector::of(CommandKey(Command::Name("nginx".into()))),
            Selector::of(CommandKey(Command::Name("absent".into()))),
            Selector::of(CommandKey(Command::Exe("/usr/bin/python3".into()))),
            Selector::of(Pid(17)),
            Selector::of(Pid(600)),
            Selector::of(keys::Comm("sshd".into())),
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
