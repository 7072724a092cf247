//! write, show and friends, manual and diff over synthetic trees: exact
//! output and exit codes.

use crate::common::*;
use std::path::Path;

const RSYSLOG: &str = "    /usr/sbin/rsyslogd -n -iNONE  {user=root}";

/// A baseline written from the `defaults` fixture, and a copy of that tree
/// in which rsyslogd died and a netcat appeared.
fn changed_tree(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let db = dir.join("psdiff.db");
    let proc = copy_fixture("defaults", dir);
    let (code, out, _) = run(on_tree(&proc, &db).arg("write"));
    assert_eq!(
        (code, out.as_str()),
        (0, format!("Wrote to {}\n", db.display()).as_str())
    );
    std::fs::remove_dir_all(proc.join("540")).unwrap();
    let nc = proc.join("800");
    std::fs::create_dir(&nc).unwrap();
    for file in ["stat", "status"] {
        let text = std::fs::read_to_string(proc.join("400").join(file)).unwrap();
        std::fs::write(
            nc.join(file),
            text.replace("400 (astcanary)", "800 (nc)")
                .replace("Pid:\t400", "Pid:\t800"),
        )
        .unwrap();
    }
    std::fs::write(nc.join("cmdline"), b"nc\x00-l\x004444\x00").unwrap();
    (db, proc)
}

fn write_then_quiet_show_then_no_changes() {
    let dir = TempDir::new("write");
    let db = dir.path().join("psdiff.db");
    let proc = fixtures().join("defaults/proc");
    let (code, out, _) = run(on_tree(&proc, &db).arg("write"));
    assert_eq!((code, out), (0, format!("Wrote to {}\n", db.display())));
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        std::fs::read_to_string(fixtures().join("defaults.expected")).unwrap()
    );
    let (code, out, _) = run(on_tree(&proc, &db).arg("write"));
    assert_eq!(
        (code, out),
        (0, format!("No changes to {}\n", db.display()))
    );
    for cmd in ["show", "show-missing", "show-extra"] {
        let (code, out, err) = run(on_tree(&proc, &db).args([cmd, "--retry"]));
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""), "{cmd}");
    }
    assert!(
        !dir.path().join("psdiff.old").exists(),
        "nothing to keep on the first write"
    );
}

fn show_missing_and_extra_lines_and_exit_codes() {
    let dir = TempDir::new("show");
    let (db, proc) = changed_tree(dir.path());
    let nc = "    nc -l 4444  {user=root}";
    let (code, out, _) = run(on_tree(&proc, &db).arg("show"));
    assert_eq!((code, out), (1, format!("- {RSYSLOG}\n+ {nc}\n")));
    let (code, out, _) = run(on_tree(&proc, &db).arg("show-missing"));
    assert_eq!((code, out), (1, format!("- {RSYSLOG}\n")));
    let (code, out, _) = run(on_tree(&proc, &db).args(["show", "--missing"]));
    assert_eq!((code, out), (1, format!("- {RSYSLOG}\n")));
    let (code, out, _) = run(on_tree(&proc, &db).arg("show-extra"));
    assert_eq!((code, out), (1, format!("+ {nc}\n")));
    let (code, out, _) = run(on_tree(&proc, &db).args(["show", "--missing", "--extra"]));
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 2);
}

fn json_and_nagios_formats() {
    let dir = TempDir::new("formats");
    let (db, proc) = changed_tree(dir.path());
    let (code, out, _) = run(on_tree(&proc, &db).args(["show", "--format", "json"]));
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["missing"][0]["cmdline"], "/usr/sbin/rsyslogd -n -iNONE");
    assert_eq!(v["missing"][0]["depth"], 2);
    assert_eq!(v["missing"][0]["user"], "root");
    assert_eq!(v["missing"][0]["line"], RSYSLOG);
    assert_eq!(v["extra"][0]["cmdline"], "nc -l 4444");

    let (code, out, _) = run(on_tree(&proc, &db).args(["show", "--format", "nagios"]));
    assert_eq!(code, 2);
    assert_eq!(
        out,
        format!(
            "PSDIFF CRITICAL - 1 missing, 1 extra | missing=1;;1;0; extra=1;1;;0;\n- {RSYSLOG}\n+     nc -l 4444  {{user=root}}\n"
        )
    );
    let (code, out, _) = run(on_tree(&proc, &db).args(["show-extra", "--format", "nagios"]));
    assert_eq!(
        (code, out.lines().next().unwrap()),
        (1, "PSDIFF WARNING - 1 extra | extra=1;1;;0;")
    );
    let (code, out, _) =
        run(on_tree(&fixtures().join("defaults/proc"), &db).args(["show", "--format", "nagios"]));
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "PSDIFF OK - 0 missing, 0 extra | missing=0;;1;0; extra=0;1;;0;\n"
        )
    );
    // Any error is UNKNOWN, exit 3, on stdout where Nagios reads it.
    let (code, out, _) =
        run(on_tree(Path::new("/nonexistent"), &db).args(["show", "--format", "nagios"]));
    assert_eq!(code, 3);
    assert!(
        out.starts_with("PSDIFF UNKNOWN - cannot read /nonexistent"),
        "{out}"
    );
}

