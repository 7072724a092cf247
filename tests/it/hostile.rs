//! Processes shaped to break psdiff, in a PID namespace: odd comm and argv,
//! huge and many arguments, a 10,000-deep chain, a retitled process, and a
//! fork storm while dump and show run 500 times. Output must stay one line
//! per process, parse back, and never report a steady daemon missing.

use crate::common::*;
use psdiff::render;

/// At most `n` characters of `text`, for failure messages.
fn head(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| l.chars().take(120).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
        .chars()
        .take(n)
        .collect()
}

fn setup(test: &str) -> Option<(TempDir, std::path::PathBuf)> {
    need_live();
    let work = TempDir::new(test);
    let sleeper = build_sleeper(work.path());
    build_helper(work.path(), "hostile");
    Some((work, sleeper))
}

/// Every line parses back, with the depth and user a dump gives it.
fn assert_well_formed(dump: &str) {
    for (n, line) in dump.lines().enumerate() {
        let parsed = render::parse_line(line)
            .unwrap_or_else(|| panic!("line {} does not parse: {line:?}", n + 1));
        assert!(
            !parsed.cmdline.chars().any(char::is_control),
            "line {}: {line:?}",
            n + 1
        );
    }
}

fn odd_names_and_arguments_stay_one_line_each() {
    let _turn = whole_machine();
    let Some((work, sleeper)) = setup("hostile-names") else {
        return;
    };
    let script = r#"
odd="$WORK/bin/x) (y"$'\n'"z w"
mkdir -p "$WORK/bin" && cp "$SLEEPER" "$odd"
"$odd" & (exec -a $'evil\n  INIT  {user=root}' "$SLEEPER" $'a\tb' $'\e[2J' $'\xff\xfe' '') &
big=$(head -c 100000 /dev/zero | tr '\0' a)
(exec -a huge "$SLEEPER" "$big") &
(exec -a many "$SLEEPER" $(seq 1 5000)) &
"$WORK/hostile" retitle "retitled: now something else" padding padding padding &
sleep 0.5
"$PSDIFF" dump > "$WORK/dump"; echo "exit $?"
"#;
    let out = run_in_pid_namespace(script, work.path(), &sleeper);
    assert_eq!(stdout(&out), "exit 0\n", "{}", stderr(&out));
    let dump = std::fs::read_to_string(work.path().join("dump")).unwrap();
    assert_well_formed(&dump);
    // root, INIT and the 5 processes; nothing spilled onto extra lines.
    assert_eq!(dump.lines().count(), 7, "{}", head(&dump, 3000));
    assert!(
        dump.contains("/bin/x) (y?z w  {user=root}\n"),
        "{}",
        head(&dump, 3000)
    );
    assert!(
        dump.contains("\n    evil?  INIT  {user=root} a?b ?[2J \u{fffd}\u{fffd}  {user=root}\n"),
        "{}",
        head(&dump, 3000)
    );
    let huge = dump
        .lines()
        .find(|l| l.trim_start().starts_with("huge "))
        .unwrap();
    assert_eq!(
        huge.len(),
        4 + "huge ".len() + 100_000 + "  {user=root}".len()
    );
    let many = dump
        .lines()
        .find(|l| l.trim_start().starts_with("many "))
        .unwrap();
    assert!(
        many.ends_with(" 4999 5000  {user=root}"),
        "{}",
        &many[many.len() - 40..]
    );
    assert!(
        dump.contains("\n    retitled: now something else  {user=root}\n"),
        "{}",
        head(&dump, 3000)
    );
}

/// Writes a proc tree of `depth` processes, each the parent of the next.
fn chain_tree(dir: &std::path::Path, depth: u32) -> std::path::PathBuf {
    let root = dir.join("proc");
    for pid in 1..=depth {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let stat = format!(
            "{pid} (chain) S {} {pid} {pid} 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 {pid} 100 10 0\n",
            pid - 1
        );
        std::fs::write(d.join("stat"), stat).unwrap();
        std::fs::write(d.join("status"), "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n").unwrap();
        std::fs::write(d.join("cmdline"), b"/usr/bin/chain\0--level\0").unwrap();
    }
    root
}

