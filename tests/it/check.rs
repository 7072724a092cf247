//! `psdiff check` on real processes in a PID namespace, compared with
//! Debian's ps.monitor (mon) and check_procs (monitoring-plugins-basic),
//! and every action taken against real processes.

use crate::common::*;
use std::path::Path;

const PS_MONITOR: &str = "/usr/lib/mon/mon-local.d/ps.monitor";
const CHECK_PROCS: &str = "/usr/lib/nagios/plugins/check_procs";

/// Copies of the sleeper under the names the checks count (comm comes from
/// the file name), started as the test's tree, then `$BODY`.
fn script(body: &str) -> String {
    format!(
        r#"
set -u
mkdir -p "$WORK/bin" "$WORK/opt"
for name in tor master cron crack python3 worker other; do cp "$SLEEPER" "$WORK/bin/$name"; done
started() {{ # wait until N processes run argv[0] $1
    for ((i = 0; i < 400; i++)); do
        [ "$(pgrep -c -x "$2")" -ge "$1" ] && return 0
        sleep 0.01
    done
}}
{body}
"#
    )
}

/// The standard tree: tor x1, master x3, cron x2, crack x1, one python3
/// script, no sshd.
const TREE: &str = r#"
"$WORK/bin/tor" & "$WORK/bin/cron" & "$WORK/bin/cron" & "$WORK/bin/crack" &
for i in 1 2 3; do "$WORK/bin/master" -w & done
"$WORK/bin/python3" "$WORK/opt/myscript.py" &
started 3 master; started 2 cron; started 1 tor; started 1 crack; started 1 python3
"#;

/// A work folder with the sleeper, for a live test that also needs the
/// tools `also` (path and Debian package).
fn live_work(test: &str, also: &[(&str, &str)]) -> (TempDir, std::path::PathBuf) {
    need_live();
    for (tool, package) in also {
        need_file(tool, package);
    }
    let work = TempDir::new(test);
    let sleeper = build_sleeper(work.path());
    (work, sleeper)
}

/// The `name:count` tokens of a ps.monitor-style summary line, sorted.
fn summary(output: &str) -> Vec<String> {
    let mut tokens: Vec<String> = output
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    tokens.sort();
    tokens
}

fn same_verdicts_as_ps_monitor() {
    let (work, sleeper) = live_work("ps-monitor", &[(PS_MONITOR, "mon")]);
    let specs = "tor:1-1 master:1-2 sshd:1- cron:1-5 myscript.py:1-1";
    let body = format!(
        "{TREE}
echo ==ps.monitor==; {PS_MONITOR} {specs}; echo \"exit $?\"
echo ==psdiff==; \"$PSDIFF\" check {specs}; echo \"exit $?\"
echo ==crack==; \"$PSDIFF\" check crack:0-0 tor:1-1; echo \"exit $?\"
echo ==ps.monitor-crack==; {PS_MONITOR} crack:0-0 tor:1-1; echo \"exit $?\"
"
    );
    let out = run_in_pid_namespace(&script(&body), work.path(), &sleeper);
    let text = stdout(&out);
    let (theirs, ours) = (section(&text, "ps.monitor"), section(&text, "psdiff"));
    assert_eq!(
        summary(ours),
        ["master:3", "sshd:0"],
        "{text}\n{}",
        stderr(&out)
    );
    assert_eq!(summary(theirs), summary(ours), "{text}");
    assert!(
        theirs.ends_with("exit 1\n") && ours.ends_with("exit 1\n"),
        "{text}"
    );
    assert!(
        ours.contains("\nmaster:3 > 2 (1-2)\n") && theirs.contains("\nmaster:3 > 2 (1-2)\n"),
        "{text}"
    );
    // Where they differ on purpose: an open bound prints empty, and 0 is
    // a real bound (ps.monitor lets crack run).
    assert!(
        ours.contains("\nsshd:0 < 1 (1-)\n") && theirs.contains("\nsshd:0 < 1 (1-0)\n"),
        "{text}"
    );
    assert_eq!(
        section(&text, "crack"),
        "crack:1\ncrack:1 > 0 (0-0)\nexit 1\n"
    );
    assert_eq!(section(&text, "ps.monitor-crack"), "exit 0\n");
}

