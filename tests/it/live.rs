//! Real processes with crafted argv, in a PID namespace of their own so the
//! tree is exactly what the test made; the whole dump is compared.
//! Without root or namespaces these tests say why and return.

use crate::common::*;

/// Starts the processes, then dumps until the tree is settled (a readiness
/// wait, not a timing assertion) and prints the last dump.
const SCRIPT: &str = r#"
set -u
(exec -a 'daemon-one --flag' "$SLEEPER") &
(exec -a /usr/sbin/fake-daemon "$SLEEPER" '' 'x y' $'\xff\xfe' $'tab\there' '' '') &
setpriv --reuid=65534 --regid=65534 --clear-groups bash -c 'exec -a worker-nobody "$SLEEPER"' &
setpriv --reuid=4242 --regid=4242 --clear-groups bash -c 'exec -a worker-nouser "$SLEEPER"' &
bash -c '(exec -a child "$SLEEPER") & (exec -a child "$SLEEPER") & exec -a parent "$SLEEPER"' &
bash -c '(sleep 0.2; exec true) & exec -a zombie-parent "$SLEEPER"' &
bash -c '(exec -a "sh -c job" "$SLEEPER") & exec -a "/usr/sbin/CRON -f" "$SLEEPER"' &
for ((i = 0; i < 200; i++)); do
    "$PSDIFF" --config "$WORK/hide-self.toml" dump > "$WORK/dump" 2>&1
    cmp -s "$WORK/dump" "$WORK/expected" && break
    sleep 0.05
done
cat "$WORK/dump"
"#;

/// What the dump must be: argv[0]s that name programs other than the one
/// running say which runs (SLEEPER: the helper's path); a parent titled
/// `CRON` hides nothing; a zombie is no line of its own.
const EXPECTED: &str = "root  {user=root}
  INIT  {user=root}
    /usr/sbin/CRON -f (running SLEEPER)  {user=root}
      sh -c job  {user=root}
    /usr/sbin/fake-daemon  x y \u{fffd}\u{fffd} tab?here (running SLEEPER)  {user=root}
    daemon-one --flag  {user=root}
    parent  {user=root}
      child  {user=root}
      child  {user=root}
    worker-nobody  {user=nobody}
    worker-nouser  {user=4242}
    zombie-parent  {user=root}
";

fn live_tree_in_a_pid_namespace() {
    need_live();
    let work = TempDir::new("live");
    let sleeper = build_sleeper(work.path());
    let expected = EXPECTED.replace("SLEEPER", sleeper.to_str().unwrap());
    std::fs::write(work.path().join("expected"), &expected).unwrap();
    std::fs::write(
        work.path().join("hide-self.toml"),
        "[[rule]]\nname = \"psdiff itself\"\nmatch = { comm = \"psdiff\" }\naction = \"hide\"\n",
    )
    .unwrap();
    let out = run_in_pid_namespace(SCRIPT, work.path(), &sleeper);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

fn explain_on_live_processes() {
    need_live();
    let work = TempDir::new("live-explain");
    let sleeper = build_sleeper(work.path());
    let script = r#"
(exec -a "/usr/sbin/CRON -f" "$SLEEPER") &
pid=$!
for ((i = 0; i < 200; i++)); do
    grep -q CRON /proc/$pid/cmdline 2>/dev/null && break
    sleep 0.05
done
"$PSDIFF" explain "$pid"
"#;
    let out = run_in_pid_namespace(script, work.path(), &sleeper);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("pid 2 (ppid 1, user root, comm sleeper)\n  cmdline  /usr/sbin/CRON -f\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  disguised argv[0] names another program than the one running\n"),
        "{text}"
    );
    assert!(
        text.contains("rewrite  by rule \"disguised\" (rewrite, <built-in etc/psdiff.toml>:"),
        "{text}"
    );
    assert!(
        text.contains("\n  shown    no visibility rule applies\n"),
        "{text}"
    );
}

