//! Every subcommand and option, as clap derive definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watch a server's processes against a known-good baseline.
#[derive(Debug, Parser)]
#[command(name = "psdiff", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Read processes from DIR instead of /proc (a host's /proc mounted in a
    /// container, or a synthetic tree).
    #[arg(long, global = true, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,

    /// Rules file [default: /usr/local/etc/psdiff.toml, else /etc/psdiff.toml].
    /// Its psdiff.d/*.toml drop-ins are read after it.
    #[arg(long, global = true, value_name = "FILE", env = "PSDIFF_CONFIG")]
    pub config: Option<PathBuf>,

    /// Name users from this passwd file instead of NSS (the host's
    /// /etc/passwd when reading its /proc from a container).
    #[arg(long, global = true, value_name = "FILE")]
    pub passwd: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the process tree as the baseline would hold it.
    Dump {
        #[arg(long, value_enum, default_value_t = DumpFormat::Text)]
        format: DumpFormat,
    },
    /// Tell, for each process, whether it is shown and which rule decided.
    Explain {
        /// Only these processes [default: all].
        pids: Vec<u32>,
    },
    /// Validate the rules, or print the built-in ones.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load every rule file; exit 0 when all are valid, 2 otherwise.
    Check,
    /// Print the built-in rules (etc/psdiff.toml).
    Defaults,
}
