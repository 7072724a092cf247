//! `psdiff man` and `psdiff completions`, generated from the clap
//! definitions (and the match language's own table of keys) so they never
//! drift from the real options.
//!
//! The man page is one page: every command with its options, the
//! configuration's syntax, exit status, environment, files and examples.

use std::fmt::Write;

use clap::{Arg, Command, CommandFactory};

use super::print;
use crate::app::Error;
use crate::cli::Cli;
use crate::exit::Exit;

pub fn man() -> Result<Exit, Error> {
    let cli = Cli::command();
    let man = clap_mangen::Man::new(cli.clone());
    let mut head = Vec::new();
    man.render_title(&mut head).map_err(Error::Output)?;
    man.render_name_section(&mut head).map_err(Error::Output)?;
    man.render_synopsis_section(&mut head)
        .map_err(Error::Output)?;
    man.render_description_section(&mut head)
        .map_err(Error::Output)?;
    let mut page = String::from_utf8_lossy(&head).into_owned();
    page.push_str(".SH \"GLOBAL OPTIONS\"\n");
    for arg in cli.get_arguments().filter(|a| a.is_global_set()) {
        option(&mut page, arg);
    }
    page.push_str(".SH COMMANDS\n");
    for command in cli.get_subcommands() {
        command_section(&mut page, command, "psdiff");
    }
    page.push_str(&configuration());
    page.push_str(&exit_status_and_environment(&cli));
    page.push_str(STATIC_SECTIONS);
    print(&page)?;
    Ok(Exit::Clean)
}

pub fn completions(shell: clap_complete::Shell) -> Result<Exit, Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "psdiff", &mut script);
    print(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Clean)
}

/// A command: its synopsis, what it does, its positionals and options,
/// then its own subcommands.
fn command_section(page: &mut String, command: &Command, parent: &str) {
    if command.is_hide_set() || command.get_name() == "help" {
        return;
    }
    let name = format!("{parent} {}", command.get_name());
    let mut synopsis = format!("\\fB{}\\fR", escape(&name));
    for arg in command.get_arguments().filter(|a| !a.is_global_set()) {
        if arg.is_positional() {
            let value = value_name(arg);
            let _ = write!(
                synopsis,
                " {}",
                if arg.is_required_set() {
                    value
                } else {
                    format!("[{value}]")
                }
            );
        } else if arg.get_id() != "help" {
            synopsis.push_str(" [\\fIOPTIONS\\fR]");
            break;
        }
    }
    if command.has_subcommands() {
        synopsis.push_str(" \\fICOMMAND\\fR");
    }
    let _ = writeln!(page, ".SS \"{}\"\n{synopsis}\n.br", escape(&name));
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        let _ = writeln!(page, "{}", escape(&about.to_string()));
    }
    for arg in command
        .get_arguments()
        .filter(|a| !a.is_global_set() && a.get_id() != "help" && a.get_id() != "version")
    {
        option(page, arg);
    }
    for sub in command.get_subcommands() {
        command_section(page, sub, &name);
    }
}

/// One option or positional, as `--help` gives it.
fn option(page: &mut String, arg: &Arg) {
    let mut head = String::new();
    if arg.is_positional() {
        head.push_str(&format!("\\fI{}\\fR", value_name(arg)));
    } else {
        if let Some(short) = arg.get_short() {
            let _ = write!(head, "\\fB\\-{short}\\fR, ");
        }
        if let Some(long) = arg.get_long() {
            let _ = write!(head, "\\fB\\-\\-{}\\fR", escape(long));
        }
        if arg.get_action().takes_values() {
            let _ = write!(head, " \\fI{}\\fR", value_name(arg));
        }
    }
    let mut help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set() && arg.get_action().takes_values())
        .map(|v| match v.get_help() {
            Some(what) => format!("{}: {what}", v.get_name()),
            None => v.get_name().to_string(),
        })
        .collect();
    if !values.is_empty() {
        let _ = write!(help, " (one of: {})", values.join("; "));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() {
        let _ = write!(help, " [default: {}]", defaults.join(", "));
    }
    if let Some(env) = arg.get_env() {
        let _ = write!(help, " [env: {}]", env.to_string_lossy());
    }
    let _ = writeln!(page, ".TP\n{head}\n{}", escape(help.trim()));
}

