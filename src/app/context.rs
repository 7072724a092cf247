//! What every command (and the API) reads from: where processes, rules,
//! user names and the baseline come from, as the global options say.

use std::path::PathBuf;

use crate::app::Error;
use crate::config::{self, Config};
use crate::machine::Machine;
use crate::rules::{self, RuleSet, View};
use crate::snapshot::{Fields, Process, Snapshot, UserNames};
use crate::tree::Tree;

#[derive(Debug, Clone)]
pub struct Context {
    pub proc_root: PathBuf,
    pub db: PathBuf,
    /// The watcher's journal; there may be none.
    pub journal: PathBuf,
    pub config: Option<PathBuf>,
    pub passwd: Option<PathBuf>,
    /// The host whose rules and checks apply (`--host`, else the system's).
    pub host_name: config::HostName,
}

impl Context {
    /// Processes from `proc_root`, the baseline at `db`, the rules of
    /// `config` (else the default files), the watcher's `journal`, as host `host` (else this one)
    /// reads them, user names from `passwd` (else NSS).
    pub fn new(
        proc_root: PathBuf,
        db: PathBuf,
        journal: PathBuf,
        config: Option<PathBuf>,
        passwd: Option<PathBuf>,
        host: Option<&str>,
    ) -> Self {
        Context {
            proc_root,
            db,
            journal,
            config,
            passwd,
            host_name: host.map_or_else(config::HostName::of_system, config::HostName::new),
        }
    }

    /// The configuration files, read and checked against the schema.
    pub fn config(&self) -> Result<Config, Error> {
        Ok(config::load(self.config.as_deref())?.for_host(&self.host_name)?)
    }

    /// The rules of `config`, compiled.
    pub fn rules_of(&self, config: &Config) -> Result<RuleSet, Error> {
        Ok(RuleSet::compile(config, &self.users()?)?)
    }

    /// The configured rules.
    pub fn rules(&self) -> Result<RuleSet, Error> {
        self.rules_of(&self.config()?)
    }

    /// A fresh snapshot, shaped by `rules`, reading at least `fields`.
    pub fn view_with(&self, rules: &RuleSet, fields: Fields) -> Result<View, Error> {
        let snapshot = self.snapshot(fields.union(rules.needs()))?;
        Ok(self.shape(snapshot.processes, rules))
    }

    /// `processes` shaped by `rules`, on this machine.
    pub fn shape(&self, processes: Vec<Process>, rules: &RuleSet) -> View {
        let machine = Machine::of(&self.proc_root);
        rules::shape(Tree::build(processes), rules, &machine)
    }

    /// A fresh snapshot of every process, reading `fields`.
    pub fn snapshot(&self, fields: Fields) -> Result<Snapshot, Error> {
        Ok(Snapshot::take(&self.proc_root, &mut self.users()?, fields)?)
    }

    /// Names for uids: from `--passwd`, else NSS.
    pub fn users(&self) -> Result<UserNames, Error> {
        match &self.passwd {
            Some(path) => UserNames::from_passwd_file(path).map_err(|source| Error::Passwd {
                path: path.clone(),
                source,
            }),
            None => Ok(UserNames::from_nss()),
        }
    }
}