fn same_states_as_check_procs() {
    let (work, sleeper) = live_work("check-procs", &[(CHECK_PROCS, "monitoring-plugins-basic")]);
    let rules = work.path().join("checks.toml");
    std::fs::write(
        &rules,
        r#"
[[check]]
name = "master"
match = { comm = "master" }
warn = "3:3"
crit = "1:5"

[[check]]
name = "cron"
match = { comm = "cron" }
crit = "3:"
"#,
    )
    .unwrap();
    let body = format!(
        "{TREE}
for c in master cron; do
    echo ==psdiff-$c==; \"$PSDIFF\" check --rules \"$WORK/checks.toml\" --format json; echo \"exit $?\"
done
echo ==procs-master==; {CHECK_PROCS} -w 3:3 -c 1:5 -C master; echo \"exit $?\"
echo ==procs-cron==; {CHECK_PROCS} -c 3: -C cron; echo \"exit $?\"
echo ==nagios==; \"$PSDIFF\" check --rules \"$WORK/checks.toml\" --format nagios; echo \"exit $?\"
"
    );
    let out = run_in_pid_namespace(&script(&body), work.path(), &sleeper);
    let text = stdout(&out);
    assert!(
        section(&text, "procs-master")
            .starts_with("PROCS OK: 3 processes with command name 'master'"),
        "{text}"
    );
    assert!(
        section(&text, "procs-master").ends_with("exit 0\n"),
        "{text}"
    );
    assert!(
        section(&text, "procs-cron")
            .starts_with("PROCS CRITICAL: 2 processes with command name 'cron'"),
        "{text}"
    );
    assert!(section(&text, "procs-cron").ends_with("exit 2\n"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(section(&text, "psdiff-master").lines().next().unwrap()).unwrap();
    let verdict = |name: &str| {
        let check = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        (
            check["verdict"].as_str().unwrap().to_string(),
            check["groups"][0]["value"].as_f64().unwrap(),
        )
    };
    assert_eq!(verdict("master"), ("ok".to_string(), 3.0));
    assert_eq!(verdict("cron"), ("critical".to_string(), 2.0));
    let nagios = section(&text, "nagios");
    assert!(nagios.starts_with("PROCS CRITICAL - cron:2 outside the critical range 3: | master=3;3:3;1:5;0; cron=2;;3:;0;\n"), "{nagios}");
    assert!(nagios.ends_with("exit 2\n"), "{nagios}");
}

fn actions_log_exec_kill_and_dry_run() {
    let (work, sleeper) = live_work("check-actions", &[]);
    let log = work.path().join("check.log");
    let env_file = work.path().join("exec.env");
    std::fs::write(
        work.path().join("record.sh"),
        format!(
            "#!/bin/sh\nenv | grep ^PSDIFF_ | sort > {}\n",
            env_file.display()
        ),
    )
    .unwrap();
    let rules = format!(
        r#"
[[check]]
name = "nobody-workers"
match = {{ command = "worker", user = "nobody" }}
per = "user"
count = "-2"
on_crit = {{ log = "{log}", exec = ["/bin/sh", "{record}"], kill = true, grace = 1 }}

[[check]]
name = "never-init"
match = {{ comm = "bash", user = "root" }}
count = "-0"
on_crit = {{ kill = true, grace = 1 }}
"#,
        log = log.display(),
        record = work.path().join("record.sh").display()
    );
    std::fs::write(work.path().join("checks.toml"), rules).unwrap();
    let body = r#"
for i in 1 2 3 4; do setpriv --reuid=65534 --regid=65534 --clear-groups "$WORK/bin/worker" & done
started 4 worker
echo ==dry==; "$PSDIFF" check --rules "$WORK/checks.toml" --dry-run 2>&1; echo "exit $?"
echo ==after-dry==; pgrep -c -x worker; [ -e "$WORK/check.log" ] && echo logged || echo "no log"
echo ==real==; "$PSDIFF" check --rules "$WORK/checks.toml" 2>&1; echo "exit $?"
echo ==after==; pgrep -c -x worker; echo "init alive: $$"
"#;
    let out = run_in_pid_namespace(&script(body), work.path(), &sleeper);
    let text = stdout(&out);
    let dry = section(&text, "dry");
    assert!(dry.contains("nobody-workers@nobody:4 > 2 (-2)"), "{text}");
    assert!(dry.contains("would append to "), "{dry}");
    assert!(dry.contains("would run [\"/bin/sh\""), "{dry}");
    assert_eq!(dry.matches("would send SIGTERM to pid").count(), 4, "{dry}");
    assert!(
        dry.contains("will not signal pid 1: it is pid 1, psdiff or an ancestor of psdiff"),
        "{dry}"
    );
    assert_eq!(
        section(&text, "after-dry"),
        "4\nno log\n",
        "dry run acts on nothing"
    );

    let real = section(&text, "real");
    assert_eq!(real.matches("sent SIGTERM to pid").count(), 4, "{real}");
    assert!(real.contains("will not signal pid 1"), "{real}");
    assert!(real.contains("ran [\"/bin/sh\""), "{real}");
    assert!(real.ends_with("exit 1\n"), "{real}");
    assert_eq!(section(&text, "after"), "0\ninit alive: 1\n", "{text}");

    let logged = std::fs::read_to_string(&log).unwrap();
    let first = logged.lines().next().unwrap();
    assert!(first.contains(" rule=nobody-workers level=critical user=nobody count=4 nobody-workers@nobody:4 > 2 (-2)"), "{logged}");
    assert!(logged.contains("action: sent SIGTERM to pid"), "{logged}");
    let env = std::fs::read_to_string(&env_file).unwrap();
    for want in [
        "PSDIFF_COUNT=4",
        "PSDIFF_LEVEL=critical",
        "PSDIFF_RULE=nobody-workers",
        "PSDIFF_USER=nobody",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    assert_eq!(
        env.lines()
            .find(|l| l.starts_with("PSDIFF_PIDS="))
            .unwrap()
            .split_whitespace()
            .count(),
        4,
        "{env}"
    );
}

fn credentials_cpu_selinux_and_wildcards() {
    let (work, sleeper) = live_work("check-kinds", &[]);
    std::fs::write(
        work.path().join("checks.toml"),
        r#"
[[check]]
name = "gid0"
credential = "gid0-not-uid0"

[[check]]
name = "setuid"
credential = "ids-differ"

[[check]]
name = "busy"
cpu_percent = 20
allow_commands = ["yes"]

[[check]]
name = "busy-yes"
match = { command = "yes" }
cpu_percent = 20

[[check]]
name = "init_t"
match = { selinux_domain = "init_t" }
count = "1-1"

[[check]]
name = "per-command"
match = { command = "*", user = "nobody" }
per = "user"
count = "-2"

[[check]]
name = "other"
match = { command = "other" }
count = "0-"
"#,
    )
    .unwrap();
    let body = r#"
setpriv --reuid=65534 --regid=0 --clear-groups "$WORK/bin/tor" &
setpriv --ruid=65534 --euid=0 --clear-groups "$WORK/bin/cron" &
for i in 1 2 3; do setpriv --reuid=65534 --regid=65534 --clear-groups "$WORK/bin/worker" & done
for i in 1 2 3; do setpriv --reuid=65534 --regid=65534 --clear-groups "$WORK/bin/other" & done
yes > /dev/null &
started 1 tor; started 1 cron; started 3 worker; started 3 other; started 1 yes
echo ==json==; "$PSDIFF" check --rules "$WORK/checks.toml" --interval 0.5 --format json 2>"$WORK/err"; echo "exit $?"
echo ==err==; cat "$WORK/err"
"#;
    let out = run_in_pid_namespace(&script(body), work.path(), &sleeper);
    let text = stdout(&out);
    let json: serde_json::Value =
        serde_json::from_str(section(&text, "json").lines().next().unwrap()).unwrap();
    let check = |name: &str| {
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let details = |name: &str| -> Vec<String> {
        check(name)["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["detail"].as_str().map(String::from))
            .collect()
    };
    let gid0 = details("gid0");
    assert_eq!(gid0.len(), 1, "{gid0:?}");
    assert!(
        gid0[0].contains(" tor (user nobody) has uids 65534/65534/65534 and gids 0/0/0"),
        "{gid0:?}"
    );
    let setuid = details("setuid");
    assert!(
        setuid
            .iter()
            .any(|d| d.contains(" cron (user root) has uids 65534/0/0")),
        "{setuid:?}"
    );
    assert!(
        details("busy").is_empty(),
        "yes is allowed: {:?}",
        details("busy")
    );
    let busy_yes = details("busy-yes");
    assert_eq!(busy_yes.len(), 1, "{busy_yes:?}");
    assert!(
        busy_yes[0].contains(" yes (user root) used ") && busy_yes[0].ends_with("% CPU > 20%"),
        "{busy_yes:?}"
    );
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        assert_eq!(check("init_t")["verdict"], "not-applicable");
        assert!(
            section(&text, "err")
                .contains("check \"init_t\": not applicable: SELinux is not enabled on this host"),
            "{text}"
        );
    }
    // The * rule counts each command no other check names, per user: the
    // workers, but not `other`, which has a check of its own.
    let wildcard = details("per-command");
    assert_eq!(
        wildcard,
        ["per-command[worker]@nobody:3 > 2 (-2)"],
        "{text}"
    );
    assert!(section(&text, "json").ends_with("exit 1\n"));
}

fn retry_spares_a_restart_but_not_a_dead_daemon() {
    let (work, sleeper) = live_work("check-retry", &[]);
    let body = r#"
"$WORK/bin/tor" & T=$!; started 1 tor
kill -9 $T; wait $T 2>/dev/null
(sleep 0.3; exec "$WORK/bin/tor") &
echo ==restart==; "$PSDIFF" check --retry tor:1-1; echo "exit $?"
echo ==without==; "$PSDIFF" check cron:1-; echo "exit $?"
echo ==dead==; "$PSDIFF" check --retry cron:1-; echo "exit $?"
"#;
    let out = run_in_pid_namespace(&script(body), work.path(), &sleeper);
    let text = stdout(&out);
    assert_eq!(section(&text, "restart"), "exit 0\n", "{text}");
    assert_eq!(
        section(&text, "without"),
        "cron:0\ncron:0 < 1 (1-)\nexit 1\n"
    );
    assert_eq!(section(&text, "dead"), "cron:0\ncron:0 < 1 (1-)\nexit 1\n");
}

fn bad_rules_are_errors() {
    let dir = TempDir::new("check-bad");
    let cases = [
        (
            "[[check]]\nname = \"u\"\nmatch = { user = \"no-such-user-x\" }\ncount = \"1-\"\n",
            ":1:1: check \"u\": there is no user \"no-such-user-x\"",
        ),
        (
            "[[check]]\nname = \"g\"\nmatch = { group = \"no-such-group-x\" }\ncount = \"1-\"\n",
            "there is no group \"no-such-group-x\"",
        ),
        (
            "[[check]]\nname = \"w\"\nmatch = { comm = \"x\" }\nwarn = \"x:\"\n",
            "warn: \"x:\" is not a Nagios range",
        ),
        (
            "[[check]]\nname = \"c\"\nmatch = { comm = \"x\" }\ncount = \"5-1\"\n",
            "count: \"5-1\": the minimum 5 is above the maximum 1",
        ),
        (
            "[[check]]\nname = \"n\"\nmatch = { comm = \"x\" }\n",
            "say what to check",
        ),
        (
            "[[check]]\nname = \"k\"\nmatch = { comand = \"x\" }\ncount = \"1-\"\n",
            "unknown key `comand`; did you mean `command`?",
        ),
    ];
    for (toml, want) in cases {
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let (code, out, err) = run(psdiff().arg("check").arg("--rules").arg(&file));
        assert_eq!((code, out.as_str()), (2, ""), "{toml}: {err}");
        assert!(err.contains(want), "{toml}\nwanted {want}\ngot {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let (code, out, _) = run(psdiff()
            .arg("check")
            .arg("--rules")
            .arg(&file)
            .args(["--format", "nagios"]));
        assert_eq!(code, 3);
        assert!(out.starts_with("PROCS UNKNOWN - "), "{out}");
    }
    let (code, _, err) = run(psdiff().args(["check", "tor:1"]));
    assert_eq!(code, 2);
    assert!(err.contains("check rule \"tor:1\""), "{err}");
    // NAMEs are literal: `*` on the command line is no wildcard.
    for literal in ["*.conf:0-0", "*:0-0"] {
        let (code, out, err) = run(psdiff().args(["check", literal]));
        assert_eq!((code, out.as_str()), (0, ""), "{literal}: {err}");
    }
}

/// A process of nobody's holding 64 MiB and 200 descriptors, and one with
/// a zombie child: resource limits per process and summed, in every
/// format, and zombies counted once they are old enough (issue 17).
fn resources_and_old_zombies() {
    need_root();
    need_file("/usr/bin/python3", "python3");
    let hog = "import os,sys,time\nb=bytearray(64<<20)\nfor i in range(len(b)//4096): b[i*4096]=1\nfds=[open('/dev/null') for _ in range(200)]\nprint('ready',flush=True)\ntime.sleep(60)\n";
    let zombie_parent = "import os,time\npid=os.fork()\nif pid==0: os._exit(0)\nprint('ready',flush=True)\ntime.sleep(60)\n";
    let start = |code: &str| {
        let (child, line) = started(&mut as_nobody(&["/usr/bin/python3", "-c", code]));
        assert_eq!(line, "ready\n");
        child
    };
    let mut hog = start(hog);
    let mut parent = start(zombie_parent);
    let dir = TempDir::new("resources");
    let rules = dir.path().join("checks.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[check]]
name = "hog"
match = {{ pid = {hog} }}
rss = "~:32M"
fds = {{ warn = "~:100", crit = "~:1000" }}
threads = "~:4"
age = "~:1h"

[[check]]
name = "both"
match = {{ user = "nobody", comm = "python3" }}
sum = true
rss = {{ warn = "~:1G" }}

[[check]]
name = "zombies"
match = {{ state = "Z", parent = {{ pid = {parent} }} }}
count = "0-0"
age = "3s:"
"#,
            hog = hog.id(),
            parent = parent.id()
        ),
    )
    .unwrap();
    let check = |format: &str| {
        run(psdiff()
            .args(["check", "--format", format, "--rules"])
            .arg(&rules))
    };
    let (code, out, err) = check("nagios");
    assert_eq!(code, 2, "{out}{err}");
    let hog_pid = hog.id();
    assert!(out.starts_with("PROCS CRITICAL"), "{out}");
    assert!(
        out.contains(&format!("hog:{hog_pid}:rss "))
            && out.contains("outside the critical range ~:32M"),
        "{out}"
    );
    assert!(
        out.contains(&format!("hog:{hog_pid}:fds 20"))
            && out.contains("outside the warning range ~:100"),
        "{out}"
    );
    assert!(
        !out.contains("zombies:"),
        "a fresh zombie is not counted yet: {out}"
    );
    assert!(
        out.contains(&format!("'hog:{hog_pid}:rss'="))
            || out.contains(&format!("hog:{hog_pid}:rss=")),
        "{out}"
    );
    assert!(
        out.contains("B;;~:33554432;0;"),
        "perfdata in bytes with the plain range: {out}"
    );
    assert!(out.contains("both:rss="), "{out}");

    let (_, json, _) = check("json");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let hog_check = &json["checks"][0];
    assert_eq!(hog_check["kind"], "resources");
    let rss = hog_check["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["resource"] == "rss")
        .unwrap();
    assert!(
        rss["value"].as_f64().unwrap() > 60.0 * 1024.0 * 1024.0,
        "{rss}"
    );
    assert_eq!(rss["crit"], "~:33554432");
    let (_, prom, _) = check("prometheus");
    assert!(
        prom.contains(&format!(
            "psdiff_check_resource{{check=\"hog\",group=\"hog:{hog_pid}:fds\",resource=\"fds\"}} 20"
        )),
        "{prom}"
    );

    std::thread::sleep(std::time::Duration::from_millis(3200));
    let (code, out, _) = check("nagios");
    assert_eq!(code, 2);
    assert!(
        out.contains("zombies:1 > 0 (0-0)"),
        "an old zombie is counted: {out}"
    );
    for child in [&mut hog, &mut parent] {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // Mistakes are told at load.
    for (body, says) in [
        ("rss = \"~:2X\"", "unknown unit `X`"),
        ("threads = \"~:2G\"", "plain number"),
        ("age = \"1h\"\nsum = true", "does not add up"),
        (
            "count = \"1-\"\nage = { warn = \"1m:\" }",
            "says which processes are counted",
        ),
        ("rss = {}", "give `warn`, `crit` or both"),
    ] {
        std::fs::write(
            &rules,
            format!("[[check]]\nname = \"x\"\nmatch = {{ comm = \"x\" }}\n{body}\n"),
        )
        .unwrap();
        let (code, _, err) = run(psdiff().arg("check").arg("--rules").arg(&rules));
        assert_eq!(code, 2, "{body}: {err}");
        assert!(err.contains(says), "{body}: {err}");
    }
}

/// A program whose binary was deleted, and one that maps a deleted
/// library: `--needs-restart` lists both host-wide, a `deleted = true`
/// check names them unless allowed (issue 17, item 5).
fn deleted_executables_and_libraries_need_a_restart() {
    need_file("/usr/bin/python3", "python3");
    let dir = TempDir::new("deleted");
    let sleep = dir.path().join("old-sleep");
    std::fs::copy("/bin/sleep", &sleep).unwrap();
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib64/libz.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or_else(|| skip("libz.so.1 (Debian package zlib1g)"));
    let lib = dir.path().join("libold.so");
    std::fs::copy(libz, &lib).unwrap();
    let mut old_binary = std::process::Command::new(&sleep)
        .arg("600")
        .spawn()
        .unwrap();
    let code = format!(
        "import ctypes,time\nctypes.CDLL({:?})\nprint('ready',flush=True)\ntime.sleep(600)\n",
        lib.display()
    );
    let (mut old_library, _) =
        started(std::process::Command::new("/usr/bin/python3").args(["-c", &code]));
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::remove_file(&sleep).unwrap();
    std::fs::remove_file(&lib).unwrap();

    let (code, out, err) = run(psdiff().args(["check", "--needs-restart"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "needs-restart:{} old-sleep (user root",
            old_binary.id()
        )) && out.contains(&format!("runs deleted {}: restart it", sleep.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("needs-restart:{} python3", old_library.id()))
            && out.contains(&format!("runs deleted {}", lib.display())),
        "{out}"
    );

    let rules = dir.path().join("checks.toml");
    std::fs::write(
        &rules,
        format!(
            "[[check]]\nname = \"upgraded\"\nmatch = {{ user = \"root\" }}\ndeleted = true\nallow_deleted = [\"{}\", \"/nonexistent/\"]\n",
            lib.display()
        ),
    )
    .unwrap();
    let (code, out, _) = run(psdiff()
        .args(["check", "--format", "nagios", "--rules"])
        .arg(&rules));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("upgraded:{}", old_binary.id())),
        "{out}"
    );
    assert!(
        !out.contains(&format!("upgraded:{}", old_library.id())),
        "allowed: {out}"
    );
    for child in [&mut old_binary, &mut old_library] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let (code, out, _) = run(psdiff().args(["check", "--needs-restart", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["checks"][0]["kind"], "deleted");
    assert!(!out.contains("old-sleep"), "{out}");
    assert!([0, 1].contains(&code));
}

/// A TCP greeter and a UDP socket of nobody's: `listen` finds them by
/// the matched process, says who listens when it is another, and
/// `banner`/`expect` say what answered (issue 17, item 1). The live
/// Debian suite does the same against sshd, postfix and nginx.
fn ports_and_banners() {
    need_root();
    need_file("/usr/bin/python3", "python3");
    let code = "import socket,time\nt=socket.socket()\nt.bind(('127.0.0.1',0))\nt.listen()\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.bind(('127.0.0.1',0))\nprint(t.getsockname()[1],u.getsockname()[1],flush=True)\nwhile True:\n  c,_=t.accept()\n  c.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n')\n  c.close()\n";
    let (mut server, line) = started(&mut as_nobody(&["/usr/bin/python3", "-c", code]));
    let (tcp, udp) = line.trim().split_once(' ').unwrap();
    let pid = server.id();
    let dir = TempDir::new("ports");
    let rules = dir.path().join("checks.toml");
    let check = |body: &str| {
        std::fs::write(&rules, format!("[[check]]\nname = \"ssh\"\n{body}\n")).unwrap();
        run(psdiff()
            .args(["check", "--format", "nagios", "--rules"])
            .arg(&rules))
    };
    let (code, out, err) = check(&format!(
        "match = {{ pid = {pid} }}\nlisten = \"tcp:{tcp}\"\nbanner = \"SSH-2.0-OpenSSH_\"\ntimeout = \"2s\""
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ssh:listen=1;;1:;0;") && out.contains("ssh:answer="),
        "{out}"
    );
    let (code, out, _) = check(&format!(
        "match = {{ pid = {pid} }}\nlisten = \"udp:127.0.0.1:{udp}\""
    ));
    assert_eq!(code, 0, "{out}");

    // Another process holds the port: named. A banner that differs: what
    // answered is said.
    let (code, out, _) = check(&format!(
        "match = {{ user = \"root\", comm = \"sshd-nowhere\" }}\nlisten = \"tcp:{tcp}\""
    ));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("no process it matches listens on tcp:{tcp} (0 matched); pid {pid} (python3, user nobody) listens there instead")),
        "{out}"
    );
    let (code, out, _) = check(&format!(
        "listen = \"tcp:{tcp}\"\nbanner = \"SSH-2.0-dropbear\""
    ));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "answered \"SSH-2.0-OpenSSH_9.2p1 Debian-2\" (not starting with \"SSH-2.0-dropbear\")"
        ),
        "{out}"
    );
    let (code, out, _) = check(&format!(
        "address = \"127.0.0.1:{tcp}\"\nexpect = '^SSH-2\\.0-\\S+ Debian'"
    ));
    assert_eq!(code, 0, "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
    let (code, out, _) = check(&format!("listen = \"tcp:{tcp}\"\nbanner = \"SSH-\""));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("nothing listens there") && out.contains("cannot connect"),
        "{out}"
    );

    // Each error says where: the value that is wrong, or (for keys that
    // do not go together) the check.
    for (body, says, at) in [
        (
            "listen = \"tcp:99999\"",
            "not a listening place",
            "checks.toml:3:10:",
        ),
        (
            "listen = \"udp:53\"\nbanner = \"x\"",
            "over TCP",
            "checks.toml:1:1:",
        ),
        (
            "banner = \"x\"",
            "needs `listen` or an `address`",
            "checks.toml:1:1:",
        ),
        (
            "listen = \"tcp:22\"\nsend = \"x\"",
            "belongs to a banner check",
            "checks.toml:1:1:",
        ),
        (
            "listen = \"tcp:22\"\ncount = \"1-\"",
            "a check of their own",
            "checks.toml:1:1:",
        ),
        (
            "listen = \"tcp:22\"\nexpect = \"(\"",
            "not a regex",
            "checks.toml:4:10:",
        ),
        (
            "listen = \"tcp:22\"\nbanner = \"x\"\ntimeout = \"forever\"",
            "not a time",
            "checks.toml:5:11:",
        ),
        ("rss = \"~:2Q\"", "rss: ", "checks.toml:3:7:"),
        ("fds = { warn = \"x\" }", "fds: ", "checks.toml:3:7:"),
        (
            "restarts = \"0-2\"\nwithin = \"soon\"",
            "",
            "checks.toml:4:10:",
        ),
        (
            "restarts = \"lots\"\nwithin = \"1h\"",
            "restarts: ",
            "checks.toml:3:12:",
        ),
    ] {
        check(body);
        let (code, _, err) = run(psdiff().arg("check").arg("--rules").arg(&rules));
        assert_eq!(code, 2, "{body}: {err}");
        assert!(err.contains(says), "{body}: {err}");
        assert!(err.contains(at), "{body}: {at} in {err}");
    }
}

/// PIKT's `#if mailserver ... #else ... #endif`: one file, each host
/// gets its own checks; `config check --host` and `explain` say why
/// (issue 17, item 6).
fn one_config_for_many_hosts() {
    let dir = TempDir::new("hosts");
    let config = dir.path().join("psdiff.toml");
    std::fs::write(
        &config,
        r#"defaults = false

[groups]
mailserver = ["mail1", "mail2.example.com"]

[[check]]
name = "syslog"
match = { comm = "rsyslogd" }
count = "1-"

[[check]]
name = "mta"
groups = ["mailserver"]
match = { comm = "master" }
count = "2-"

[[check]]
name = "no-mta"
unless_groups = ["mailserver"]
unless_hosts = ["relay*"]
match = { comm = "master" }
count = "0-0"

[[rule]]
name = "hide-miner-in-moscow"
hosts = ["moscow"]
match = { comm = "miner" }
action = "hide"
"#,
    )
    .unwrap();
    let on = |host: &str, args: &[&str]| {
        let mut cmd = on_fixture("defaults");
        cmd.arg("--config")
            .arg(&config)
            .args(["--host", host])
            .args(args);
        run(&mut cmd)
    };
    let (code, out, err) = on("mail2.example.com", &["config", "check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("OK: 0 rules and 2 checks for host mail2.example.com"),
        "{out}"
    );
    assert!(
        out.contains("check \"mta\" applies: host mail2.example.com is in group \"mailserver\""),
        "{out}"
    );
    assert!(
        out.contains("check \"no-mta\" does not apply on host mail2.example.com"),
        "{out}"
    );
    // The fixture runs one postfix master: too few for a mail server,
    // one too many for any other host, and fine for a relay.
    let (code, out, _) = on("mail1", &["check"]);
    assert_eq!((code, out.as_str()), (1, "mta:1\nmta:1 < 2 (2-)\n"));
    let (code, out, _) = on("web1", &["check"]);
    assert_eq!((code, out.as_str()), (1, "no-mta:1\nno-mta:1 > 0 (0-0)\n"));
    let (code, out, _) = on("relay3.example.com", &["check"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let miner = std::fs::read_dir(fixtures().join("defaults/proc"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| s.contains("(miner)"))
        })
        .map(|e| e.file_name().into_string().unwrap())
        .unwrap();
    let (_, out, _) = on("moscow", &["explain", &miner]);
    assert!(
        out.contains("(here because host moscow matches hosts \"moscow\")"),
        "{out}"
    );
    let (_, out, _) = on("web1", &["explain", &miner]);
    assert!(!out.contains("hide-miner-in-moscow"), "{out}");

    // A fleet's file whose every check is for other hosts is no error
    // here: nothing to check, and it says so (issue 25, item 5).
    std::fs::write(
        &config,
        "defaults = false\n[[check]]\nname = \"mta\"\nhosts = [\"mail*\"]\nmatch = { comm = \"master\" }\ncount = \"1-\"\n",
    )
    .unwrap();
    let (code, out, err) = on("web1", &["check"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(
        err.contains("no check applies on host web1: the 1 [[check]] table(s) are for other hosts"),
        "{err}"
    );
    let (code, out, _) = on("web1", &["check", "--format", "nagios"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("PROCS OK - no check applies on this host"),
        "{out}"
    );
    let (code, _, err) = on("web1", &["check", "--rules", "/dev/null"]);
    assert_eq!(
        code, 2,
        "a file with no checks at all is still a mistake: {err}"
    );

    std::fs::write(&config, "[[check]]\nname = \"x\"\ngroups = [\"mailservers\"]\nmatch = { comm = \"master\" }\ncount = \"1-\"\n").unwrap();
    let (code, _, err) = on("web1", &["config", "check"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("psdiff.toml:1:1: check \"x\": there is no group \"mailservers\""),
        "{err}"
    );
}

/// A daemon under a supervisor that restarts it at once (a shell loop,
/// as systemd's Restart= does; the live Debian suite uses a real unit):
/// each replacement is counted, across runs, within the window (issue 17,
/// item 2).
fn restarts_are_counted_across_runs() {
    let dir = TempDir::new("restarts");
    let mut supervisor = std::process::Command::new("bash")
        .args(["-c", "while true; do sleep 600; done"])
        .spawn()
        .unwrap();
    let sup = supervisor.id();
    let daemon = || -> u32 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let out = std::process::Command::new("pgrep")
                .args(["-P", &sup.to_string()])
                .output()
                .unwrap();
            if let Some(pid) = stdout(&out).lines().next().and_then(|l| l.parse().ok()) {
                return pid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the supervisor started nothing"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let rules = dir.path().join("checks.toml");
    std::fs::write(
        &rules,
        format!("[[check]]\nname = \"loop\"\nmatch = {{ comm = \"sleep\", parent = {{ pid = {sup} }} }}\nrestarts = \"0-1\"\nwithin = \"1h\"\n"),
    )
    .unwrap();
    let state = dir.path().join("state");
    let check = || {
        run(psdiff()
            .arg("check")
            .arg("--rules")
            .arg(&rules)
            .arg("--state-dir")
            .arg(&state))
    };
    let restart = || {
        let old = daemon();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        while daemon() == old {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert_eq!(
        check(),
        (0, String::new(), String::new()),
        "the first look counts nothing"
    );
    assert_eq!(check().0, 0);
    restart();
    assert_eq!(check().0, 0, "one restart is within 0-1");
    restart();
    let (code, out, _) = check();
    assert_eq!(
        (code, out.as_str()),
        (1, "loop:restarts:2\nloop:restarts:2 > 1 (0-1) within 1h\n")
    );
    let (code, out, _) = run(psdiff()
        .args(["check", "--format", "nagios", "--rules"])
        .arg(&rules)
        .arg("--state-dir")
        .arg(&state));
    assert_eq!(code, 2);
    assert!(out.contains("loop:restarts=2;;0:1;0;"), "{out}");
    // Safe to delete: counting starts afresh.
    std::fs::remove_file(state.join("restarts.json")).unwrap();
    assert_eq!(check().0, 0);
    supervisor.kill().unwrap();
    supervisor.wait().unwrap();
    let _ = std::process::Command::new("pkill")
        .args(["-P", &sup.to_string()])
        .status();
}

crate::tests![
    restarts_are_counted_across_runs,
    one_config_for_many_hosts,
    ports_and_banners,
    deleted_executables_and_libraries_need_a_restart,
    resources_and_old_zombies,
    same_verdicts_as_ps_monitor,
    same_states_as_check_procs,
    actions_log_exec_kill_and_dry_run,
    credentials_cpu_selinux_and_wildcards,
    retry_spares_a_restart_but_not_a_dead_daemon,
    bad_rules_are_errors,
];