fn value_name(arg: &Arg) -> String {
    let name = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
    escape(&name)
}

/// The configuration file's syntax: the match language's keys from its
/// own table, the actions and the checks.
fn configuration() -> String {
    let mut out = String::from(
        ".SH CONFIGURATION
psdiff reads \\fB\\-\\-config\\fR (or \\fB$PSDIFF_CONFIG\\fR, or the first of
/usr/local/etc/psdiff.toml and /etc/psdiff.toml), then every *.toml in the
psdiff.d folder beside it, then the built-in rules (\\fBpsdiff config defaults\\fR)
unless a file says \\fBdefaults = false\\fR. Files and their folders must
belong to root (or the user running psdiff) and be writable by no one else.
.SS \"Rules\"
Each \\fB[[rule]]\\fR has a \\fBname\\fR, a \\fBmatch\\fR table and an \\fBaction\\fR.
Transforms run first, in order, every one that matches:
\\fBrewrite\\fR (\\fBpattern\\fR, a regex, and \\fBreplacement\\fR, with $1 for groups),
\\fBreplace-arg\\fR (\\fBoption\\fR or \\fBposition\\fR, \\fBplaceholder\\fR,
\\fBlast_path_part\\fR), \\fBsort-args\\fR (\\fBfrom\\fR), \\fBrename\\fR (\\fBto\\fR).
In their new text, {exe}, {unit} and {container} are the process's.
Then visibility rules, the first that applies decides:
\\fBhide\\fR (the process), \\fBhide-tree\\fR (it and all below),
\\fBhide-children\\fR (all below it), \\fBonce\\fR (one line per parent, user and cmdline).
.SS \"The match language\"
Every \\fBmatch\\fR table, of rules and checks alike; all keys given must hold.
Globs: * and ? within one /-separated part, ** across parts, [a-z] or [!a-z]
one of a set, {a,b} either; a backslash is itself (unit names escape with it).
",
    );
    for key in crate::select::KEYS {
        let _ = writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            escape(key.written),
            escape(key.doc)
        );
    }
    out.push_str(
        ".SS \"Checks\"
Each \\fB[[check]]\\fR has a \\fBname\\fR, a \\fBmatch\\fR and one test: \\fBcount\\fR
(ps.monitor's MIN-MAX, outside is critical) and/or \\fBwarn\\fR and \\fBcrit\\fR
(Nagios ranges: 10, 10:, ~:10, 10:20, @10:20), with \\fBper = \"user\"\\fR to count
each user apart; resources (\\fBrss\\fR, \\fBvsz\\fR, \\fBswap\\fR with K, M, G, T;
\\fBthreads\\fR, \\fBfds\\fR, \\fBfd_ratio\\fR; \\fBage\\fR, \\fBcpu_time\\fR with s, m, h, d),
each a critical range or \\fB{ warn, crit }\\fR, per process or with \\fBsum = true\\fR
(in a counting check, the range the counted processes are in);
\\fBrestarts\\fR (MIN-MAX) with \\fBwithin\\fR (1h): how often the matched daemon was
replaced, kept in \\fB\\-\\-state\\-dir\\fR;
\\fBlisten\\fR (tcp:22, tcp6:22, udp:53, tcp:127.0.0.1:25: a matched process must hold
that listening socket) with \\fBbanner\\fR, \\fBsend\\fR, \\fBexpect\\fR, \\fBaddress\\fR and
\\fBtimeout\\fR (what answers a TCP connection there);
\\fBdeleted = true\\fR (each process running a deleted or replaced executable or
library, with \\fBallow_deleted\\fR; \\fBcheck \\-\\-needs\\-restart\\fR lists them host-wide);
\\fBcpu_percent\\fR (each process, over \\fB\\-\\-interval\\fR);
or \\fBcredential\\fR (gid0-not-uid0, ids-differ), with \\fBallow_users\\fR and
\\fBallow_commands\\fR. \\fBon_warn\\fR and \\fBon_crit\\fR take \\fBlog\\fR (a file),
\\fBexec\\fR (an argv, run without a shell) and \\fBkill = true\\fR with \\fBgrace\\fR
(seconds between SIGTERM and SIGKILL).
.SS \"Hosts\"
Any rule or check may say where it applies: \\fBhosts\\fR (globs on the short and
full host name), \\fBgroups\\fR (names from a \\fB[groups]\\fR table: NAME = [HOST, ...]),
\\fBunless_hosts\\fR and \\fBunless_groups\\fR. \\fB\\-\\-host NAME\\fR reads the config as
that host would; \\fBconfig check\\fR lists what applies and why.
",
    );
    out
}