/// argv[0] is checked against the program that runs by file, in the
/// process's own root: a link to the program, or the program's own path,
/// is no disguise; another program's path, or a path to nothing, is.
fn disguises_are_told_from_links_and_real_paths() {
    need_live();
    let work = TempDir::new("live-disguise");
    let sleeper = build_sleeper(work.path());
    std::os::unix::fs::symlink(&sleeper, work.path().join("link")).unwrap();
    let script = r#"
set -u
"$SLEEPER" own-path &
(exec -a "$WORK/link" "$SLEEPER" by-link) &
(exec -a /usr/bin/env "$SLEEPER" another-program) &
(exec -a /usr/sbin/no-such-daemon "$SLEEPER" nothing) &
(exec -a relative-name "$SLEEPER" relative) &
sleep 0.3
# psdiff is pid 1 here (bash runs its last command in its place), so
# these hang under the root line.
"$PSDIFF" dump
"#;
    let out = run_in_pid_namespace(script, work.path(), &sleeper);
    let text = String::from_utf8_lossy(&out.stdout).replace(sleeper.to_str().unwrap(), "SLEEPER");
    let text = text.replace(work.path().to_str().unwrap(), "WORK");
    for line in [
        "  SLEEPER own-path  {user=root}\n",
        "  WORK/link by-link  {user=root}\n",
        "  /usr/bin/env another-program (running SLEEPER)  {user=root}\n",
        "  /usr/sbin/no-such-daemon nothing (running SLEEPER)  {user=root}\n",
        "  relative-name relative  {user=root}\n",
    ] {
        assert!(text.contains(line), "{line}not in\n{text}");
    }
}

/// write; quiet show; a daemon killed for good is missing; one restarted
/// inside the retry window is not; a new daemon is extra.
const RETRY_SCRIPT: &str = r#"
set -u
export PSDIFF_DB="$WORK/psdiff.db"
started() { # wait until pid $1 runs argv[0] $2
    for ((i = 0; i < 400; i++)); do
        [ "$(tr '\0' ' ' < /proc/$1/cmdline 2>/dev/null)" = "$2 " ] && return 0
        sleep 0.01
    done
    echo "never started: $2" >&2
}
(exec -a daemon-a "$SLEEPER") & A=$!
(exec -a daemon-b "$SLEEPER") & B=$!
started $A daemon-a; started $B daemon-b
"$PSDIFF" write
"$PSDIFF" show --retry; echo "quiet show: $?"

kill -9 $B; wait $B 2>/dev/null
"$PSDIFF" show-missing --retry; echo "dead daemon: $?"
(exec -a daemon-b "$SLEEPER") & B=$!
started $B daemon-b

kill -9 $A; wait $A 2>/dev/null
(sleep 0.3; exec -a daemon-a "$SLEEPER") &
"$PSDIFF" show-missing --retry; echo "restarted within the window: $?"

(exec -a daemon-c "$SLEEPER") & C=$!
started $C daemon-c
"$PSDIFF" show-extra --retry; echo "new daemon: $?"
"$PSDIFF" show-missing --retry; echo "all back: $?"
"#;

fn show_retry_with_real_daemons() {
    need_live();
    let work = TempDir::new("live-retry");
    let sleeper = build_sleeper(work.path());
    let out = run_in_pid_namespace(RETRY_SCRIPT, work.path(), &sleeper);
    let db = work.path().join("psdiff.db");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "Wrote to {}\nquiet show: 0\n\
             -     daemon-b  {{user=root}}\ndead daemon: 1\n\
             restarted within the window: 0\n\
             +     daemon-c  {{user=root}}\nnew daemon: 1\n\
             all back: 0\n",
            db.display()
        ),
        "stderr: {}",
        stderr(&out)
    );
}

crate::tests![
    live_tree_in_a_pid_namespace,
    explain_on_live_processes,
    disguises_are_told_from_links_and_real_paths,
    show_retry_with_real_daemons,
];