fn a_ten_thousand_deep_chain_does_not_overflow() {
    // Synthetic, so that the chain can be cut in the middle below; the
    // live chain is the next test.
    let dir = TempDir::new("chain");
    let proc = chain_tree(dir.path(), 10_000);
    let db = dir.path().join("db");
    let (code, dump, err) = run(on_tree(&proc, &db).arg("dump"));
    assert_eq!(code, 0, "{err}");
    assert_well_formed(&dump);
    assert_eq!(
        dump.lines().count(),
        10_001,
        "the root line and 10,000 processes"
    );
    let deepest = render::parse_line(dump.lines().last().unwrap()).unwrap();
    assert_eq!(deepest.depth, 10_000);
    assert_eq!(run(on_tree(&proc, &db).arg("write")).0, 0);
    let (code, out, _) = run(on_tree(&proc, &db).arg("show"));
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(run(on_tree(&proc, &db).args(["explain", "10000"])).0, 0);
    // Cut the chain in the middle: everything below is missing.
    std::fs::remove_dir_all(proc.join("5000")).unwrap();
    let (code, out, _) = run(on_tree(&proc, &db).args(["show-missing", "--format", "json"]));
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["missing"].as_array().unwrap().len(),
        5001,
        "pid 5000 and the 5,000 under it"
    );
    // As text, what a monitoring agent carries (lines 10 KB deep in
    // indent each), and a last line that counts the rest.
    let (code, out, _) = run(on_tree(&proc, &db).arg("show-missing"));
    assert_eq!(code, 1);
    assert!(out.len() < 512 * 1024, "{}", out.len());
    let last = out.lines().last().unwrap();
    let shown = out.lines().count() - 1;
    assert_eq!(
        last,
        format!(
            "... {} more changes not printed: more than a monitoring agent carries; `--format json` prints them all",
            5001 - shown
        )
    );
}

/// The same depth, live: 10,000 real processes, each the parent of the
/// next, in a PID namespace.
fn a_live_ten_thousand_deep_chain_is_dumped_whole() {
    let _turn = whole_machine();
    let Some((work, sleeper)) = setup("hostile-live-chain") else {
        return;
    };
    let script = r#"
export PSDIFF_DB="$WORK/db"
"$WORK/hostile" chain 10000 &
# bash, the 10,000 links, and ls: all there.
for i in $(seq 1 600); do
    [ "$(ls /proc | grep -c '^[0-9]')" -ge 10002 ] && break
    sleep 0.2
done
echo ==dump==
"$PSDIFF" dump; echo "exit=$?"
echo ==write==
"$PSDIFF" write >/dev/null; echo "exit=$?"
echo ==show==
"$PSDIFF" show --retry; echo "exit=$?"
"#;
    let out = run_in_pid_namespace(script, work.path(), &sleeper);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dump = section(&stdout, "dump");
    assert!(
        dump.ends_with("exit=0\n"),
        "{}",
        crate::common::stderr(&out)
    );
    let lines: Vec<&str> = dump.lines().filter(|l| !l.starts_with("exit=")).collect();
    assert_well_formed(&lines.join("\n"));
    let chain: Vec<usize> = lines
        .iter()
        .filter_map(|l| render::parse_line(l))
        .filter(|p| p.cmdline.contains("hostile chain"))
        .map(|p| p.depth)
        .collect();
    assert_eq!(chain.len(), 10_000, "every link of the chain is a line");
    // Each one a level below the one before: bash (INIT) is depth 1.
    assert!(chain.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(chain.last(), Some(&10_001));
    assert_eq!(section(&stdout, "write").trim(), "exit=0");
    assert_eq!(section(&stdout, "show").trim(), "exit=0");
}

fn a_fork_storm_causes_no_error_and_no_false_missing() {
    let _turn = whole_machine();
    let Some((work, sleeper)) = setup("hostile-storm") else {
        return;
    };
    let script = r#"
export PSDIFF_DB="$WORK/db"
for i in 1 2 3 4 5; do (exec -a "steady-daemon-$i" "$SLEEPER") & done
sleep 0.3
"$PSDIFF" write > /dev/null || echo "write failed"
"$WORK/hostile" fork-storm & "$WORK/hostile" fork-storm &
sleep 0.2
errors=0; missing=0; bad=0
for ((i = 0; i < 500; i++)); do
    "$PSDIFF" dump > "$WORK/dump" 2> "$WORK/err" || errors=$((errors + 1))
    grep -qv '  {user=[^}]*}$' "$WORK/dump" && bad=$((bad + 1))
    "$PSDIFF" show-missing --retry > "$WORK/missing" 2>> "$WORK/err"
    case $? in 0) ;; 1) missing=$((missing + 1)); cat "$WORK/missing" >&2 ;; *) errors=$((errors + 1)) ;; esac
done
echo "errors=$errors missing=$missing malformed=$bad"
"#;
    let out = run_in_pid_namespace(script, work.path(), &sleeper);
    assert_eq!(
        stdout(&out),
        "errors=0 missing=0 malformed=0\n",
        "{}",
        stderr(&out)
    );
}

crate::tests![
    odd_names_and_arguments_stay_one_line_each,
    a_ten_thousand_deep_chain_does_not_overflow,
    a_live_ten_thousand_deep_chain_is_dumped_whole,
    a_fork_storm_causes_no_error_and_no_false_missing,
];
