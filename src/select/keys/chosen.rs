//! Keys on what a process's user chooses: its names, and whether argv[0]
//! disguises it.

use super::{Compiling, Condition, Ground, Key, Subject};
use crate::config::ConfigError;
use crate::config::schema::MatchDef;
use crate::render;
use crate::select::{Command, regex};
use crate::snapshot::Fields;

#[derive(Debug)]
pub struct Comm(pub String);

impl Key for Comm {
    const NAME: &'static str = "comm";
    const DOC: &'static str = "the kernel's 15-character process name";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.comm.clone().map(Comm))
    }
}

impl Condition for Comm {
    fn ground(&self) -> Ground {
        Ground::Name
    }

    fn matches(&self, subject: &Subject) -> bool {
        render::printable(&subject.process().comm) == self.0
    }
}

#[derive(Debug)]
pub struct Argv0(String);

impl Key for Argv0 {
    const NAME: &'static str = "argv0";
    const DOC: &'static str = "argv[0] exactly";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.argv0.clone().map(Argv0))
    }
}

impl Condition for Argv0 {
    fn ground(&self) -> Ground {
        Ground::Name
    }

    fn matches(&self, subject: &Subject) -> bool {
        subject
            .process()
            .argv()
            .next()
            .map(render::printable)
            .unwrap_or_default()
            == self.0
    }
}

/// ps.monitor's NAME (`Command`).
#[derive(Debug)]
pub struct CommandKey(pub Command);

impl Key for CommandKey {
    const NAME: &'static str = "command";
    const DOC: &'static str = "ps.monitor's NAME: comm, argv[0] or its basename, or an interpreter's script; with a /, as exe; \"*\" (counting checks only): every command no other check names";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def
            .command
            .as_deref()
            .map(|c| CommandKey(Command::parse(c))))
    }
}

impl Condition for CommandKey {
    fn ground(&self) -> Ground {
        match self.0 {
            Command::Name(_) => Ground::Name,
            Command::Exe(_) => Ground::Identity,
            Command::Any => Ground::Other,
        }
    }

    fn matches(&self, subject: &Subject) -> bool {
        let process = subject.process();
        match &self.0 {
            // A process whose argv[0] names another program than it runs
            // is not counted under that name.
            Command::Name(name) => {
                process.disguised != Some(true)
                    && subject
                        .population()
                        .names(subject.i)
                        .iter()
                        .any(|n| n == name)
            }
            Command::Exe(path) => process.exe_path() == Some(path.as_str()),
            Command::Any => true,
        }
    }

    fn needs(&self) -> Fields {
        Fields {
            exe: matches!(self.0, Command::Exe(_)),
            ..Fields::default()
        }
    }

    fn trusted(&self, subject: &Subject) -> bool {
        !matches!(self.0, Command::Exe(_)) || subject.population().doubts(subject.i).is_empty()
    }

    fn names_exe(&self, exe: &str) -> bool {
        matches!(&self.0, Command::Exe(path) if path == exe)
    }
}

#[derive(Debug)]
pub struct Cmdline(regex::Regex);

impl Key for Cmdline {
    const NAME: &'static str = "cmdline";
    const DOC: &'static str = "a regex searched in the cmdline as printed (in [[rule]]s, after the rewrites before the rule)";

    fn compile(def: &MatchDef, cx: &Compiling) -> Result<Option<Self>, ConfigError> {
        let regex = def
            .cmdline
            .as_ref()
            .map(|s| regex(s, "match.cmdline", cx.fail));
        Ok(regex.transpose()?.map(Cmdline))
    }
}

impl Condition for Cmdline {
    fn ground(&self) -> Ground {
        Ground::Name
    }

    fn matches(&self, subject: &Subject) -> bool {
        self.0.is_match(subject.cmdline())
    }

    fn costly(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub struct CmdlinePrefix(Vec<String>);

impl Key for CmdlinePrefix {
    const NAME: &'static str = "cmdline_prefix";
    const DOC: &'static str = "a list; the cmdline starts with one of them";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        let prefixes = def.cmdline_prefix.clone().unwrap_or_default();
        Ok((!prefixes.is_empty()).then_some(CmdlinePrefix(prefixes)))
    }
}

impl Condition for CmdlinePrefix {
    fn ground(&self) -> Ground {
        Ground::Name
    }

    fn matches(&self, subject: &Subject) -> bool {
        let cmdline = subject.cmdline();
        self.0.iter().any(|p| cmdline.starts_with(p.as_str()))
    }

    fn costly(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub struct Disguised(bool);

impl Key for Disguised {
    const NAME: &'static str = "disguised";
    const DOC: &'static str = "true when argv[0] names a program file other than the one running";

    fn compile(def: &MatchDef, _: &Compiling) -> Result<Option<Self>, ConfigError> {
        Ok(def.disguised.map(Disguised))
    }
}

impl Condition for Disguised {
    fn ground(&self) -> Ground {
        Ground::Other
    }

    fn matches(&self, subject: &Subject) -> bool {
        subject.process().disguised == Some(self.0)
    }

    fn needs(&self) -> Fields {
        Fields {
            disguise: true,
            ..Fields::default()
        }
    }
}
