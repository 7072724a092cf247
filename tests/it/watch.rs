//! `psdiff watch` on the real kernel's process events: transient extras
//! reported once per consumer, restarts between two checks each counted,
//! the timeline of `history`, loss provoked and said, a killed watcher
//! carrying on. Each watcher has its own journal and sees the whole
//! machine, so the tests look for their own uniquely named processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{TempDir, ZabbixAgent, as_nobody, need_root, psdiff, run, skip, whole_machine};

crate::tests![
    a_transient_extra_is_reported_once_to_each_consumer,
    restarts_between_two_checks_are_each_counted,
    history_tells_when_a_process_died_and_who_started_it,
    a_flood_through_a_tiny_buffer_is_said_as_loss_and_rescanned,
    a_flood_through_a_tiny_ring_buffer_is_said_as_loss_and_rescanned,
    the_ebpf_backend_names_programs_that_live_a_millisecond,
    an_unprivileged_flood_does_not_hide_an_intruder_from_show,
    the_zabbix_item_reports_a_transient_once,
    an_ebpf_watcher_in_a_pid_namespace_journals_its_own_pids,
    a_connector_watcher_in_a_pid_namespace_is_refused,
    a_watcher_killed_mid_storm_carries_on_from_its_journal,
    a_storm_of_starts_is_counted_while_it_happens,
    a_transient_in_a_container_is_seen_from_the_host,
    a_daemons_children_ending_as_it_restarts_are_no_transient,
    a_program_hidden_by_its_executable_is_judged_while_it_runs,
    a_program_gone_at_once_is_judged_as_the_kernel_started_it,
    a_program_that_runs_another_before_a_batch_is_journaled,
    a_title_set_after_fork_judges_the_children,
    a_launcher_of_a_hidden_program_is_reported,
];

