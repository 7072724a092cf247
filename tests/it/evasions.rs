//! Issue 24's evasions, each made by an unprivileged user (nobody, through
//! setpriv) against the real binary and the shipped rules, with a
//! baseline written before the attack: the miner must be in
//! `show-extra --retry`, asked directly and through the real Zabbix agent.
//! Each hole is tried with the next variation a careful attacker would
//! use.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A work folder nobody may read and run from, with the helpers built in
/// it, and a baseline of the machine as it is before the attack.
struct Attack {
    work: TempDir,
    agent: ZabbixAgent,
    config: PathBuf,
    held: Vec<Child>,
}

impl Attack {
    /// With the built-in rules and, before them, `rules` (TOML).
    fn new(tag: &str, rules: &str) -> Attack {
        need_root();
        need_live();
        need_file("/usr/bin/setpriv", "util-linux");
        let work = TempDir::new(tag);
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        build_helper(work.path(), "evader");
        let preload = work.path().join("evader.so");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/evader.c");
        let built = Command::new("cc")
            .args(["-O", "-shared", "-fPIC", "-DPRELOAD", "-o"])
            .arg(&preload)
            .arg(&src)
            .status()
            .unwrap();
        assert!(built.success(), "cc failed to build the preload library");
        // The attacker's own files, as they would be.
        for helper in [&preload, &work.path().join("evader")] {
            std::os::unix::fs::chown(helper, Some(65534), Some(65534)).unwrap();
        }
        let config = work.path().join("psdiff.toml");
        std::fs::write(&config, rules).unwrap();
        let agent = ZabbixAgent::new();
        let attack = Attack {
            work,
            agent,
            config,
            held: Vec::new(),
        };
        let (code, _, err) = run(attack.psdiff().arg("write"));
        assert_eq!(code, 0, "{err}");
        attack
    }

    fn path(&self, name: &str) -> String {
        self.work.path().join(name).display().to_string()
    }

    fn psdiff(&self) -> Command {
        let mut cmd = psdiff();
        cmd.env("PSDIFF_CONFIG", &self.config)
            .env("PSDIFF_DB", self.agent.db());
        cmd
    }

