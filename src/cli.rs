//! Every subcommand and option, as clap derive definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const MORE_HELP: &str = "\
Usage: after a deployment, `psdiff write` stores the process tree as the baseline; \
monitoring then runs `psdiff show-missing --retry` and `psdiff show-extra --retry`, \
and any line printed is an alert. `psdiff explain PID` tells which rule shows or hides a process.

Exit status: 0 nothing to report; 1 something to report; \
2 usage or configuration error; 3 runtime failure. With --format nagios: 0 OK, \
1 WARNING, 2 CRITICAL, 3 UNKNOWN. `psdiff man` says more.

Files: /etc/psdiff.toml (or /usr/local/etc/psdiff.toml) and psdiff.d/*.toml beside it: rules \
and checks; /var/lib/psdiff.db: the baseline, /var/lib/psdiff.old: the previous one; \
/var/lib/psdiff/journal.sqlite: what `psdiff watch` journaled.

Environment: PSDIFF_CONFIG, PSDIFF_DB, PSDIFF_PROC_ROOT, PSDIFF_PASSWD, PSDIFF_HOST, \
PSDIFF_JOURNAL stand for --config, --db, --proc-root, --passwd, --host and --journal; \
PSDIFF_TOKENS for serve's and token's --tokens.";

/// Watch a server's processes against a known-good baseline.
#[derive(Debug, Parser)]
#[command(name = "psdiff", version, about, max_term_width = 100, after_long_help = MORE_HELP)]
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
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/proc",
        env = "PSDIFF_PROC_ROOT",
        help_heading = "Global options"
    )]
    pub proc_root: PathBuf,

    /// Rules file [default: /usr/local/etc/psdiff.toml, else /etc/psdiff.toml].
    /// Its psdiff.d/*.toml drop-ins are read after it.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PSDIFF_CONFIG",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,

    /// Name users from this passwd file instead of NSS (the host's
    /// /etc/passwd when reading its /proc from a container).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "PSDIFF_PASSWD",
        help_heading = "Global options"
    )]
    pub passwd: Option<PathBuf>,

    /// Read the config as host NAME would (its `hosts`, `groups` and
    /// `unless_*` conditions) instead of as this host [default: the
    /// system's host name].
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "PSDIFF_HOST",
        help_heading = "Global options"
    )]
    pub host: Option<String>,

    /// The baseline file; the previous one is kept beside it as .old.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "PSDIFF_DB",
        default_value = crate::paths::BASELINE,
        help_heading = "Global options"
    )]
    pub db: PathBuf,

    /// The journal `psdiff watch` writes: show reports the transient
    /// extras in it, check counts restarts from it, history reads it.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "PSDIFF_JOURNAL",
        default_value = crate::paths::JOURNAL,
        help_heading = "Global options"
    )]
    pub journal: PathBuf,
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
        /// The processes to explain, by pid [default: every process].
        #[arg(value_name = "PID")]
        pids: Vec<u32>,
    },
    /// Store the current tree as the baseline (atomically; the previous one
    /// is kept as .old).
    Write {
        /// Also print what changed.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Print what differs from the baseline: `- LINE` missing, `+ LINE` extra.
    Show {
        /// Only processes in the baseline that are not running.
        #[arg(long)]
        missing: bool,
        /// Only processes running that are not in the baseline.
        #[arg(long)]
        extra: bool,
        #[command(flatten)]
        options: ShowOptions,
    },
    /// Same as `show --missing`.
    ShowMissing(ShowOptions),
    /// Same as `show --extra`.
    ShowExtra(ShowOptions),
    /// Add or remove a child-of-INIT line in the baseline by hand.
    #[command(subcommand)]
    Manual(ManualCommand),
    /// Compare two dump or baseline files.
    Diff {
        /// The earlier dump or baseline, e.g. /var/lib/psdiff.old.
        old: PathBuf,
        /// The later one, e.g. /var/lib/psdiff.db.
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Check process counts, CPU use and credentials (ps.monitor's
    /// NAME:MIN-MAX, or the [[check]] tables of psdiff.toml).
    Check(CheckArgs),
    /// Serve processes, the baseline diff, checks and metrics as an
    /// authenticated JSON API (and /metrics for Prometheus).
    Serve(ServeArgs),
    /// Print the files a process tree opens and closes, live, with how
    /// long each stayed open (fanotify; needs root).
    Files(FilesArgs),
    /// Record every process start and exit as it happens (the kernel's
    /// process events), classified by the rules, in the journal; needs root.
    Watch(WatchArgs),
    /// Print the starts, exits and restarts the watcher journaled.
    History(HistoryArgs),
    /// Make, list and revoke the tokens of `psdiff serve`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Validate the rules, or print the built-in ones.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the man page (roff), e.g. `psdiff man | man -l -`.
    Man,
    /// Run a command and kill everything it started at the limit, even
    /// what left its process group (how `serve` runs `POST /api/ps`).
    #[command(hide = true)]
    Contain {
        /// The limit in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
        argv: Vec<String>,
    },
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// ps.monitor rules, e.g. `sshd:1- tor:1-1 crack:0-0`. Without any, the
    /// [[check]] tables of the config (or of --rules) are used.
    #[arg(value_name = "NAME:MIN-MAX")]
    pub specs: Vec<String>,
    /// Take the [[check]] tables from this file instead of psdiff.toml.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// List every process still running an executable or library that was
    /// deleted or replaced (by an upgrade) since it started, instead of the
    /// checks (needrestart, checkrestart).
    #[arg(long, conflicts_with_all = ["specs", "rules"])]
    pub needs_restart: bool,
    #[arg(long, value_enum, default_value_t = CheckFormat::Mon)]
    pub format: CheckFormat,
    /// Check failing rules again after 0.1, 0.3, 0.6 and 1.0 s before
    /// reporting, so that a restart does not page anyone.
    #[arg(long)]
    pub retry: bool,
    /// Seconds over which CPU use is measured.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Print the actions that would be taken, and take none.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the report to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where `restarts` checks keep what they saw (restarts.json, small,
    /// safe to delete).
    #[arg(long, value_name = "DIR", default_value = crate::paths::STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. TLS belongs to a reverse proxy in
    /// front (see README.md).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9717")]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub tokens: TokensFile,
    /// Enable the control routes (signal, renice, run an allowed command)
    /// for tokens made with `--control`.
    #[arg(long)]
    pub allow_control: bool,
    /// Connections kept open at once; at the cap the oldest one that has
    /// not shown a valid token is closed to make room for a new one.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle connection is kept), and to send its body; a connection that
    /// has shown no valid token by then is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub client_timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct FilesArgs {
    /// Watch this process and its descendants (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Watch every process whose comm or executable is NAME, including
    /// those that start later, and their descendants (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Follow descendants at most N levels below a target (0: the targets
    /// only).
    #[arg(long, value_name = "N")]
    pub depth: Option<u32>,
    /// Only files under PREFIX (repeatable); only the mounts holding them
    /// are watched. Without it, every file on every real file system.
    #[arg(long = "path", value_name = "PREFIX")]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = FilesFormat::Text)]
    pub format: FilesFormat,
    /// Open files remembered to time their closes; past this the oldest
    /// are forgotten (their closes have no duration), so memory stays
    /// bounded however many files are opened.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_open_files: u32,
    /// Where events come from: `ebpf` (tracepoints: threads, descriptors,
    /// failed opens; needs BTF and root or CAP_BPF+CAP_PERFMON),
    /// `fanotify` (processes and files only), or `auto` (eBPF where it can
    /// run, else fanotify; the summary says which and why).
    #[arg(long, value_enum, default_value_t = crate::files::Backend::Auto)]
    pub backend: crate::files::Backend,
    /// The eBPF ring buffer, in KiB (a power of two, at least 4): events
    /// past it, between two drains a millisecond apart, are lost and
    /// counted.
    #[arg(long, value_name = "KIB", default_value_t = 8192, value_parser = ring_buffer_kib)]
    pub ring_buffer: u32,
    /// Start CMD, watch it and its descendants, and exit with its status
    /// once it and the events it caused are done.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FilesFormat {
    /// `TIME EVENT PID (PPID) COMM PATH [DURATION ms]`.
    Text,
    /// One JSON object per line: event, time, pid, ppid, tid, comm, path,
    /// duration_ms.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct TokensFile {
    /// The token file: names and SHA-256 hashes, mode 0600.
    #[arg(long = "tokens", value_name = "FILE", default_value = crate::paths::TOKENS, env = "PSDIFF_TOKENS")]
    pub path: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it, once; only its hash is stored.
    Add {
        /// What the token is for (`zabbix`, `prometheus`, `ops-alice`).
        name: String,
        /// Let it see every process field, also those of other users'
        /// processes that need ptrace access (exe, cwd, open_files,
        /// connections, memory_full_info, memory_maps).
        #[arg(long, conflicts_with = "control")]
        inspect: bool,
        /// Let it use the control routes (with `serve --allow-control`);
        /// implies --inspect.
        #[arg(long)]
        control: bool,
        #[command(flatten)]
        tokens: TokensFile,
    },
    /// List the tokens' names and scopes.
    List {
        #[command(flatten)]
        tokens: TokensFile,
    },
    /// Remove a token; a running server refuses it from its next request.
    Revoke {
        /// The token's name, as `token list` shows it.
        name: String,
        #[command(flatten)]
        tokens: TokensFile,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// ps.monitor's: nothing when all hold, else a summary and details.
    Mon,
    /// Nagios plugin output and exit codes.
    Nagios,
    Json,
    /// Prometheus text format (for node_exporter's textfile collector).
    Prometheus,
}

#[derive(Debug, Clone, Args)]
pub struct ShowOptions {
    /// Look again after 0.1, 0.3, 0.6 and 1.0 s before reporting, so that a
    /// restart or a short-lived process is not an alarm.
    #[arg(long)]
    pub retry: bool,
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
    /// Write the report to FILE (atomically) instead of stdout, e.g. for
    /// node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Who reads the transient extras (one cursor each, so each consumer
    /// sees each once) [default: this command line].
    #[arg(long, value_name = "NAME")]
    pub consumer: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Classify the processes that started and commit the journal this
    /// often (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub tick: f64,
    /// Read /proc in full this often (seconds) to set the live tree
    /// right; also at start and after any loss.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub rescan: f64,
    /// Keep journaled processes this long after they ended (e.g. 7d, 12h).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub keep: humantime::Duration,
    /// Keep the journal within this many MiB, dropping the oldest.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub max_size: u64,
    /// The event socket's receive buffer in bytes: what a burst of forks
    /// can queue while the watcher reads /proc (the kernel's own default,
    /// about 200 KiB, overflows in a fork storm).
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub socket_buffer: usize,
    /// Where events come from: `ebpf` (tracepoints; the kernel names each
    /// program as it starts, so one that lives a millisecond is still
    /// named; needs BTF and root or CAP_BPF+CAP_PERFMON), `connector` (the
    /// kernel's process events, any kernel; each program is read from
    /// /proc), or `auto` (eBPF where it can run, else the connector; the
    /// log says which and why).
    #[arg(long, value_enum, default_value_t = crate::watch::Backend::Auto)]
    pub backend: crate::watch::Backend,
    /// The eBPF ring buffer, in KiB (a power of two, at least 4): events
    /// past it, while the watcher reads /proc, are lost and counted.
    #[arg(long, value_name = "KIB", default_value_t = 4096, value_parser = ring_buffer_kib)]
    pub ring_buffer: u32,
    /// Stop after this long (e.g. 30s) instead of at SIGTERM.
    #[arg(long = "for", value_name = "DURATION")]
    pub run_for: Option<humantime::Duration>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// From this long ago (1h, 2d) or this time (2026-12-02T08:00:00Z).
    #[arg(long, value_name = "WHEN", default_value = "1h")]
    pub since: String,
    /// Until this long ago or this time [default: now].
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only processes of this systemd unit (nginx.service).
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,
    /// Only processes of this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only processes whose line matches this regular expression.
    #[arg(long = "match", value_name = "LINE-REGEX")]
    pub matching: Option<String>,
    /// Also the images the rules hide (cron jobs, logins, daemon
    /// children) [default: every other image].
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
    /// Nagios plugin output and exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    Nagios,
    /// Prometheus text format (for node_exporter's textfile collector).
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ManualCommand {
    /// Add `CMDLINE  {user=USER}` under INIT, in sorted place.
    Add {
        /// The user it runs as (a user of this host).
        user: String,
        /// The cmdline as `dump` prints it, quoted as one argument.
        cmdline: String,
    },
    /// Remove every such line under INIT (and the lines under it).
    Remove {
        /// The user of the line.
        user: String,
        /// The cmdline of the line, as one argument.
        cmdline: String,
    },
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

/// `--ring-buffer`: a power of two of KiB, from one page to 1 GiB.
fn ring_buffer_kib(text: &str) -> Result<u32, String> {
    let kib: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of KiB"))?;
    if !(4..=1 << 20).contains(&kib) || !kib.is_power_of_two() {
        return Err(format!(
            "{kib} KiB: the ring buffer is a power of two from 4 to 1048576 KiB"
        ));
    }
    Ok(kib)
}
