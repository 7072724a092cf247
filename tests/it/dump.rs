//! Golden tests: whole dumps of the synthetic /proc trees in tests/fixtures.

use crate::common::*;

fn golden(tree: &str, config: Option<&str>, expected: &str) {
    let mut cmd = on_fixture(tree);
    if let Some(config) = config {
        cmd.arg("--config").arg(fixtures().join(config));
    }
    let out = cmd.arg("dump").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let want = std::fs::read_to_string(fixtures().join(expected)).unwrap();
    let got = stdout(&out);
    assert!(
        got == want,
        "dump of {tree} differs from {expected}:\n--- got\n{got}--- want\n{want}"
    );
}

fn every_default_rule() {
    golden("defaults", None, "defaults.expected");
}

fn a_host_without_systemd() {
    golden("sysv", None, "sysv.expected");
}

fn edge_cases_with_defaults() {
    golden("edge", None, "edge.expected");
}

fn user_rules_of_every_kind_come_before_the_defaults() {
    golden("edge", Some("rules.toml"), "rules.expected");
}

fn defaults_false_starts_empty() {
    golden("edge", Some("no-defaults.toml"), "no-defaults.expected");
}

fn json_dump_matches_the_text_dump() {
    let text = stdout(&on_fixture("defaults").arg("dump").output().unwrap());
    let out = on_fixture("defaults")
        .args(["dump", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = json.as_array().unwrap();
    let lines: Vec<&str> = entries
        .iter()
        .map(|e| e["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, text.lines().collect::<Vec<_>>());
    let cgi = entries.iter().find(|e| e["pid"] == 364).unwrap();
    assert_eq!(cgi["ppid"], 362);
    assert_eq!(cgi["depth"], 4);
    assert_eq!(cgi["user"], "www-data");
    assert_eq!(cgi["cmdline"], "/usr/lib/cgi-bin/report.cgi");
    assert_eq!(entries[0]["cmdline"], "root");
}

fn drop_ins_are_read_in_name_order_after_the_main_file() {
    let dir = TempDir::new("dropins");
    let main = dir.path().join("psdiff.toml");
    std::fs::write(&main, "").unwrap();
    std::fs::create_dir(dir.path().join("psdiff.d")).unwrap();
    // 10-* renames first; 20-* then sees the renamed cmdline.
    std::fs::write(
        dir.path().join("psdiff.d/20-second.toml"),
        "[[rule]]\nname = \"b\"\nmatch = { cmdline = '^renamed$' }\naction = \"rename\"\nto = \"renamed twice\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("psdiff.d/10-first.toml"),
        "[[rule]]\nname = \"a\"\nmatch = { pid = 130 }\naction = \"rename\"\nto = \"renamed\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("psdiff.d/ignored.conf"),
        "not toml at all [",
    )
    .unwrap();
    let out = on_fixture("edge")
        .arg("--config")
        .arg(&main)
        .arg("dump")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\n    renamed twice  {user=root}\n"),
        "{}",
        stdout(&out)
    );
}

fn psdiff_config_env_is_used() {
    let out = on_fixture("edge")
        .env("PSDIFF_CONFIG", fixtures().join("no-defaults.toml"))
        .arg("dump")
        .output()
        .unwrap();
    assert!(stdout(&out).contains("[kthreadd]"));
}

crate::tests![
    every_default_rule,
    a_host_without_systemd,
    edge_cases_with_defaults,
    user_rules_of_every_kind_come_before_the_defaults,
    defaults_false_starts_empty,
    json_dump_matches_the_text_dump,
    drop_ins_are_read_in_name_order_after_the_main_file,
    psdiff_config_env_is_used,
];