/// Without a baseline (or with an empty one) nothing can be missing: text
/// keeps the Python psdiff's behaviour (what Zabbix triggers rely on) and
/// says why on stderr; Nagios is UNKNOWN; JSON says so and exits 3;
/// Prometheus keeps `psdiff_baseline_present 0`.
fn no_baseline() {
    let dir = TempDir::new("nobase");
    let db = dir.path().join("psdiff.db");
    let proc = fixtures().join("defaults/proc");
    let expected = std::fs::read_to_string(fixtures().join("defaults.expected")).unwrap();
    let all_extra: String = expected.lines().map(|l| format!("+ {l}\n")).collect();
    for (blind, why) in [(None, "no baseline at"), (Some(""), "the baseline")] {
        if let Some(text) = blind {
            std::fs::write(&db, text).unwrap();
        }
        let hint = format!(
            "psdiff: {why} {}",
            if blind.is_some() {
                format!("{} is empty", db.display())
            } else {
                db.display().to_string()
            }
        );
        let (code, out, err) = run(on_tree(&proc, &db).args(["show-missing", "--retry"]));
        assert_eq!((code, out.as_str()), (0, ""));
        assert!(err.starts_with(&hint), "{err}");
        assert!(
            err.contains("nothing can be missing; run `psdiff write`"),
            "{err}"
        );
        for cmd in ["show", "show-extra"] {
            let (code, out, err) = run(on_tree(&proc, &db).arg(cmd));
            assert_eq!((code, &out), (1, &all_extra), "{cmd}");
            assert!(err.starts_with(&hint), "{err}");
        }
        let (code, out, _) = run(on_tree(&proc, &db).args(["show-missing", "--format", "nagios"]));
        assert_eq!(code, 3, "{out}");
        assert!(
            out.starts_with(&format!("PSDIFF UNKNOWN - {}", &hint[8..])),
            "{out}"
        );
        let (code, out, _) = run(on_tree(&proc, &db).args(["show-missing", "--format", "json"]));
        assert_eq!(code, 3, "{out}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let state = if blind.is_some() { "empty" } else { "absent" };
        assert_eq!(json["baseline"], state, "{out}");
        assert_eq!(json["missing"], serde_json::json!([]));
        let (_, out, _) = run(on_tree(&proc, &db).args(["show-missing", "--format", "prometheus"]));
        assert!(out.contains("\npsdiff_baseline_present 0\n"), "{out}");
        assert!(out.contains("\npsdiff_up 1\n"), "{out}");
    }
}

fn write_keeps_the_previous_baseline_as_old_and_verbose_shows_the_diff() {
    let dir = TempDir::new("old");
    let (db, proc) = changed_tree(dir.path());
    let first = std::fs::read_to_string(&db).unwrap();
    let (code, out, _) = run(on_tree(&proc, &db).args(["write", "-v"]));
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "- {RSYSLOG}\n+     nc -l 4444  {{user=root}}\nWrote to {}\n",
            db.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("psdiff.old")).unwrap(),
        first
    );
    let (code, _, _) = run(on_tree(&proc, &db).arg("show"));
    assert_eq!(code, 0);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn a_baseline_from_the_python_psdiff_is_read_as_it_is() {
    let dir = TempDir::new("python");
    let db = dir.path().join("psdiff.db");
    // As the Python tool writes it: ps cut the user name, non-ASCII bytes
    // became U+FFFD.
    let mut text = std::fs::read_to_string(fixtures().join("defaults.expected")).unwrap();
    text = text.replace("{user=postgres}", "{user=postgre+}");
    std::fs::write(&db, &text).unwrap();
    let (code, out, _) = run(on_tree(&fixtures().join("defaults/proc"), &db).arg("show"));
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "-     /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main  {user=postgre+}\n\
         +     /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main  {user=postgres}\n"
    );
}