/// EXIT STATUS, from `exit::CODES`, and ENVIRONMENT, from every option
/// that an environment variable stands for.
fn exit_status_and_environment(cli: &clap::Command) -> String {
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in crate::exit::CODES {
        let _ = writeln!(out, ".TP\n{code}\n{}", escape(meaning));
        if code == 3 {
            out.push_str("(with \\-\\-format json, also: no baseline, or an empty one)\n");
        }
    }
    out.push_str(EXIT_NAGIOS);
    out.push_str(".SH ENVIRONMENT\n");
    // Each variable once: its option, and the commands that have it.
    let mut vars: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut options = |command: &clap::Command, path: &str| {
        for arg in command.get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let env = env.to_string_lossy().into_owned();
            let at = match vars.iter().position(|(e, _, _)| *e == env) {
                Some(at) => at,
                None => {
                    vars.push((env, long.to_string(), Vec::new()));
                    vars.len() - 1
                }
            };
            if !arg.is_global_set() {
                vars[at].2.push(path.to_string());
            }
        }
    };
    options(cli, "");
    for command in cli.get_subcommands() {
        options(command, command.get_name());
        for sub in command.get_subcommands() {
            options(sub, &format!("{} {}", command.get_name(), sub.get_name()));
        }
    }
    for (env, long, commands) in vars {
        let of = if commands.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = commands
                .iter()
                .map(|c| format!("\\fB{}\\fR", escape(c)))
                .collect();
            format!(" of {}", names.join(", "))
        };
        let _ = writeln!(
            out,
            ".TP\n\\fB{}\\fR\nstands for \\-\\-{}{of}.",
            escape(&env),
            escape(&long)
        );
    }
    out
}

const EXIT_NAGIOS: &str = ".PP
With \\fB\\-\\-format nagios\\fR: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (any error,
and no baseline: a check that cannot see is never OK).
";

const STATIC_SECTIONS: &str = ".SH FILES
.TP
/etc/psdiff.toml, /etc/psdiff.d/*.toml
rules and checks.
.TP
/var/lib/psdiff.db, /var/lib/psdiff.old
the baseline and the previous one.
.TP
/var/lib/psdiff.rules
the rules the baseline was written with.
.TP
/var/lib/psdiff.ids
who each baseline line was: executable, unit and container.
.TP
/etc/psdiff/tokens
the API's tokens (names and SHA\\-256 hashes, mode 0600).
.TP
/usr/share/psdiff/sudoers
the sudoers lines that let the Zabbix and NRPE agents run exactly their checks as root.
.TP
/usr/share/psdiff/zabbix, /usr/share/psdiff/nagios, /usr/share/psdiff/icinga2
the monitoring wiring.
.SH EXAMPLES
.nf
psdiff dump | head
sudo psdiff write \\-v
psdiff show\\-missing \\-\\-retry
psdiff show \\-\\-retry \\-\\-format nagios
psdiff explain 1234
psdiff check sshd:1\\- cron:1\\-5 crack:0\\-0
sudo psdiff files \\-\\-path /etc \\-\\- apt\\-get update
.fi
.SH \"SEE ALSO\"
/usr/share/doc/psdiff/README.md
";

/// Text for roff: backslashes doubled, and a line never starts with a
/// control character.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
