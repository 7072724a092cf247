//! The names a ps.monitor NAME matches: comm, argv[0] and its basename;
//! for an interpreter running a script, the script's basename.

use crate::render;
use crate::snapshot::Process;

/// Interpreters whose process is named after the script they run.
fn is_interpreter(name: &str) -> bool {
    let versioned = |prefix: &str| {
        name.strip_prefix(prefix).is_some_and(|v| {
            !v.is_empty()
                && v.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    matches!(
        name,
        "perl" | "python" | "python2" | "python3" | "ruby" | "bash" | "sh"
    ) || versioned("python3.")
        || versioned("python2.")
        || versioned("lua")
        || versioned("perl5.")
        || versioned("ruby")
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The names ps.monitor-style NAMEs match: comm, argv[0] and its basename;
/// for an interpreter running a script, only the script's basename. The
/// first is the one a process is counted under by a `*` check.
pub fn names(process: &Process) -> Vec<String> {
    let comm = render::printable(&process.comm);
    let mut argv = process.argv().map(render::printable);
    let Some(argv0) = argv.next() else {
        return vec![comm];
    };
    if is_interpreter(&comm) || is_interpreter(basename(&argv0)) {
        // The script is the first argument that is not an option; `-m
        // MODULE` names a module; `-c`/`-e` code has no name of its own.
        while let Some(arg) = argv.next() {
            match arg.as_str() {
                "-c" | "-e" | "-E" => break,
                "-m" => return argv.next().map(|m| vec![m]).unwrap_or_default(),
                a if a.starts_with('-') || a.is_empty() => continue,
                script => return vec![basename(script).to_string()],
            }
        }
    }
    let base = basename(&argv0).to_string();
    let mut names = vec![comm];
    for name in [argv0, base] {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::test_process;

    fn process(comm: &str, argv: &[&str]) -> Process {
        let mut p = test_process(10, 1);
        p.comm = comm.as_bytes().into();
        p.cmdline = argv.join("\0").into_bytes().into();
        p
    }

    #[test]
    fn names_follow_ps_monitor() {
        assert_eq!(
            names(&process("sshd", &["/usr/sbin/sshd", "-D"])),
            ["sshd", "/usr/sbin/sshd"]
        );
        assert_eq!(
            names(&process(
                "python3",
                &["/usr/bin/python3", "-u", "/opt/app/worker.py"]
            )),
            ["worker.py"]
        );
        assert_eq!(
            names(&process(
                "perl",
                &["perl", "/usr/lib/mon/mon-local.d/ps.monitor"]
            )),
            ["ps.monitor"]
        );
        assert_eq!(names(&process("lua5.3", &["lua5.3", "x.lua"])), ["x.lua"]);
        assert_eq!(names(&process("bash", &["-bash"])), ["bash", "-bash"]);
        assert_eq!(names(&process("kworker/0:1", &[])), ["kworker/0:1"]);
        assert_eq!(
            names(&process("python3", &["python3", "-m", "http.server"])),
            ["http.server"]
        );
        assert_eq!(
            names(&process("python3", &["python3", "-c", "pass"])),
            ["python3"]
        );
        assert!(
            is_interpreter("python3.11") && !is_interpreter("python3.") && !is_interpreter("shx")
        );
    }
}