fn a_damaged_baseline_is_an_error_with_its_line_and_write_keeps_it_as_old() {
    let proc = fixtures().join("defaults/proc");
    for (content, why) in [
        (
            &b"root  {user=root}\n  INIT  {user=root}\n    caf\xe9  {user=root}\n"[..],
            ":3: is not UTF-8",
        ),
        (
            b"root  {user=root}\n\x00\x01\x02binary\n",
            ":2: holds NUL bytes",
        ),
        (
            b"root  {user=root}\n  INIT\n",
            ":2: \"  INIT\" is not a psdiff line",
        ),
    ] {
        let dir = TempDir::new("damaged");
        let db = dir.path().join("psdiff.db");
        std::fs::write(&db, content).unwrap();
        let (code, out, err) = run(on_tree(&proc, &db).arg("show"));
        assert_eq!((code, out.as_str()), (3, ""), "{err}");
        assert!(
            err.starts_with(&format!("psdiff: {}{why}", db.display())),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
        let (code, out, _) = run(on_tree(&proc, &db).args(["show-missing", "--format", "nagios"]));
        assert_eq!(code, 3);
        assert!(out.starts_with("PSDIFF UNKNOWN - "), "{out}");

        let (code, out, err) = run(on_tree(&proc, &db).arg("write"));
        assert_eq!(code, 0, "{err}");
        assert!(
            err.starts_with("psdiff: warning: "),
            "never silently: {err}"
        );
        assert!(out.starts_with("Wrote to"));
        assert_eq!(
            std::fs::read(dir.path().join("psdiff.old")).unwrap(),
            content
        );
    }
}

fn manual_add_inserts_in_sorted_place_and_remove_takes_every_copy() {
    let dir = TempDir::new("manual");
    let db = dir.path().join("psdiff.db");
    let proc = fixtures().join("defaults/proc");
    run(on_tree(&proc, &db).arg("write"));
    let before = std::fs::read_to_string(&db).unwrap();

    let (code, out, _) = run(on_tree(&proc, &db).args([
        "manual",
        "add",
        "www-data",
        "/usr/sbin/nginx -g daemon off;",
    ]));
    let line = "    /usr/sbin/nginx -g daemon off;  {user=www-data}";
    assert_eq!(
        (code, out),
        (0, format!("Added to {}: {line}\n", db.display()))
    );
    let after = std::fs::read_to_string(&db).unwrap();
    let want = before.replace(
        "    /usr/sbin/rsyslogd -n -iNONE  {user=root}\n",
        &format!("{line}\n    /usr/sbin/rsyslogd -n -iNONE  {{user=root}}\n"),
    );
    assert_eq!(after, want);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("psdiff.old")).unwrap(),
        before
    );
    // The daemon is not running: now it is missing.
    let (code, out, _) = run(on_tree(&proc, &db).arg("show-missing"));
    assert_eq!((code, out), (1, format!("- {line}\n")));

    // Two identical workers are two lines (a baseline may hold copies;
    // `manual add` adds none): remove takes both.
    std::fs::write(
        &db,
        after.replace(&format!("{line}\n"), &format!("{line}\n{line}\n")),
    )
    .unwrap();
    let (code, out, _) = run(on_tree(&proc, &db).args([
        "manual",
        "remove",
        "www-data",
        "/usr/sbin/nginx -g daemon off;",
    ]));
    assert_eq!(
        (code, out),
        (
            0,
            format!("Removed from {}: {line} (2 times)\n", db.display())
        )
    );
    assert_eq!(std::fs::read_to_string(&db).unwrap(), before);

    // Removing what is not there: exit 1, file unchanged.
    let (code, out, err) = run(on_tree(&proc, &db).args([
        "manual",
        "remove",
        "www-data",
        "/usr/sbin/nginx -g daemon off;",
    ]));
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("nothing removed"), "{err}");
    assert_eq!(std::fs::read_to_string(&db).unwrap(), before);

    // Removing a line takes the lines under it.
    let (code, out, _) = run(on_tree(&proc, &db).args([
        "manual",
        "remove",
        "root",
        "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
    ]));
    assert_eq!(code, 0);
    assert!(out.ends_with(" and 1 line(s) under it\n"), "{out}");
    assert!(!std::fs::read_to_string(&db).unwrap().contains("php-fpm"));
}