/// A private baseline and journal, and psdiff pointed at them; the
/// whole machine's turn, as a watcher sees every process of it.
struct Setup {
    dir: TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        need_root();
        let turn = whole_machine();
        let dir = TempDir::new(tag);
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let setup = Setup { dir, _turn: turn };
        let (code, _, err) = run(setup.psdiff().arg("write"));
        assert_eq!(code, 0, "{err}");
        setup
    }

    /// Gives this setup the rules `toml` and writes its baseline again
    /// under them.
    fn rules(&self, toml: &str) {
        std::fs::write(self.dir.path().join("psdiff.toml"), toml).unwrap();
        let (code, _, err) = run(self.psdiff().arg("write"));
        assert_eq!(code, 0, "{err}");
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.sqlite")
    }

    /// psdiff on this setup's baseline and journal, and its rules when
    /// a test wrote them (`psdiff.toml` in its folder).
    fn psdiff(&self) -> Command {
        let mut cmd = psdiff();
        cmd.env("PSDIFF_DB", self.dir.path().join("db"))
            .env("PSDIFF_JOURNAL", self.journal());
        let config = self.dir.path().join("psdiff.toml");
        if config.exists() {
            cmd.env("PSDIFF_CONFIG", config);
        }
        cmd
    }

    /// Starts a watcher and waits for its first heartbeat.
    fn watch(&self, args: &[&str]) -> Child {
        self.watch_every("0.2", args)
    }

    /// A watcher that commits every `tick` seconds.
    fn watch_every(&self, tick: &str, args: &[&str]) -> Child {
        let mut child = self
            .psdiff()
            .args(["watch", "--tick", tick])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                if err.contains("cannot subscribe") {
                    skip(format!("the kernel's process events: {err}"));
                }
                panic!("psdiff watch ended ({status}): {err}");
            }
            if self.watcher().is_some_and(|w| w["pid"] == child.id()) {
                return child;
            }
            assert!(
                Instant::now() < deadline,
                "the watcher never said it was alive"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn history(&self, args: &[&str]) -> Value {
        let (code, out, err) = run(self
            .psdiff()
            .args(["history", "--all", "--format", "json"])
            .args(args));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }

    fn watcher(&self) -> Option<Value> {
        if !self.journal().exists() {
            return None;
        }
        let v = self.history(&["--since", "1m"]);
        Some(v["watcher"].clone()).filter(|w| !w.is_null())
    }

    /// The events of images whose cmdline begins with `program` (not of
    /// the launchers, `setpriv ... PROGRAM`, that exec it).
    fn events_of(&self, program: &str) -> Vec<Value> {
        let pattern = format!(r"^\s*{}", regex_escape(program));
        let v = self.history(&["--since", "10m", "--match", &pattern]);
        v["events"].as_array().unwrap().clone()
    }

    /// Waits until the journal has an event of `kind` for `marker`.
    fn wait_for(&self, marker: &str, kind: &str) -> Vec<Value> {
        self.wait_for_count(marker, &[kind], 1)
    }

    /// Waits until the journal has `count` events of any of `kinds` for
    /// `marker`; its events then.
    fn wait_for_count(&self, marker: &str, kinds: &[&str], count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events_of(marker);
            let seen = events
                .iter()
                .filter(|e| kinds.iter().any(|k| e["kind"] == *k))
                .count();
            if seen >= count {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{seen} of {count} {kinds:?} of {marker} journaled: {events:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

fn stop(child: Child) -> String {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn a_transient_extra_is_reported_once_to_each_consumer() {
    let setup = Setup::new("watch-transient");
    let watcher = setup.watch(&[]);
    let show = |consumer: &str| run(setup.psdiff().args(["show-extra", "--consumer", consumer]));
    // Zabbix's first look sets its cursor.
    show("zabbix");
    // A user's process that lives a second, between two looks.
    let status = as_nobody(&["sh", "-c", "exec sleep 1.0371"])
        .status()
        .unwrap();
    assert!(status.success());
    setup.wait_for("sleep 1.0371", "exit");
    let (code, out, err) = show("zabbix");
    let ours: Vec<&str> = out.lines().filter(|l| l.contains("1.0371")).collect();
    // The launchers that exec'd it at once (setpriv, `sh -c exec`) are
    // not reported apart from it.
    assert_eq!(ours.len(), 1, "{out}\n{err}");
    let line = ours[0];
    assert!(line.starts_with("+ "), "{line}");
    assert!(
        line.contains("sleep 1.0371 (transient: ") && line.contains(", exit 0)  {user=nobody}"),
        "{line}"
    );
    assert_eq!(code, 1, "an extra was reported");
    let (_, again, _) = show("zabbix");
    assert!(!again.contains("sleep 1.0371"), "reported twice: {again}");
    // Another consumer (NRPE's check) sees it once too.
    let (_, nrpe, _) =
        run(setup
            .psdiff()
            .args(["show-extra", "--consumer", "nrpe", "--format", "nagios"]));
    assert!(nrpe.contains("sleep 1.0371 (transient: "), "{nrpe}");
    let (_, nrpe, _) = run(setup.psdiff().args(["show-extra", "--consumer", "nrpe"]));
    assert!(!nrpe.contains("sleep 1.0371"), "{nrpe}");
    // The missing side never hears of transients.
    let (_, missing, _) = run(setup.psdiff().args(["show-missing", "--consumer", "m"]));
    assert!(!missing.contains("transient"), "{missing}");
    stop(watcher);
    // Without a watcher, show says it cannot see between looks.
    let (_, _, err) = show("zabbix");
    assert!(err.contains("psdiff watch is not running"), "{err}");
}

/// A supervisor that restarts `sleep SECONDS` whenever it dies, as
/// `Restart=always` does, and the pid of its child now.
fn supervisor(seconds: &str) -> (Child, impl Fn() -> u32) {
    let sup = Command::new("sh")
        .args(["-c", &format!("while true; do sleep {seconds}; done")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = sup.id();
    // Its child now, once it has one.
    let child = move || children(id, 1)[0];
    (sup, child)
}

fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn restarts_between_two_checks_are_each_counted() {
    let setup = Setup::new("watch-restarts");
    let watcher = setup.watch(&[]);
    let (mut sup, daemon) = supervisor("4242.17");
    let rules = setup.dir.path().join("checks.toml");
    std::fs::write(
        &rules,
        format!(
            "[[check]]\nname = \"loop\"\nmatch = {{ comm = \"sleep\", parent = {{ pid = {} }} }}\nrestarts = \"0-1\"\nwithin = \"1h\"\n",
            sup.id()
        ),
    )
    .unwrap();
    let state = setup.dir.path().join("state");
    let check = || {
        run(setup
            .psdiff()
            .arg("check")
            .arg("--rules")
            .arg(&rules)
            .arg("--state-dir")
            .arg(&state))
    };
    let first = daemon();
    setup.wait_for("sleep 4242.17", "start");
    assert_eq!(check().0, 0, "nothing restarted yet");
    // Three deaths, each undone at once, between two checks: a ledger
    // sees one new pid; the journal saw every exit.
    let mut old = first;
    for _ in 0..3 {
        kill9(old);
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon() == old {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        old = daemon();
    }
    // Journaled once the watcher's tick has seen the last start.
    setup.wait_for_count("sleep 4242.17", &["restart"], 3);
    let (code, out, err) = check();
    assert_eq!(
        (code, out.as_str()),
        (1, "loop:restarts:3\nloop:restarts:3 > 1 (0-1) within 1h\n"),
        "{err}"
    );
    let events = setup.events_of("sleep 4242.17");
    let killed: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "exit" && e["exit_signal"] == 9)
        .collect();
    assert_eq!(killed.len(), 3, "{events:?}");
    let last = daemon();
    sup.kill().unwrap();
    sup.wait().unwrap();
    kill9(last);
    stop(watcher);
}

fn history_tells_when_a_process_died_and_who_started_it() {
    let setup = Setup::new("watch-history");
    let watcher = setup.watch(&[]);
    let mut victim = as_nobody(&["sleep", "3131.5"]).spawn().unwrap();
    setup.wait_for("sleep 3131.5", "start");
    victim.kill().unwrap();
    victim.wait().unwrap();
    let events = setup.wait_for("sleep 3131.5", "exit");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["start", "exit"], "{events:?}");
    let (start, exit) = (&events[0], &events[1]);
    assert_eq!(start["user"], "nobody");
    assert_eq!(start["verdict"], "extra");
    assert_eq!(start["pid"], victim.id());
    assert_eq!(start["exe"], "/usr/bin/sleep");
    assert_eq!(exit["exit_signal"], 9);
    assert!(exit["time"].as_f64().unwrap() >= start["time"].as_f64().unwrap());
    // The filters: by user, by time, and the text a person reads.
    let ours = r"^\s*sleep 3131";
    let by_user = setup.history(&["--since", "10m", "--user", "nobody", "--match", ours]);
    assert_eq!(by_user["events"].as_array().unwrap().len(), 2);
    let by_other = setup.history(&["--since", "10m", "--user", "root", "--match", ours]);
    assert_eq!(by_other["events"].as_array().unwrap().len(), 0);
    let too_early = setup.history(&["--since", "2h", "--until", "1h", "--match", ours]);
    assert_eq!(too_early["events"].as_array().unwrap().len(), 0);
    let (code, text, _) =
        run(setup
            .psdiff()
            .args(["history", "--since", "10m", "--match", r"^\s*sleep 3131"]));
    assert_eq!(code, 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(" start ") && lines[0].ends_with("{user=nobody}  extra"),
        "{text}"
    );
    assert!(
        lines[1].contains(" exit ") && lines[1].contains("signal 9 after"),
        "{text}"
    );
    let (code, _, err) = run(setup.psdiff().args(["history", "--since", "yesterday-ish"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since \"yesterday-ish\""), "{err}");
    stop(watcher);
}

/// Forks and execs `count` `/bin/true`s in `shells` shells at once.
fn storm(shells: usize, count: usize) {
    let mut children: Vec<Child> = (0..shells)
        .map(|_| {
            Command::new("sh")
                .args([
                    "-c",
                    &format!("i=0; while [ $i -lt {count} ]; do /bin/true; i=$((i+1)); done"),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &mut children {
        child.wait().unwrap();
    }
}

fn a_flood_through_a_tiny_buffer_is_said_as_loss_and_rescanned() {
    flood_is_said_as_loss(&["--backend", "connector", "--socket-buffer", "256"], false);
}

fn a_flood_through_a_tiny_ring_buffer_is_said_as_loss_and_rescanned() {
    // The watcher drains a ring of one page as fast as a storm on two
    // CPUs fills it; stalled (SIGSTOP) for the storm, it cannot.
    flood_is_said_as_loss(&["--backend", "ebpf", "--ring-buffer", "4"], true);
}

/// A fork storm through a watcher whose buffer (`args`) holds a few
/// events, the watcher stalled during it if `stall`: loss counted, said,
/// and followed by a rescan.
fn flood_is_said_as_loss(args: &[&str], stall: bool) {
    let setup = Setup::new("watch-loss");
    let watcher = setup.watch(args);
    let signal = |s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(watcher.id() as i32), s);
    if stall {
        // Idle first, so it is stopped waiting, not reading: the kernel
        // counts the drops then, and they must still be charged.
        std::thread::sleep(Duration::from_millis(700));
        signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
    }
    storm(4, 1500);
    if stall {
        signal(nix::sys::signal::Signal::SIGCONT).unwrap();
    }
    // Something that runs for a while after the flood is seen, by its
    // events or, when the buffer overflows again (any process on the
    // machine fills 256 bytes), by the rescan each loss is followed by;
    // and so is its end: its exit, or the rescan's finding it gone.
    let status = Command::new("sh")
        .args(["-c", "exec sleep 2.7171"])
        .status()
        .unwrap();
    assert!(status.success());
    // Its start, or (its exec lost) the rescan's finding it.
    setup.wait_for_count("sleep 2.7171", &["start", "found"], 1);
    setup.wait_for_count("sleep 2.7171", &["exit", "lost"], 1);
    let v = setup.history(&["--since", "10m"]);
    let lost: u64 = v["losses"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(
        lost > 0,
        "a flood through {args:?} lost nothing? {}",
        v["losses"]
    );
    assert!(
        v["watcher"]["lost"].as_u64().unwrap() > 0,
        "{}",
        v["watcher"]
    );
    assert!(
        v["watcher"]["rescans"].as_u64().unwrap() >= 2,
        "no rescan after the loss: {}",
        v["watcher"]
    );
    let err = stop(watcher);
    assert!(err.contains("event(s) lost"), "{err}");
}

fn the_ebpf_backend_names_programs_that_live_a_millisecond() {
    let setup = Setup::new("watch-ebpf");
    let watcher = setup.watch(&["--backend", "ebpf"]);
    assert_eq!(setup.watcher().unwrap()["backend"], "ebpf");
    // An unprivileged user's burst of programs that each live about a
    // millisecond: over the connector some are gone before /proc is read
    // (journaled `unread`); the kernel side names every one.
    let count = 300;
    let script = format!("i=0; while [ $i -lt {count} ]; do /bin/true zz-ms-$i; i=$((i+1)); done");
    let status = as_nobody(&["sh", "-c", &script]).status().unwrap();
    assert!(status.success());
    let events = setup.wait_for_count("/bin/true zz-ms-", &["start"], count);
    let starts: Vec<&Value> = events.iter().filter(|e| e["kind"] == "start").collect();
    assert_eq!(starts.len(), count, "{starts:?}");
    for start in starts {
        assert_eq!(start["exe"], "/usr/bin/true", "{start}");
        assert_eq!(start["user"], "nobody", "{start}");
        assert_eq!(start["verdict"], "extra", "{start}");
    }
    stop(watcher);
}

fn an_unprivileged_flood_does_not_hide_an_intruder_from_show() {
    let setup = Setup::new("watch-intruder");
    let watcher = setup.watch(&["--backend", "ebpf"]);
    let show = || run(setup.psdiff().args(["show-extra", "--consumer", "zabbix"]));
    show();
    // An ordinary user floods the machine with short programs, hoping the
    // watcher loses events, and slips one that lives 60 ms in mid-flood.
    let flood = "i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done";
    let mut floods: Vec<Child> = (0..4)
        .map(|_| as_nobody(&["sh", "-c", flood]).spawn().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let status = as_nobody(&["sh", "-c", "exec sleep 0.0571"])
        .status()
        .unwrap();
    assert!(status.success());
    for flood in &mut floods {
        flood.wait().unwrap();
    }
    setup.wait_for("sleep 0.0571", "exit");
    let (code, out, err) = show();
    let ours: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("sleep 0.0571 (transient: "))
        .collect();
    assert_eq!(ours.len(), 1, "{err}");
    assert!(ours[0].ends_with("exit 0)  {user=nobody}"), "{}", ours[0]);
    assert_eq!(code, 1);
    // The ring buffer absorbed the flood: nothing was lost to hide in.
    let v = setup.history(&["--since", "10m"]);
    assert_eq!(v["watcher"]["lost"], 0, "{}", v["watcher"]);
    stop(watcher);
}

fn the_zabbix_item_reports_a_transient_once() {
    let setup = Setup::new("watch-zabbix");
    let agent = ZabbixAgent::new();
    let watcher = setup.watch(&[]);
    let db = setup.dir.path().join("db");
    let journal = setup.journal();
    let env = [
        ("PSDIFF_DB", db.as_os_str()),
        ("PSDIFF_JOURNAL", journal.as_os_str()),
    ];
    let item = || agent.item_with("psdiff.extra", &env);
    // The agent's first look sets its cursor.
    item();
    let status = as_nobody(&["sh", "-c", "exec sleep 1.0373"])
        .status()
        .unwrap();
    assert!(status.success());
    setup.wait_for("sleep 1.0373", "exit");
    let value = item();
    let ours: Vec<&str> = value
        .lines()
        .filter(|l| l.contains("sleep 1.0373"))
        .collect();
    assert_eq!(ours.len(), 1, "{value}");
    assert!(
        ours[0].starts_with("+ ") && ours[0].contains("sleep 1.0373 (transient: "),
        "{}",
        ours[0]
    );
    // Once: the next poll has moved past it.
    let again = item();
    assert!(!again.contains("sleep 1.0373"), "reported twice: {again}");
    stop(watcher);
}

fn an_ebpf_watcher_in_a_pid_namespace_journals_its_own_pids() {
    let setup = Setup::new("watch-pidns");
    // A watcher in a container (systemd-nspawn -b, LXC) has its own pids
    // and /proc; the connector refuses it, the eBPF backend translates.
    let bin = env!("CARGO_BIN_EXE_psdiff");
    let script = format!(
        "{bin} watch --backend ebpf --tick 0.2 --for 4s & sleep 1.5; /bin/true zz-pidns-inside; sleep 0.2; wait"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .env("PSDIFF_CONFIG", "/dev/null")
        .env("PSDIFF_DB", setup.dir.path().join("db"))
        .env("PSDIFF_JOURNAL", setup.journal());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let outside = Command::new("/bin/true")
        .arg("zz-pidns-outside")
        .status()
        .unwrap();
    assert!(outside.success());
    assert!(child.wait().unwrap().success());
    let v = setup.history(&["--since", "10m"]);
    let events = v["events"].as_array().unwrap();
    let inside: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "start" && e["argv"] == "/bin/true zz-pidns-inside")
        .collect();
    assert_eq!(inside.len(), 1, "{events:?}");
    // Its pid and parent as the namespace's /proc names them: the shell
    // that runs the script is its pid 1.
    assert_eq!(inside[0]["ppid"], 1, "{}", inside[0]);
    assert!(inside[0]["pid"].as_u64().unwrap() < 100, "{}", inside[0]);
    assert_eq!(inside[0]["exe"], "/usr/bin/true", "{}", inside[0]);
    assert!(
        !events
            .iter()
            .any(|e| e["argv"] == "/bin/true zz-pidns-outside"),
        "a process outside the namespace was journaled: {events:?}"
    );
}

fn a_connector_watcher_in_a_pid_namespace_is_refused() {
    let setup = Setup::new("watch-pidns-connector");
    // The kernel ignores a subscription from there, but its socket still
    // gets the host's events (another listener keeps them flowing), whose
    // pids mean nothing inside.
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_psdiff"))
        .args(["watch", "--backend", "connector", "--for", "3s"])
        .env("PSDIFF_CONFIG", "/dev/null")
        .env("PSDIFF_DB", setup.dir.path().join("db"))
        .env("PSDIFF_JOURNAL", setup.journal())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the kernel did not answer the subscription")
            && err.contains("first pid namespace"),
        "{err}"
    );
    assert!(
        !setup.journal().exists(),
        "a refused watcher made a journal"
    );
}

fn a_watcher_killed_mid_storm_carries_on_from_its_journal() {
    let setup = Setup::new("watch-crash");
    let mut long = Command::new("sleep").arg("5151.3").spawn().unwrap();
    let first = setup.watch(&[]);
    setup.wait_for("sleep 5151.3", "found");
    let storming = std::thread::spawn(|| storm(2, 800));
    std::thread::sleep(Duration::from_millis(300));
    kill9(first.id());
    let mut first = first;
    first.wait().unwrap();
    let second = setup.watch(&[]);
    storming.join().unwrap();
    // The journal is whole and the running process kept its one image.
    let check = Command::new("sqlite3")
        .arg(setup.journal())
        .arg("PRAGMA integrity_check")
        .output();
    match check {
        Ok(out) => assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok"),
        Err(e) => skip(format!("sqlite3 (Debian package sqlite3): {e}")),
    }
    long.kill().unwrap();
    long.wait().unwrap();
    let events = setup.wait_for("sleep 5151.3", "exit");
    let found = events.iter().filter(|e| e["kind"] == "found").count();
    assert_eq!(found, 1, "one image, carried on: {events:?}");
    let err = stop(second);
    assert!(
        err.lines()
            .any(|l| l.contains("carried on from the journal") && !l.contains("(0 carried")),
        "{err}"
    );
}

/// `starts`/`within`: programs that started and ended between two checks
/// are counted from the journal, per command and user, by the same match
/// keys as running ones.
fn a_storm_of_starts_is_counted_while_it_happens() {
    let setup = Setup::new("watch-storm");
    let rules = setup.dir.path().join("checks.toml");
    std::fs::write(
        &rules,
        "[[check]]\nname = \"storm\"\nmatch = { comm = \"sleep\", cmdline = '^sleep 0\\.0717' }\nstarts = \"0-3\"\nwithin = \"1m\"\nper = \"user\"\n",
    )
    .unwrap();
    let check = || {
        run(setup
            .psdiff()
            .arg("check")
            .arg("--rules")
            .arg(&rules)
            .arg("--state-dir")
            .arg(setup.dir.path()))
    };
    // Without a watcher it cannot count, and says so.
    let (_, out, err) = check();
    assert!(format!("{out}{err}").contains("psdiff watch"), "{out}{err}");
    let watcher = setup.watch(&[]);
    assert_eq!(check().0, 0, "{:?}", check());
    for _ in 0..5 {
        let status = as_nobody(&["sleep", "0.0717"]).status().unwrap();
        assert!(status.success());
    }
    setup.wait_for_count("sleep 0.0717", &["exit"], 5);
    let (code, out, err) = check();
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "storm[sleep]@nobody:starts:5\nstorm[sleep]@nobody:starts:5 > 3 (0-3) within 1m\n"
        ),
        "{err}"
    );
    stop(watcher);
    // `starts` needs its window.
    std::fs::write(
        &rules,
        "[[check]]\nname = \"storm\"\nmatch = { comm = \"sleep\" }\nstarts = \"0-3\"\n",
    )
    .unwrap();
    let (code, _, err) = check();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs `within"), "{err}");
}

/// A process that lives a second in a container's own pid namespace is
/// seen by the host's watcher, attributed to its container, and reported
/// as a transient extra.
fn a_transient_in_a_container_is_seen_from_the_host() {
    use crate::containers::{IMAGE, docker, import_image};
    if !docker(&["info"]).0 || !std::path::Path::new("/bin/busybox").exists() {
        skip("a running dockerd (Debian's docker.io) and /bin/busybox (busybox-static)");
    }
    let setup = Setup::new("watch-container");
    import_image(setup.dir.path()).unwrap();
    let watcher = setup.watch(&[]);
    let show = || run(setup.psdiff().args(["show-extra", "--consumer", "zabbix"]));
    show();
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "65534",
        IMAGE,
        "sh",
        "-c",
        "sleep 1.5353; true",
    ]);
    assert!(ok, "{out}");
    let events = setup.wait_for("sleep 1.5353", "exit");
    assert_eq!(events[0]["container"], "docker", "{events:?}");
    assert_eq!(events[0]["user"], "nobody", "{events:?}");
    let (_, out, err) = show();
    let ours: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("sleep 1.5353 (transient: "))
        .collect();
    assert_eq!(ours.len(), 1, "{out}\n{err}");
    stop(watcher);
}

/// A daemon that forks three workers (no exec, as zabbix_agentd does)
/// and, on SIGTERM, tells them to stop and exits at once; they take 4 s.
/// Its pid goes to the file named by its second argument.
const FORKING_DAEMON: &str = "
import os, signal, sys, time
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, lambda *_: (time.sleep(4), os._exit(1)))
        while True:
            time.sleep(3600)
    kids.append(pid)
with open(sys.argv[2] + '.new', 'w') as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[2] + '.new', sys.argv[2])
def stop(*_):
    for kid in kids:
        os.kill(kid, signal.SIGTERM)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(3600)
";

/// Whether `pid` runs a program still (a zombie's cmdline is empty).
fn running(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// The pids of `parent`'s children, once it has `count`.
fn children(parent: u32, count: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("pgrep")
            .args(["-P", &parent.to_string()])
            .output()
            .unwrap();
        let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        if pids.len() >= count {
            return pids;
        }
        assert!(Instant::now() < deadline, "{parent} has {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// As `systemctl restart zabbix-agent` does: the old workers, orphaned
/// while they finish, end just before the next look, which the watcher's
/// tick has not journaled yet; the look before saw them run, so neither
/// that look nor the next may call them transient.
fn a_daemons_children_ending_as_it_restarts_are_no_transient() {
    use nix::sys::signal::Signal;
    let setup = Setup::new("watch-restart-children");
    // Started apart (`setsid -f`), as a service is: not this test's
    // child, which psdiff's own invocation would claim. A user's, as the
    // agent is: a root service's short-lived helpers are no news anyway.
    let pidfile =
        std::env::temp_dir().join(format!("psdiff-test-daemon-{}.pid", std::process::id()));
    let start = || {
        let _ = std::fs::remove_file(&pidfile);
        let status = Command::new("setsid")
            .arg("-f")
            .args([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ])
            .args([
                "/usr/bin/python3",
                "-c",
                FORKING_DAEMON,
                "zz-restarting-daemon",
            ])
            .arg(&pidfile)
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|p| p.parse().ok())
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "the daemon never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let gone = |pid: u32| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(pid) {
            assert!(Instant::now() < deadline, "{pid} did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let old = start();
    let workers = children(old, 3);
    let (code, _, err) = run(setup.psdiff().arg("write"));
    assert_eq!(code, 0, "{err}");
    // A commit every 1.5 s, as a loaded machine's may lag.
    let watcher = setup.watch_every("1.5", &[]);
    let look = || {
        let (_, out, err) = run(setup.psdiff().args(["show-extra", "--consumer", "z"]));
        let ours: Vec<String> = out
            .lines()
            // Not the launcher, a transient of this test's own.
            .filter(|l| {
                l.contains("zz-restarting-daemon")
                    && !l.contains("setsid -f")
                    && !l.contains("setpriv")
            })
            .map(String::from)
            .collect();
        (ours, err)
    };
    let (before, err) = look();
    assert!(
        before.is_empty(),
        "the daemon is the baseline's: {before:?} {err}"
    );
    signal(old, Signal::SIGTERM);
    gone(old);
    let new = start();
    children(new, 3);
    // The workers, orphaned, judged among new processes while they end.
    let ending = Instant::now();
    while workers.iter().any(|&w| running(w)) {
        Command::new("true").status().unwrap();
        assert!(
            ending.elapsed() < Duration::from_secs(10),
            "the old workers did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Within the watcher's tick: their ends are not journaled yet.
    let (during, err) = look();
    std::thread::sleep(Duration::from_secs(2));
    let (after, err_after) = look();
    signal(new, Signal::SIGTERM);
    let _ = std::fs::remove_file(&pidfile);
    stop(watcher);
    assert!(during.is_empty(), "{during:?} {err}");
    assert!(after.is_empty(), "{after:?} {err_after}");
}

/// A program a rule hides by its executable, gone before the watcher's
/// next batch judged it: what it ran was judged at its exec, while it
/// ran, so the rule hides it. One the rule does not take is reported.
fn a_program_hidden_by_its_executable_is_judged_while_it_runs() {
    let setup = Setup::new("watch-attest-at-exec");
    setup.rules(
        "[[rule]]\nname = \"quick-sleeps\"\nmatch = { exe = \"/usr/bin/sleep\", cmdline = '^sleep 0\\.0523$' }\naction = \"hide\"\n",
    );
    // A batch a second apart: both are long gone when it comes (50 ms is
    // still well past the eBPF side's 10 ms of gathering events).
    let watcher = setup.watch_every("1", &[]);
    for seconds in ["0.0523", "0.0524"] {
        let status = as_nobody(&["sleep", seconds]).status().unwrap();
        assert!(status.success());
    }
    let hidden = setup.wait_for("sleep 0.0523", "exit");
    setup.wait_for("sleep 0.0524", "exit");
    let (_, out, err) = run(setup.psdiff().args(["show-extra", "--consumer", "a"]));
    stop(watcher);
    assert!(
        hidden
            .iter()
            .all(|e| e["verdict"] == "hidden" && e["rule"] == "quick-sleeps"),
        "{hidden:?}"
    );
    assert!(!out.contains("sleep 0.0523"), "{out}\n{err}");
    assert!(out.contains("sleep 0.0524 (transient: "), "{out}\n{err}");
}

/// A program a rule hides by its executable that is gone before the
/// watcher could look at /proc at all (a user manager's `systemctl` at a
/// logout lives well under a millisecond): the eBPF side's word on it at
/// exec (its file, user namespace and loader variables) is what it is
/// judged by. Run from a user namespace of its own or with LD_PRELOAD,
/// also one put past the 32 KiB of environment the kernel side reads, it
/// is reported.
fn a_program_gone_at_once_is_judged_as_the_kernel_started_it() {
    let setup = Setup::new("watch-kernel-attests");
    setup.rules(
        "[[rule]]\nname = \"instant\"\nmatch = { exe = \"/usr/bin/true\", cmdline = '^/usr/bin/true zz-instant-' }\naction = \"hide\"\n",
    );
    let watcher = setup.watch_every("1", &["--backend", "ebpf"]);
    let padding = format!("ZZ_PAD={}", "x".repeat(40_000));
    let runs: [&[&str]; 4] = [
        &["/usr/bin/true", "zz-instant-plain"],
        &[
            "env",
            "LD_PRELOAD=/nonexistent/zz.so",
            "/usr/bin/true",
            "zz-instant-preload",
        ],
        &["unshare", "--user", "/usr/bin/true", "zz-instant-userns"],
        &[
            "env",
            &padding,
            "LD_PRELOAD=/nonexistent/zz.so",
            "/usr/bin/true",
            "zz-instant-deep",
        ],
    ];
    for argv in runs {
        let out = as_nobody(argv).output().unwrap();
        assert!(out.status.success(), "{argv:?}: {out:?}");
    }
    let judged = |marker: &str| {
        let events = setup.wait_for(&format!("/usr/bin/true {marker}"), "exit");
        let start = events
            .iter()
            .find(|e| e["kind"] == "start")
            .unwrap()
            .clone();
        (start["verdict"].clone(), start["rule"].clone())
    };
    let plain = judged("zz-instant-plain");
    let preload = judged("zz-instant-preload");
    let userns = judged("zz-instant-userns");
    let deep = judged("zz-instant-deep");
    stop(watcher);
    assert_eq!(plain, ("hidden".into(), "instant".into()));
    assert_eq!(preload.0, "extra");
    assert_eq!(userns.0, "extra");
    assert_eq!(deep.0, "extra");
}

/// Programs that each run another before the watcher's next batch (a
/// launcher, `env`; a shell that runs a miner's second stage by `exec`
/// after a while): every image is journaled as itself, and a program
/// that ran for longer than a launcher does is a transient of its own.
fn a_program_that_runs_another_before_a_batch_is_journaled() {
    let setup = Setup::new("watch-exec-chain");
    let watcher = setup.watch_every("5", &[]);
    let (_, _, err) = run(setup.psdiff().args(["show-extra", "--consumer", "a"]));
    assert!(err.is_empty(), "{err}");
    let launched = as_nobody(&["env", "/usr/bin/true", "zz-launched"])
        .status()
        .unwrap();
    assert!(launched.success());
    let script = "sleep 1.2; exec /usr/bin/true zz-second-stage";
    let staged = as_nobody(&["sh", "-c", script]).status().unwrap();
    assert!(staged.success());
    let launcher = setup.wait_for("env /usr/bin/true zz-launched", "exec");
    setup.wait_for("/usr/bin/true zz-launched", "exit");
    let first_stage = setup.wait_for("sh -c sleep 1.2; exec", "exec");
    setup.wait_for("/usr/bin/true zz-second-stage", "exit");
    let (_, out, err) = run(setup.psdiff().args(["show-extra", "--consumer", "a"]));
    stop(watcher);
    for events in [&launcher, &first_stage] {
        let start = events.iter().find(|e| e["kind"] == "start").unwrap();
        assert_eq!(start["user"], "nobody", "{events:?}");
        assert_eq!(start["verdict"], "extra", "{events:?}");
    }
    assert_eq!(launcher[0]["exe"], "/usr/bin/env", "{launcher:?}");
    assert_eq!(first_stage[0]["exe"], "/usr/bin/dash", "{first_stage:?}");
    // The launcher is not reported apart from what it ran; the first
    // stage, which ran on, is.
    assert!(!out.contains("env /usr/bin/true"), "{out}\n{err}");
    assert!(!out.contains("setpriv"), "{out}\n{err}");
    for line in [
        "/usr/bin/true zz-launched (transient: ",
        "sh -c sleep 1.2; exec /usr/bin/true zz-second-stage (transient: ",
        "/usr/bin/true zz-second-stage (transient: ",
    ] {
        assert!(out.contains(line), "{line} not in:\n{out}\n{err}");
    }
}

/// A forked child that names itself and then starts a job, as cron's
/// `CRON` does, all gone before the watcher's next batch: the job is
/// judged by the title its parent had when it started it (the kernel
/// side sends it with the fork; over the connector, /proc is read then).
fn a_title_set_after_fork_judges_the_children() {
    let setup = Setup::new("watch-title-after-fork");
    setup.rules(
        "[[rule]]\nname = \"zz-jobs\"\nmatch = { parent = { cmdline_prefix = [\"zz-job-runner\"] } }\naction = \"hide\"\n",
    );
    for (backend, seconds) in [("connector", "0.3141"), ("ebpf", "0.3142")] {
        let watcher = setup.watch_every("2", &["--backend", backend]);
        let script = format!(
            r#"if (fork() == 0) {{ $0 = "zz-job-runner"; system("sleep", "{seconds}"); exit 0 }} wait"#
        );
        let status = as_nobody(&["perl", "-e", &script]).status().unwrap();
        assert!(status.success());
        let job = setup.wait_for(&format!("sleep {seconds}"), "exit");
        stop(watcher);
        let start = job.iter().find(|e| e["kind"] == "start").unwrap();
        assert_eq!(start["verdict"], "hidden", "{backend}: {job:?}");
        assert_eq!(start["rule"], "zz-jobs", "{backend}: {job:?}");
    }
}

/// A program that works for most of a second and then runs one a rule
/// hides (a miner that ends each run in `exec` of something harmless):
/// it is no launcher that what it ran speaks for, so it is reported;
/// `env` launching an extra is not reported apart from it, nor `setpriv`
/// (a quick launcher) apart from what the rule hides.
fn a_launcher_of_a_hidden_program_is_reported() {
    let setup = Setup::new("watch-launcher");
    setup.rules(
        "[[rule]]\nname = \"harmless\"\nmatch = { exe = \"/usr/bin/sleep\", cmdline = '^sleep 0\\.0434$' }\naction = \"hide\"\n",
    );
    let watcher = setup.watch(&[]);
    let (_, _, err) = run(setup.psdiff().args(["show-extra", "--consumer", "a"]));
    assert!(err.is_empty(), "{err}");
    let script = r#"my $t = time + 0.6; 1 while time < $t; exec "sleep", "0.0434""#;
    let miner = as_nobody(&["perl", "-MTime::HiRes=time", "-e", script])
        .status()
        .unwrap();
    assert!(miner.success());
    let launched = as_nobody(&["env", "/usr/bin/true", "zz-launched-extra"])
        .status()
        .unwrap();
    assert!(launched.success());
    let hidden = setup.wait_for("sleep 0.0434", "exit");
    setup.wait_for("/usr/bin/true zz-launched-extra", "exit");
    let (_, out, err) = run(setup.psdiff().args(["show-extra", "--consumer", "a"]));
    stop(watcher);
    assert_eq!(hidden[0]["rule"], "harmless", "{hidden:?}");
    assert!(out.contains("perl -MTime::HiRes=time -e "), "{out}\n{err}");
    assert!(!out.contains("sleep 0.0434"), "{out}\n{err}");
    assert!(!out.contains("env /usr/bin/true"), "{out}\n{err}");
    assert!(!out.contains("setpriv"), "{out}\n{err}");
    assert!(
        out.contains("/usr/bin/true zz-launched-extra (transient: "),
        "{out}\n{err}"
    );
}
