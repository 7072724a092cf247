//! `psdiff explain`: which rule decided each process, and every rewrite.

use crate::common::*;

fn explain(pids: &[&str]) -> (i32, String, String) {
    let out = on_fixture("defaults")
        .arg("explain")
        .args(pids)
        .output()
        .unwrap();
    (out.status.code().unwrap(), stdout(&out), stderr(&out))
}

/// The line of the `[[rule]]` header of the built-in rule `name`.
fn header_line_of(name: &str) -> usize {
    let defaults =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/psdiff.toml")).unwrap();
    let lines: Vec<&str> = defaults.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("name = \"{name}\""))
        .unwrap();
    lines[..at].iter().rposition(|l| *l == "[[rule]]").unwrap() + 1
}

fn hidden_by_an_ancestor_names_the_rule_its_origin_and_the_ancestor() {
    let (code, out, _) = explain(&["4002"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(
            "pid 4002 (ppid 4001, user alice, comm sh)\n  cmdline  /bin/sh -c backup.sh\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\n  unit     cron.service (slice system.slice)\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  started  10s ago\n  hidden   by rule \"cron-user-jobs\" (hide-tree, <built-in etc/psdiff.toml>:{}:1) on younger_than, parent: the process matches",
            header_line_of("cron-user-jobs")
        )),
        "{out}"
    );
    // Root's job is hidden however long it runs; mallory's miner, which
    // her crontab started 16 minutes ago, is shown.
    let (_, out, _) = explain(&["4004", "4007"]);
    assert!(
        out.contains(&format!(
            "hidden   by rule \"cron-jobs\" (hide-tree, <built-in etc/psdiff.toml>:{}:1) on user, parent: the process matches",
            header_line_of("cron-jobs")
        )),
        "{out}"
    );
    assert!(
        out.contains("pid 4007 (ppid 4006, user mallory, comm x)\n")
            && out.contains("  started  15m 49s ago\n  shown    no visibility rule applies\n"),
        "{out}"
    );
}

/// explain says what the cgroup says: the unit, the session and whether
/// it is open, the user manager, the container; and which identity key
/// decided.
fn identity_from_the_cgroup() {
    let (_, out, _) = explain(&["5004", "700", "602", "431", "580"]);
    for expected in [
        "pid 5004 (ppid 5003, user alice, comm screen)\n  cmdline  SCREEN -S work\n  exe      /usr/bin/screen\n  cgroup   /user.slice/user-1000.slice/session-4.scope\n  unit     session-4.scope (slice user-1000.slice)\n  session  4 (active)\n",
        "hidden   by rule \"open-logins\" (hide-tree, <built-in etc/psdiff.toml>:",
        "pid 700 (ppid 1, user mallory, comm bash)\n  cmdline  CRON\n  exe      /usr/bin/bash\n  cgroup   /user.slice/user-1001.slice/session-7.scope\n  unit     session-7.scope (slice user-1001.slice)\n  session  7 (closing)\n  started  16m 30s ago\n  shown    no visibility rule applies\n",
        "  unit     user@1002.service (slice user-1002.slice)\n  user unit run-r42.service\n  login    user manager of uid 1002 (user lingering)\n  started  16m 30s ago\n  shown    no visibility rule applies\n",
        "  container docker web 3f1d2c4b5a6978800112233445566778899aabbccddeeff00112233445566778\n",
        "  unit     logrotate.service (slice system.slice, started by a timer)\n",
        "hidden   by rule \"timer-jobs\" (hide-tree, <built-in etc/psdiff.toml>:",
        ") on timer_job: the process matches\n",
    ] {
        assert!(out.contains(expected), "{expected}\nnot in\n{out}");
    }
}

fn rewrites_show_before_and_after_and_the_line() {
    let (_, out, _) = explain(&["420", "1"]);
    assert!(
        out.contains(
            "rewrite  by rule \"zabbix-server-titles\" (rewrite, <built-in etc/psdiff.toml>:"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "before: /usr/sbin/zabbix_proxy: poller #1 [got 0 values in 0.000011 sec, idle 5 sec]\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("after:  /usr/sbin/zabbix_proxy: poller #1\n"),
        "{out}"
    );
    assert!(
        out.contains("  line     \"    /usr/sbin/zabbix_proxy: poller #1  {user=zabbix}\""),
        "{out}"
    );
    assert!(out.contains("rewrite  by rule \"init\" (rename,"), "{out}");
    assert!(out.contains("line     \"  INIT  {user=root}\""), "{out}");
}

fn once_names_the_sibling_that_is_shown() {
    let (_, out, _) = explain(&["361", "362", "363"]);
    assert!(
        out.contains("shown    by rule \"worker-pools\" (once,"),
        "{out}"
    );
    assert_eq!(
        out.matches("same parent, user and cmdline as pid 361, which is shown")
            .count(),
        2,
        "{out}"
    );
}

fn shown_without_a_rule_and_kernel_threads() {
    let (_, out, _) = explain(&["540", "3"]);
    assert!(out.contains("pid 540 (ppid 1, user root, comm rsyslogd)\n  cmdline  /usr/sbin/rsyslogd -n -iNONE\n  exe      /usr/sbin/rsyslogd\n  cgroup   /system.slice/rsyslog.service\n  unit     rsyslog.service (slice system.slice)\n  started  16m 30s ago\n  shown    no visibility rule applies\n"), "{out}");
    assert!(out.contains(&format!("pid 3 (ppid 2, user root, comm rcu_gp)\n  cmdline  [rcu_gp]\n  started  16m 39s ago\n  hidden   by rule \"kernel-threads\" (hide-tree, <built-in etc/psdiff.toml>:{}:1) on kernel_thread: the process matches\n", header_line_of("kernel-threads"))), "{out}");
}

fn every_process_without_arguments_and_unknown_pid_is_reported() {
    let (code, out, _) = explain(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.matches("\npid ").count() + 1,
        std::fs::read_dir(fixtures().join("defaults/proc"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse::<u32>()
                .is_ok())
            .count()
    );
    let (code, out, err) = explain(&["540", "77777"]);
    assert_eq!(code, 1);
    assert!(out.contains("pid 540"));
    assert!(err.contains("no process with pid 77777"), "{err}");
}

fn exe_is_shown_for_writing_exe_rules() {
    let out = on_fixture("edge").args(["explain", "10"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(
            "\n  cmdline  /usr/bin/supervisor\n  exe      /usr/bin/supervisor (deleted)\n"
        ),
        "{text}"
    );
}

crate::tests![
    hidden_by_an_ancestor_names_the_rule_its_origin_and_the_ancestor,
    identity_from_the_cgroup,
    rewrites_show_before_and_after_and_the_line,
    once_names_the_sibling_that_is_shown,
    shown_without_a_rule_and_kernel_threads,
    every_process_without_arguments_and_unknown_pid_is_reported,
    exe_is_shown_for_writing_exe_rules,
];