fn manual_without_baseline_or_with_bad_fields() {
    let dir = TempDir::new("manual-none");
    let db = dir.path().join("psdiff.db");
    let proc = fixtures().join("defaults/proc");
    let (code, out, err) = run(on_tree(&proc, &db).args(["manual", "add", "root", "/usr/sbin/x"]));
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("no baseline at"), "{err}");
    assert!(!db.exists());
    run(on_tree(&proc, &db).arg("write"));
    let (code, _, err) = run(on_tree(&proc, &db).args(["manual", "add", "root", "two\nlines"]));
    assert_eq!(code, 2);
    assert!(err.contains("control characters"), "{err}");
}

fn diff_of_two_files() {
    let dir = TempDir::new("diff");
    let (db, proc) = changed_tree(dir.path());
    let now = dir.path().join("now.txt");
    let (_, text, _) = run(on_tree(&proc, &db).arg("dump"));
    std::fs::write(&now, text).unwrap();
    let (code, out, _) = run(psdiff().arg("diff").arg(&db).arg(&now));
    assert_eq!(
        (code, out),
        (1, format!("- {RSYSLOG}\n+     nc -l 4444  {{user=root}}\n"))
    );
    let (code, out, _) = run(psdiff().arg("diff").arg(&db).arg(&db));
    assert_eq!((code, out.as_str()), (0, ""));
}

