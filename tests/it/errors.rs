//! Bad input: one stderr line that says what, where and what to do; the
//! documented exit code; nothing on stdout.

use crate::common::*;

fn fails_with(cmd: &mut std::process::Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("psdiff: "), "{err}");
    err
}

fn with_config(text: &str) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("config");
    let path = dir.path().join("psdiff.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn unknown_key_names_file_line_column_rule_and_suggestion() {
    let (_dir, path) =
        with_config("[[rule]]\nname = \"cron\"\nmatch = { comm = \"cron\" }\nacton = \"hide\"\n");
    for args in [&["dump"][..], &["config", "check"], &["explain"]] {
        let err = fails_with(on_fixture("edge").arg("--config").arg(&path).args(args), 2);
        let want = format!(
            "{}:4:1: rule \"cron\": unknown key `acton`; did you mean `action`?",
            path.display()
        );
        assert!(err.contains(&want), "{err}");
    }
}

fn malformed_toml() {
    let (_dir, path) = with_config("[[rule]\nname = 1\n");
    let err = fails_with(on_fixture("edge").arg("--config").arg(&path).arg("dump"), 2);
    assert!(err.contains(&format!("{}:1:", path.display())), "{err}");
}

fn bad_regex_and_missing_match() {
    let (_dir, path) = with_config(
        "[[rule]]\nname = \"re\"\nmatch = { cmdline = \"(unclosed\" }\naction = \"hide\"\n",
    );
    let err = fails_with(on_fixture("edge").arg("--config").arg(&path).arg("dump"), 2);
    assert!(
        err.contains(":3:21: rule \"re\": match.cmdline is not a valid regex"),
        "{err}"
    );

    // A bad glob is refused where it stands, not taken as a plain name.
    let (_dir, path) = with_config(
        "[[rule]]\nname = \"gl\"\nmatch = { unit = \"getty@[.service\" }\naction = \"hide\"\n",
    );
    let err = fails_with(on_fixture("edge").arg("--config").arg(&path).arg("dump"), 2);
    assert!(
        err.contains(
            ":3:18: rule \"gl\": \"getty@[.service\" is no glob: unclosed character class"
        ),
        "{err}"
    );

    let (_dir, path) = with_config("[[rule]]\nname = \"nomatch\"\naction = \"hide-tree\"\n");
    let err = fails_with(on_fixture("edge").arg("--config").arg(&path).arg("dump"), 2);
    assert!(
        err.contains(":1:1: rule \"nomatch\": action `hide-tree` needs a `match`"),
        "{err}"
    );
}

fn bad_drop_in_is_named() {
    let (dir, path) = with_config("");
    std::fs::create_dir(dir.path().join("psdiff.d")).unwrap();
    let bad = dir.path().join("psdiff.d/50-local.toml");
    std::fs::write(
        &bad,
        "[[rule]]\nname = \"x\"\nmatch = { pid = 1 }\naction = \"hidden\"\n",
    )
    .unwrap();
    let err = fails_with(on_fixture("edge").arg("--config").arg(&path).arg("dump"), 2);
    assert!(
        err.contains(&format!(
            "{}:4:10: rule \"x\": unknown value `hidden`; did you mean `hide`?",
            bad.display()
        )),
        "{err}"
    );
}

fn missing_config_file() {
    let err = fails_with(
        on_fixture("edge").args(["--config", "/nonexistent/psdiff.toml", "dump"]),
        2,
    );
    assert!(
        err.contains("/nonexistent/psdiff.toml: cannot read"),
        "{err}"
    );
}

fn proc_root_that_is_not_a_proc_tree() {
    let dir = TempDir::new("notproc");
    std::fs::write(dir.path().join("hello"), "x").unwrap();
    std::fs::create_dir(dir.path().join("123")).unwrap();
    let err = fails_with(psdiff().arg("--proc-root").arg(dir.path()).arg("dump"), 3);
    assert!(err.contains("is not a proc tree"), "{err}");
    let err = fails_with(psdiff().args(["--proc-root", "/nonexistent", "dump"]), 3);
    assert!(err.contains("cannot read /nonexistent"), "{err}");
}

fn an_unreadable_entry_does_not_fail_the_snapshot() {
    let dir = TempDir::new("partial");
    let src = fixtures().join("edge/proc");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let proc = dir.path().join("proc");
    std::fs::write(proc.join("23/stat"), "garbage").unwrap();
    std::fs::remove_file(proc.join("22/status")).unwrap();
    std::fs::create_dir(proc.join("99999")).unwrap(); // vanished mid-read
    let out = psdiff()
        .arg("--proc-root")
        .arg(&proc)
        .arg("--passwd")
        .arg(fixtures().join("passwd"))
        .arg("dump")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("/usr/bin/trail") && !text.contains("/usr/bin/empties"),
        "{text}"
    );
    assert!(text.contains("/usr/bin/young"), "{text}");
}

fn config_check_and_defaults() {
    let out = on_fixture("edge")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("OK: "), "{}", stdout(&out));
    let out = psdiff().args(["config", "defaults"]).output().unwrap();
    assert_eq!(
        stdout(&out),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/psdiff.toml")).unwrap()
    );
}

fn usage_error_is_exit_2() {
    let out = psdiff()
        .arg("dump")
        .arg("--format")
        .arg("yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

crate::tests![
    unknown_key_names_file_line_column_rule_and_suggestion,
    malformed_toml,
    bad_regex_and_missing_match,
    bad_drop_in_is_named,
    missing_config_file,
    proc_root_that_is_not_a_proc_tree,
    an_unreadable_entry_does_not_fail_the_snapshot,
    config_check_and_defaults,
    usage_error_is_exit_2,
];