    /// Runs `script` with bash as nobody, its stdin a pipe held open,
    /// and waits until its processes are in place.
    fn start(&mut self, script: &str) {
        let child = as_nobody(&["bash", "-c", script])
            .current_dir(self.work.path())
            .env("WORK", self.work.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.held.push(child);
        std::thread::sleep(Duration::from_millis(700));
    }

    /// What `show-extra --retry` says, directly and through the agent
    /// (the same, but for the order of concurrent tests' processes).
    fn extra(&self) -> (String, String) {
        let (_, direct, err) = run(self.psdiff().args(["show-extra", "--retry"]));
        assert!(err.is_empty(), "{err}");
        let config = self.config.as_os_str();
        let agent = self
            .agent
            .item_with("psdiff.extra", &[("PSDIFF_CONFIG", config)]);
        (direct, agent)
    }

    /// Asserts that a line with `text` is extra, both ways, and returns
    /// the direct output.
    fn assert_extra(&self, text: &str) -> String {
        let (direct, agent) = self.extra();
        assert!(direct.contains(text), "{text:?} is not extra:\n{direct}");
        assert!(
            agent.contains(text),
            "{text:?} is not extra through the agent:\n{agent}"
        );
        direct
    }

    /// Writes the baseline again, with what runs now.
    fn rewrite(&self) {
        let (code, _, err) = run(self.psdiff().arg("write"));
        assert_eq!(code, 0, "{err}");
    }

    /// What `show-missing --retry` and `show-extra --retry` say, and the
    /// agent's missing item.
    fn changes(&self) -> (String, String, String) {
        let (_, missing, err) = run(self.psdiff().args(["show-missing", "--retry"]));
        assert!(err.is_empty(), "{err}");
        let (_, extra, err) = run(self.psdiff().args(["show-extra", "--retry"]));
        assert!(err.is_empty(), "{err}");
        let config = self.config.as_os_str();
        let agent = self
            .agent
            .item_with("psdiff.missing", &[("PSDIFF_CONFIG", config)]);
        (missing, extra, agent)
    }

    fn explain(&self, pid: u32) -> String {
        let (_, out, _) = run(self.psdiff().args(["explain", &pid.to_string()]));
        out
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        // Every process of nobody's that this test started.
        for child in &mut self.held {
            let _ = Command::new("pkill")
                .args(["-KILL", "-s", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The pid of nobody's process whose cmdline is exactly `cmdline`.
fn pid_of(cmdline: &str) -> u32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let argv = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&argv).replace('\0', " ");
        if text.trim_end() == cmdline {
            return pid;
        }
    }
    panic!("no process {cmdline:?}");
}

/// A setuid-root program (passwd, blocked reading the password) titled
/// like a daemon a built-in rule hides the tree of: its euid is root,
/// its title the daemon's; the miner it forked before the exec is shown.
/// Next: the title padded with 300 blanks, so that the lookup of argv[0]
/// fails; and su instead of passwd.
fn a_setuid_parent_titled_like_a_daemon_hides_nothing() {
    need_file("/usr/bin/passwd", "passwd");
    let mut attack = Attack::new("setuid-parent", "");
    let pad = " ".repeat(300);
    attack.start("sleep 6011 & exec -a /usr/libexec/fwupd/fwupd passwd");
    attack.start(&format!(
        r#"
sleep 6012 & exec -a "/usr/libexec/fwupd/fwupd{pad}" passwd
"#
    ));
    attack.start(
        r#"
sleep 6013 & exec -a "/usr/bin/python3 /usr/bin/salt-minion" passwd
"#,
    );
    let out = attack.assert_extra("sleep 6011  {user=nobody}");
    attack.assert_extra("sleep 6012  {user=nobody}");
    attack.assert_extra("sleep 6013  {user=nobody}");
    assert!(
        out.contains("/usr/libexec/fwupd/fwupd (running /usr/bin/passwd)  {user=root}"),
        "{out}"
    );
    // The padded title is a disguise too, marked though the blanks go.
    assert_eq!(
        out.matches("/usr/libexec/fwupd/fwupd (running /usr/bin/passwd)")
            .count(),
        2,
        "{out}"
    );
    let story = attack.explain(pid_of("sleep 6011"));
    assert!(
        story.contains("shown    no visibility rule applies"),
        "{story}"
    );
}

/// A process whose main thread called pthread_exit reads as a zombie
/// (state Z) while its worker thread runs: it is shown, named by its
/// live thread's argv. Next: the same under a name that a hiding rule
/// knows.
fn a_zombie_leader_with_a_live_thread_is_shown() {
    let mut attack = Attack::new("zombie-leader", "");
    let evader = attack.path("evader");
    attack.start(&format!("exec {evader} zombie-leader"));
    attack.start(&format!(
        "exec -a /usr/libexec/fwupd/fwupd {evader} zombie-leader"
    ));
    let pid = pid_of_stat_z();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("State:\tZ (zombie)"), "{status}");
    attack.assert_extra(&format!("{evader} zombie-leader  {{user=nobody}}"));
    attack.assert_extra(&format!(
        "/usr/libexec/fwupd/fwupd zombie-leader (running {evader})  {{user=nobody}}"
    ));
}

/// A process of nobody's in state Z with more than one thread.
fn pid_of_stat_z() -> u32 {
    for _ in 0..50 {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            if status.contains("State:\tZ")
                && status.contains("Uid:\t65534")
                && !status.contains("Threads:\t1\n")
            {
                return entry.file_name().to_string_lossy().parse().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no zombie leader of nobody's");
}

/// An operator's rule hides nobody's sleep by its executable and user.
/// The host's /usr/bin/sleep with a preloaded library (whose constructor
/// is the miner), and a miner bind-mounted over /usr/bin/sleep in a user
/// namespace of nobody's own (so /proc/PID/exe still reads
/// /usr/bin/sleep), are not that program: both are shown, and explain
/// says why. Next: LD_AUDIT instead of LD_PRELOAD, and the preloaded
/// library removed once it is loaded.
fn a_spoofed_executable_satisfies_no_hiding_rule() {
    let rules = r#"
[[rule]]
name = "nobody-sleeps"
match = { exe = "/usr/bin/sleep", user = "nobody" }
action = "hide-tree"
"#;
    let mut attack = Attack::new("spoofed-exe", rules);
    let (evader, preload) = (attack.path("evader"), attack.path("evader.so"));
    attack.start("exec sleep 6020");
    attack.start(&format!("LD_PRELOAD={preload} exec sleep 6021"));
    attack.start(&format!(
        "exec unshare -Urm sh -c 'mount --bind {evader} /usr/bin/sleep && exec /usr/bin/sleep 6022'"
    ));
    attack.start(&format!("LD_AUDIT={preload} exec sleep 6023"));
    attack.start(&format!(
        "cp {preload} $WORK/gone.so && (sleep 0.3; rm $WORK/gone.so) & LD_PRELOAD=$WORK/gone.so exec sleep 6024"
    ));
    let (direct, _) = attack.extra();
    assert!(
        !direct.contains("sleep 6020"),
        "the operator's rule hides the real thing: {direct}"
    );
    for n in 6021..=6024 {
        attack.assert_extra(&format!("sleep {n}  {{user=nobody}}"));
    }
    let preloaded = attack.explain(pid_of("sleep 6021"));
    assert!(
        preloaded.contains("its environment sets LD_PRELOAD")
            && preloaded.contains("evader.so, which a user could have written"),
        "{preloaded}"
    );
    let mounted = attack.explain(pid_of("/usr/bin/sleep 6022"));
    assert!(
        mounted.contains("runs in a user namespace a user made")
            && mounted.contains("the file it runs is not the host's /usr/bin/sleep"),
        "{mounted}"
    );
}

/// Titles cannot shed the mark of a disguise or pass for another line:
/// a rewrite that matches by name (the built-in amavisd rule) does not
/// cut `(running EXE)` off, leading blanks do not read as indent, and
/// U+2028 does not split a line. A Perl daemon titled with its own
/// script's path is that program, not a disguise.
fn titles_cannot_pass_for_another_line() {
    need_file("/usr/bin/perl", "perl");
    let mut attack = Attack::new("titles", "");
    attack.start("exec -a '/usr/sbin/amavisd-new (master)' sleep 6031");
    attack.start("exec -a '   INIT' sleep 6032");
    attack.start("exec -a $'x\\u2028  INIT' sleep 6033");
    let script = attack.path("daemon.pl");
    std::fs::write(
        &script,
        "#!/usr/bin/perl\n$0 = \"$0 (master)\";\nprint \"ready\\n\";\nsleep 600;\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    attack.start(&format!("exec {script} 6034"));
    let out = attack.assert_extra(
        "/usr/sbin/amavisd-new (master) 6031 (running /usr/bin/sleep)  {user=nobody}",
    );
    attack.assert_extra("    ???INIT 6032  {user=nobody}");
    attack.assert_extra("    x?  INIT 6033  {user=nobody}");
    attack.assert_extra(&format!("    {script} (master)  {{user=nobody}}"));
    assert!(!out.contains('\u{2028}'), "{out:?}");
    assert!(
        !out.contains(&format!("{script} (master) (running")),
        "a script's own title is no disguise: {out}"
    );
}

/// 12,000 empty cgroups, which a user makes in a second in the subtree
/// delegated to them, cost a check no more than its processes do: the
/// walk stops at a bound and the rest is read per process, with the
/// same placement (bench/cgroup_flood.sh measures the cost).
fn a_cgroup_flood_changes_no_placement() {
    need_root();
    let Some(v2) = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.split(' ');
            let point = f.nth(1)?;
            (f.next()? == "cgroup2").then(|| PathBuf::from(point))
        })
    else {
        skip("a mounted cgroup2 hierarchy");
    };
    let placed = || {
        let (_, out, err) = run(psdiff().args(["dump", "--format", "json"]));
        assert!(err.is_empty(), "{err}");
        let lines: serde_json::Value = serde_json::from_str(&out).unwrap();
        let me = std::process::id();
        let mine = lines
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["pid"] == me)
            .cloned();
        mine.map(|l| l["cgroup"].clone())
    };
    let before = placed();
    let flood = v2.join(format!("psdiff-flood-{}", std::process::id()));
    std::fs::create_dir(&flood).unwrap();
    for i in 0..12_000 {
        std::fs::create_dir(flood.join(format!("c{i}"))).unwrap();
    }
    let after = placed();
    for i in 0..12_000 {
        let _ = std::fs::remove_dir(flood.join(format!("c{i}")));
    }
    std::fs::remove_dir(&flood).unwrap();
    assert!(before.is_some(), "the test process is in the dump");
    assert_eq!(before, after);
}

/// A rule that hides by nothing but what a user shapes (a container's
/// name, which a user's own cgroup can take) is warned of.
fn config_check_warns_of_rules_a_user_can_shape() {
    let dir = TempDir::new("shapeable");
    let config = dir.path().join("psdiff.toml");
    std::fs::write(
        &config,
        "[[rule]]\nname = \"web-box\"\nmatch = { container = \"web\" }\naction = \"hide-tree\"\n\n[[rule]]\nname = \"web-unit\"\nmatch = { unit = \"web.service\" }\naction = \"hide-tree\"\n",
    )
    .unwrap();
    let (code, out, err) = run(psdiff()
        .env("PSDIFF_CONFIG", &config)
        .args(["config", "check"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning: rule \"web-box\"") && out.contains("add exe, user or unit"),
        "{out}"
    );
    assert_eq!(out.matches("warning:").count(), 1, "only web-box: {out}");
}

/// A daemon's line is kept only by a process of the identity it had when
/// the baseline was written (issue 25, item 6): with the "daemon" gone, a
/// setuid-root passwd of nobody's titled exactly like it does not keep
/// its line, which is missing, and the stand-in is extra with what
/// differs. Before `psdiff.ids`, the stand-in kept the line.
fn a_stand_in_keeps_no_daemons_line() {
    need_file("/usr/bin/passwd", "passwd");
    let mut attack = Attack::new("stand-in", "");
    let title = "testd: accepting connections 6021";
    // Daemons under init, as the stand-in will be: the line is the same.
    let detached = |program: &str| {
        format!("setsid -f bash -c \"exec -a '{title}' {program}\" < <(exec sleep 600)")
    };
    let started = Command::new("bash")
        .args(["-c", &detached("cat")])
        .status()
        .unwrap();
    assert!(started.success());
    std::thread::sleep(Duration::from_millis(300));
    attack.rewrite();
    let ids = std::fs::read_to_string(attack.agent.db().with_extension("ids")).unwrap();
    assert!(
        ids.contains(title) && ids.contains("\"exe\": \"/usr/bin/cat\""),
        "{ids}"
    );
    let kill = |user: &str| {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", user, "-f", &format!("^{title}")])
            .status();
    };
    kill("root");
    attack.start(&detached("passwd"));
    let line = format!("{title}  {{user=root}}");
    let (missing, extra, agent) = attack.changes();
    let story = attack.explain(pid_of(title));
    assert!(
        story.contains("identity not as recorded with the baseline: running /usr/bin/passwd"),
        "{story}"
    );
    // The hole as it was: without the identities, the title is enough.
    std::fs::remove_file(attack.agent.db().with_extension("ids")).unwrap();
    let (before, _, _) = attack.changes();
    // The stand-in runs as root (setuid passwd), its real user nobody.
    kill("nobody");
    kill("root");
    assert!(
        missing.contains(&line),
        "the daemon is not missing:\n{missing}"
    );
    assert!(
        agent.contains(&line),
        "not missing through the agent:\n{agent}"
    );
    assert!(
        extra.contains(&format!("{title} (running /usr/bin/passwd)  {{user=root}}")),
        "{extra}"
    );
    assert!(!before.contains(&line), "{before}");
}

/// A baseline process held stopped (SIGSTOP by its own user) serves
/// nothing: its line is missing and the process extra as `(stopped)`
/// (issue 25, item 7). Next: stopped under a tracer of the user's own
/// (state t) is as stopped; stopped under root's debugger is the admin's
/// business, and quiet.
fn a_stopped_process_keeps_no_line() {
    need_file("/usr/bin/strace", "strace");
    let mut attack = Attack::new("stopped", "");
    attack.start("sleep 6031 & sleep 6032 & sleep 6033 & wait");
    attack.rewrite();
    let line = |n: u32| format!("sleep {n}  {{user=nobody}}");
    let (missing, _, _) = attack.changes();
    assert!(!missing.contains(&line(6031)), "{missing}");
    let signal = |sig: &str, pid: u32| {
        let ok = as_nobody(&["kill", sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let (stopped, traced) = (pid_of("sleep 6031"), pid_of("sleep 6032"));
    signal("-STOP", stopped);
    // The user's own tracer, then the stop: state t.
    let mut tracer = as_nobody(&["strace", "-o", "/dev/null", "-p", &traced.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Root's debugger holding a process of nobody's: the admin at work.
    let admin = pid_of("sleep 6033");
    let mut debugger = Command::new("strace")
        .args(["-o", "/dev/null", "-p", &admin.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    signal("-STOP", traced);
    let ok = Command::new("kill")
        .args(["-STOP", &admin.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    std::thread::sleep(Duration::from_millis(300));
    for pid in [stopped, traced, admin] {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.contains("State:\tT (stopped)") || status.contains("State:\tt (tracing stop)"),
            "{pid}: {status}"
        );
    }
    let (missing, extra, agent) = attack.changes();
    for n in [6031, 6032] {
        assert!(missing.contains(&line(n)), "{n} not missing:\n{missing}");
        assert!(
            agent.contains(&line(n)),
            "{n} not missing through the agent:\n{agent}"
        );
        assert!(
            extra.contains(&format!("sleep {n} (stopped)  {{user=nobody}}")),
            "{extra}"
        );
    }
    assert!(!missing.contains(&line(6033)), "{missing}");
    let story = attack.explain(stopped);
    assert!(
        story.contains("identity stopped: while it stays stopped"),
        "{story}"
    );
    let _ = tracer.kill();
    let _ = debugger.kill();
    let _ = tracer.wait();
    let _ = debugger.wait();
    for pid in [stopped, traced, admin] {
        let _ = Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status();
    }
    std::thread::sleep(Duration::from_millis(300));
    let (missing, extra, _) = attack.changes();
    assert!(!missing.contains(&line(6031)), "{missing}");
    assert!(!extra.contains("(stopped)"), "{extra}");
}

/// A tree is hidden only through processes that run: a user who stops
/// the process between a hiding rule's match and her miner (her own
/// `sshd: USER@notty`, so a session never ends) hides nothing below it.
/// A job stopped as a whole (Ctrl-Z stops its process group) stays hidden.
fn a_stopped_link_hides_nothing_below_it() {
    let rules = r#"
[[rule]]
name = "nobody-holder"
match = { cmdline_prefix = ["holder-6040"], user = "nobody" }
action = "hide-children"
"#;
    let mut attack = Attack::new("stopped-link", rules);
    attack.start(
        "exec -a holder-6040 bash -c \"bash -c 'sleep 6041 & wait' & bash -c 'sleep 6042 & wait' & wait\"",
    );
    let (miner_line, job_line) = ("sleep 6041  {user=nobody}", "sleep 6042  {user=nobody}");
    let (direct, _) = attack.extra();
    assert!(
        !direct.contains(miner_line) && !direct.contains(job_line),
        "hidden while all runs:\n{direct}"
    );
    let parent_of = |pid: u32| -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(1).unwrap().parse().unwrap()
    };
    let (miner, job) = (pid_of("sleep 6041"), pid_of("sleep 6042"));
    let link = parent_of(miner);
    let signal = |sig: &str, pids: &[u32]| {
        for pid in pids {
            let ok = as_nobody(&["kill", sig, &pid.to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
    };
    signal("-STOP", &[link, job, parent_of(job)]);
    std::thread::sleep(Duration::from_millis(300));
    let shown = attack.assert_extra(miner_line);
    assert!(
        !shown.contains(job_line),
        "a stopped job stays hidden:\n{shown}"
    );
    assert!(
        !shown.contains("bash -c sleep 6041 & wait  {"),
        "the stopped link itself:\n{shown}"
    );
    let story = attack.explain(miner);
    assert!(
        story.contains(&format!(
            "it runs below {link} (bash -c sleep 6041 & wait), which is stopped"
        )),
        "{story}"
    );
    signal("-CONT", &[link, job, parent_of(job)]);
    std::thread::sleep(Duration::from_millis(300));
    let (direct, _) = attack.extra();
    assert!(!direct.contains(miner_line), "hidden again:\n{direct}");
}

crate::tests![
    a_setuid_parent_titled_like_a_daemon_hides_nothing,
    a_zombie_leader_with_a_live_thread_is_shown,
    a_spoofed_executable_satisfies_no_hiding_rule,
    titles_cannot_pass_for_another_line,
    a_cgroup_flood_changes_no_placement,
    config_check_warns_of_rules_a_user_can_shape,
    a_stand_in_keeps_no_daemons_line,
    a_stopped_process_keeps_no_line,
    a_stopped_link_hides_nothing_below_it,
];