/// A baseline keeps the rules it was written with (psdiff.rules): when
/// the rules change, `show` compares with the baseline's own rules, so
/// only what really changed is reported, and one line says the rules
/// changed and what to do. `write -v` shows what they change and takes
/// them.
fn changed_rules_are_one_note_not_a_flood() {
    let dir = TempDir::new("rules-changed");
    let db = dir.path().join("psdiff.db");
    let config = dir.path().join("psdiff.toml");
    std::fs::write(&config, "").unwrap();
    let proc = copy_fixture("defaults", dir.path());
    let show = |args: &[&str]| run(on_tree(&proc, &db).env("PSDIFF_CONFIG", &config).args(args));
    assert_eq!(show(&["write"]).0, 0);
    let recorded = std::fs::read_to_string(dir.path().join("psdiff.rules")).unwrap();
    assert!(
        recorded.contains("<built-in etc/psdiff.toml>"),
        "{recorded}"
    );
    // New rules print every apache line differently; rsyslogd dies.
    std::fs::write(
        &config,
        "[[rule]]\nname = \"apache-title\"\nmatch = { exe = \"/usr/sbin/apache2\" }\naction = \"rename\"\nto = \"apache\"\n",
    )
    .unwrap();
    std::fs::remove_dir_all(proc.join("540")).unwrap();
    let (code, out, err) = show(&["show"]);
    assert_eq!((code, out.as_str()), (1, format!("- {RSYSLOG}\n").as_str()));
    assert_eq!(
        err,
        "psdiff: the rules changed since the baseline was written: 6 line(s) would read differently; compared with the baseline's own rules; run `psdiff write -v` to review and take the new ones\n"
    );
    let (code, out, _) = show(&["show", "--format", "nagios"]);
    assert_eq!(code, 2);
    assert!(
        out.starts_with("PSDIFF CRITICAL - 1 missing, 0 extra, the rules changed since"),
        "{out}"
    );
    let (_, out, _) = show(&["show", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        json["rules_note"]
            .as_str()
            .unwrap()
            .starts_with("the rules changed")
    );
    let (_, out, _) = show(&["show", "--format", "prometheus"]);
    assert!(out.contains("\npsdiff_rules_changed 1\n"), "{out}");
    // write -v shows what the new rules change, and takes them.
    let (code, out, _) = show(&["write", "-v"]);
    assert_eq!(code, 0);
    assert!(out.contains("+     apache  {user=root}\n"), "{out}");
    assert!(
        out.contains("-     /usr/sbin/apache2 -k start  {user=root}\n"),
        "{out}"
    );
    let (code, out, err) = show(&["show"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));

    // A baseline from the Python psdiff has no record: when it differs,
    // one line says the rules may be why.
    std::fs::remove_file(dir.path().join("psdiff.rules")).unwrap();
    let (code, _, err) = show(&["show"]);
    assert_eq!(code, 0);
    assert_eq!(err, "", "no difference, nothing to say");
    let mut text = std::fs::read_to_string(&db).unwrap();
    text.push_str("    /usr/sbin/ntpd -p /run/ntpd.pid  {user=ntp}\n");
    std::fs::write(&db, text).unwrap();
    let (code, out, err) = show(&["show"]);
    assert_eq!(
        (code, out.as_str()),
        (1, "-     /usr/sbin/ntpd -p /run/ntpd.pid  {user=ntp}\n")
    );
    assert!(
        err.starts_with("psdiff: the baseline has no record of the rules it was written with"),
        "{err}"
    );
}

fn manual_add_refuses_unknown_users_and_duplicates() {
    let dir = TempDir::new("manual-refuse");
    let db = dir.path().join("psdiff.db");
    let proc = fixtures().join("defaults/proc");
    assert_eq!(run(on_tree(&proc, &db).arg("write")).0, 0);
    let before = std::fs::read(&db).unwrap();
    let (code, _, err) =
        run(on_tree(&proc, &db).args(["manual", "add", "nosuchuser", "/usr/sbin/x"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("there is no user \"nosuchuser\" on this host"),
        "{err}"
    );
    let (code, _, _) = run(on_tree(&proc, &db).args(["manual", "add", "alice", "/usr/sbin/x"]));
    assert_eq!(code, 0);
    let once = std::fs::read(&db).unwrap();
    let (code, _, err) = run(on_tree(&proc, &db).args(["manual", "add", "alice", "/usr/sbin/x"]));
    assert_eq!(code, 1);
    assert!(err.contains("under INIT already; nothing added"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        once,
        "the baseline is unchanged"
    );
    assert_ne!(once, before);
}

/// `psdiff diff` says what is wrong with a file that is not a dump, and
/// nothing about writing or keeping a baseline.
fn diff_of_a_file_that_is_not_a_dump() {
    let dir = TempDir::new("diff-not-dump");
    let dump = dir.path().join("dump");
    std::fs::write(&dump, "root  {user=root}\n").unwrap();
    let (code, _, err) = run(psdiff().arg("diff").arg(&dump).arg("/etc/passwd"));
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("psdiff: /etc/passwd:1: "), "{err}");
    assert!(err.contains("give two psdiff dumps or baselines"), "{err}");
    assert!(
        !err.contains("psdiff write") && !err.contains(".old"),
        "{err}"
    );
}

/// A write that waits for another writer says so.
fn a_write_waiting_for_the_lock_says_so() {
    let dir = TempDir::new("lock-wait");
    let db = dir.path().join("psdiff.db");
    let lock = dir.path().join("psdiff.db.lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "1.5"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out, err) = run(on_tree(&fixtures().join("defaults/proc"), &db).arg("write"));
    holder.wait().unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Wrote to "), "{out}");
    assert!(
        err.contains("another psdiff is writing") && err.contains("waiting up to 10 s"),
        "{err}"
    );
}

crate::tests![
    write_then_quiet_show_then_no_changes,
    show_missing_and_extra_lines_and_exit_codes,
    json_and_nagios_formats,
    no_baseline,
    write_keeps_the_previous_baseline_as_old_and_verbose_shows_the_diff,
    a_baseline_from_the_python_psdiff_is_read_as_it_is,
    a_damaged_baseline_is_an_error_with_its_line_and_write_keeps_it_as_old,
    manual_add_inserts_in_sorted_place_and_remove_takes_every_copy,
    manual_without_baseline_or_with_bad_fields,
    diff_of_two_files,
    changed_rules_are_one_note_not_a_flood,
    manual_add_refuses_unknown_users_and_duplicates,
    diff_of_a_file_that_is_not_a_dump,
    a_write_waiting_for_the_lock_says_so,
];
