//! `psdiff files` on real processes, with real fanotify and process
//! events: needs root (CAP_SYS_ADMIN). Compared with Debian's fatrace.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TempDir, need_root, psdiff, skip};
use serde_json::Value;

/// Why fanotify cannot be tested here, if it cannot.
fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("psdiff files needs root (CAP_SYS_ADMIN) for fanotify".into());
    }
    let out = psdiff().args(["files", "--", "true"]).output().unwrap();
    if !out.status.success() {
        return Some(format!(
            "fanotify is not usable here: {}",
            crate::common::stderr(&out).trim()
        ));
    }
    if Command::new("cc").arg("--version").output().is_err() {
        return Some("no C compiler for the opener helper".into());
    }
    None
}

fn need_fanotify() {
    if let Some(why) = unavailable() {
        skip(why);
    }
}

fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn pid_in(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn a_scripted_tree_shows_each_open_and_close_under_the_filter() {
    need_fanotify();
    let tmp = TempDir::new("files-tree");
    let watched = tmp.path().join("watched");
    std::fs::create_dir(&watched).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(watched.join(name), name).unwrap();
    }
    let outside = tmp.path().join("outside");
    std::fs::write(&outside, "x").unwrap();
    // The shell reads a, holds b open 300 ms, starts a child shell (born
    // after the watch began) whose cat reads c, reads a file outside the
    // filter, and exits with 7.
    let script = r#"
        echo $$ > "$T/sh.pid"
        cat "$W/a" > /dev/null
        exec 3< "$W/b"
        sleep 0.3
        exec 3<&-
        sh -c 'echo $$ > "$T/inner.pid"; cat "$W/c" > /dev/null'
        cat "$T/outside" > /dev/null
        exit 7
    "#;
    let out = psdiff()
        .args(["files", "--format", "json", "--path"])
        .arg(&watched)
        .args(["--", "sh", "-c", script])
        .env("W", &watched)
        .env("T", tmp.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        crate::common::stderr(&out)
    );
    let sh = pid_in(tmp.path(), "sh.pid");
    let inner = pid_in(tmp.path(), "inner.pid");
    let events = events(&out.stdout);
    let path = |name: &str| watched.join(name).to_str().unwrap().to_string();
    let find = |kind: &str, name: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["path"] == path(name).as_str())
            .collect()
    };
    for e in &events {
        for key in ["event", "time", "pid", "ppid", "tid", "comm", "path"] {
            assert!(e.get(key).is_some(), "{key} missing from {e}");
        }
        assert!(
            e["path"]
                .as_str()
                .unwrap()
                .starts_with(watched.to_str().unwrap()),
            "{e}"
        );
    }
    // a: read by a cat, the script's child.
    let (open_a, close_a) = (find("open", "a"), find("close", "a"));
    assert_eq!((open_a.len(), close_a.len()), (1, 1), "{events:?}");
    assert_eq!(open_a[0]["ppid"], sh);
    assert_eq!(open_a[0]["comm"], "cat");
    assert_eq!(open_a[0]["pid"], close_a[0]["pid"]);
    // b: held open by the shell itself for about 300 ms.
    let (open_b, close_b) = (find("open", "b"), find("close", "b"));
    assert_eq!((open_b.len(), close_b.len()), (1, 1), "{events:?}");
    assert_eq!(open_b[0]["pid"], sh);
    let held = close_b[0]["duration_ms"].as_f64().unwrap();
    assert!((250.0..3000.0).contains(&held), "b held {held} ms");
    // c: by the grandchild, below the inner shell.
    let open_c = find("open", "c");
    assert_eq!(open_c.len(), 1, "{events:?}");
    assert_eq!(open_c[0]["ppid"], inner);
    assert_eq!(find("close", "c").len(), 1);
    assert_eq!(events.len(), 6, "{events:?}");
    let err = crate::common::stderr(&out);
    assert!(err.contains("6 events; 0 queue overflows"), "{err}");
}

/// Starts `psdiff files ARGS` in the background and waits until it says
/// it is watching.
fn start_watch(args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = psdiff()
        .args(["files", "--format", "json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once it says what it watches (a mount it could not watch may
    // be said before).
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said
        .lines()
        .any(|l| l.starts_with("psdiff files: watching "))
    {
        let read = err.read_line(&mut said).unwrap();
        assert!(read > 0, "psdiff files ended before watching: {said}");
    }
    let rest = std::thread::spawn(move || {
        let mut text = said;
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
        text
    });
    (child, rest)
}

fn stop(child: Child) -> Vec<u8> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    out.stdout
}

/// Waits until `file` exists.
fn wait_for(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn a_pid_is_followed_into_children_started_later_and_depth_limits_it() {
    need_fanotify();
    let tmp = TempDir::new("files-pid");
    let dir = tmp.path();
    std::fs::write(dir.join("data"), "d").unwrap();
    // Waits for `go`, then reads data itself, in a child, and in a
    // grandchild; then writes `done`.
    let script = r#"
        while [ ! -e "$D/go" ]; do sleep 0.02; done
        read line < "$D/data"
        cat "$D/data" > /dev/null
        sh -c 'cat "$D/data" > /dev/null'
        touch "$D/done"
        sleep 30
    "#;
    for (depth, readers) in [(None, 3), (Some("1"), 2), (Some("0"), 1)] {
        let _ = std::fs::remove_file(dir.join("go"));
        let _ = std::fs::remove_file(dir.join("done"));
        let mut target = Command::new("sh")
            .args(["-c", script])
            .env("D", dir)
            .spawn()
            .unwrap();
        let pid = target.id().to_string();
        let data = dir.join("data");
        let mut args = vec!["--pid", &pid, "--path", data.to_str().unwrap()];
        if let Some(depth) = depth {
            args.extend(["--depth", depth]);
        }
        let (watch, stderr) = start_watch(&args);
        std::fs::write(dir.join("go"), "").unwrap();
        wait_for(&dir.join("done"));
        std::thread::sleep(Duration::from_millis(300));
        let events = events(&stop(watch));
        let stderr = stderr.join().unwrap();
        target.kill().unwrap();
        target.wait().unwrap();
        let openers: std::collections::HashSet<u64> = events
            .iter()
            .filter(|e| e["event"] == "open")
            .map(|e| e["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(openers.len(), readers, "depth {depth:?}: {events:?}");
        assert!(openers.contains(&(target.id() as u64)));
        assert!(stderr.contains("processes followed"), "{stderr}");
    }
}

fn a_name_follows_processes_that_start_later() {
    need_fanotify();
    let tmp = TempDir::new("files-name");
    let dir = tmp.path();
    std::fs::write(dir.join("data"), "d").unwrap();
    let cat = Command::new("sh")
        .args(["-c", "command -v cat"])
        .output()
        .unwrap();
    let renamed = dir.join("psdiffreader");
    std::fs::copy(String::from_utf8_lossy(&cat.stdout).trim(), &renamed).unwrap();
    let data = dir.join("data");
    let (watch, _) = start_watch(&["--name", "psdiffreader", "--path", data.to_str().unwrap()]);
    let status = Command::new(&renamed)
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // Another program reading the same file is not watched.
    Command::new("cat")
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let events = events(&stop(watch));
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["comm"] == "psdiffreader"),
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|e| e["event"] == "open").count(), 1);
}

/// The opener helper, built in `tmp`, and `tmp/w` holding its files
/// f0 .. f(count-1), made before any watch starts.
fn opener_and_files(tmp: &TempDir, count: u32) -> (PathBuf, PathBuf) {
    let opener = crate::common::build_helper(tmp.path(), "opener");
    let dir = tmp.path().join("w");
    std::fs::create_dir(&dir).unwrap();
    let made = Command::new(&opener)
        .arg(&dir)
        .args(["0", &count.to_string()])
        .status();
    assert!(made.unwrap().success());
    (opener, dir)
}

/// The same workload seen by psdiff and by Debian's fatrace: the same
/// opens and closes of the same files by the same processes. Each file is
/// opened once: the kernel merges a process's events on one file while they
/// wait to be read, differently for each reader.
fn agrees_with_fatrace() {
    need_fanotify();
    if Command::new("fatrace").arg("--help").output().is_err() {
        skip("fatrace (Debian package fatrace)");
    }
    let tmp = TempDir::new("files-fatrace");
    let (opener, dir) = opener_and_files(&tmp, 500);
    let trace = tmp.path().join("fatrace.out");
    let mut fatrace = Command::new("fatrace")
        .args(["-f", "OC", "-o"])
        .arg(&trace)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = psdiff()
        .args(["files", "--format", "json", "--path"])
        .arg(&dir)
        .arg("--")
        .arg(&opener)
        .arg(&dir)
        .args(["500", "500"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fatrace.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    fatrace.wait().unwrap();

    // (pid, path) → [opens, closes], from each.
    let mut ours: HashMap<(u64, String), [u64; 2]> = HashMap::new();
    for e in events(&out.stdout) {
        let key = (
            e["pid"].as_u64().unwrap(),
            e["path"].as_str().unwrap().to_string(),
        );
        ours.entry(key).or_default()[usize::from(e["event"] == "close")] += 1;
    }
    let prefix = format!("{}/", dir.display());
    let mut theirs: HashMap<(u64, String), [u64; 2]> = HashMap::new();
    for line in std::fs::read_to_string(&trace).unwrap().lines() {
        // comm(pid): FLAGS /path
        let Some((who, rest)) = line.split_once("): ") else {
            continue;
        };
        let Some((flags, path)) = rest.split_once(' ') else {
            continue;
        };
        let path = path.trim_start();
        if !path.starts_with(&prefix) {
            continue;
        }
        let pid: u64 = who.rsplit('(').next().unwrap().parse().unwrap();
        let counts = theirs.entry((pid, path.to_string())).or_default();
        counts[0] += u64::from(flags.contains('O'));
        counts[1] += u64::from(flags.contains('C'));
    }
    let total =
        |m: &HashMap<(u64, String), [u64; 2]>, i: usize| -> u64 { m.values().map(|c| c[i]).sum() };
    assert_eq!(
        (total(&theirs, 0), total(&theirs, 1)),
        (500, 500),
        "fatrace"
    );
    assert_eq!((total(&ours, 0), total(&ours, 1)), (500, 500), "psdiff");
    let differing: Vec<_> = ours
        .iter()
        .filter(|(k, v)| theirs.get(k) != Some(v))
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "psdiff and fatrace differ: {differing:?}"
    );
}

fn an_overflow_is_reported() {
    need_fanotify();
    let tmp = TempDir::new("files-overflow");
    let (opener, dir) = opener_and_files(&tmp, 40_000);
    let script = r#"while [ ! -e "$D/../go" ]; do sleep 0.02; done; "$OPENER" "$D" 40000 40000"#;
    let target = Command::new("sh")
        .args(["-c", script])
        .env("D", &dir)
        .env("OPENER", &opener)
        .spawn()
        .unwrap();
    let pid = target.id().to_string();
    let (watch, stderr) = start_watch(&["--pid", &pid, "--path", dir.to_str().unwrap()]);
    // psdiff stops reading while 80,000 events come: past the kernel's
    // queue of 16,384.
    let watcher = nix::unistd::Pid::from_raw(watch.id() as i32);
    nix::sys::signal::kill(watcher, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::fs::write(tmp.path().join("go"), "").unwrap();
    let status = {
        let mut t = target;
        t.wait().unwrap()
    };
    assert!(status.success());
    nix::sys::signal::kill(watcher, nix::sys::signal::Signal::SIGCONT).unwrap();
    // Every watched process has ended, so psdiff ends by itself.
    let out = watch.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = events(&out.stdout);
    assert!(
        events.iter().any(|e| e["event"] == "overflow"),
        "no overflow event"
    );
    assert!(
        stderr.contains("queue overflowed: events were lost"),
        "{stderr}"
    );
    assert!(!stderr.contains(" 0 queue overflows"), "{stderr}");
}

/// A process that holds 5,000 files open, with --max-open-files 1000:
/// psdiff remembers only 1,000 of them, so the closes of the others (when
/// the process exits) come without a duration, and its memory stays
/// bounded. (The default is 65,536; this sandbox allows a process 20,000
/// descriptors.)
fn open_file_bookkeeping_is_bounded() {
    need_fanotify();
    let tmp = TempDir::new("files-bounded");
    let (opener, dir) = opener_and_files(&tmp, 5000);
    let script = r#"ulimit -n 6000 && exec "$OPENER" "$D" 5000 5000 hold"#;
    let out = psdiff()
        .args([
            "files",
            "--max-open-files",
            "1000",
            "--format",
            "json",
            "--path",
        ])
        .arg(&dir)
        .args(["--", "sh", "-c", script])
        .env("OPENER", &opener)
        .env("D", &dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let events = events(&out.stdout);
    let err = crate::common::stderr(&out);
    assert!(!events.iter().any(|e| e["event"] == "overflow"), "{err}");
    let closes: Vec<&Value> = events.iter().filter(|e| e["event"] == "close").collect();
    assert_eq!(closes.len(), 5_000);
    let untimed = closes
        .iter()
        .filter(|e| e.get("duration_ms").is_none())
        .count();
    assert_eq!(untimed, 4_000, "closes whose open was forgotten");
    assert!(err.contains("; 0 files still open"), "{err}");
}

fn without_cap_sys_admin_it_says_so_and_exits_2() {
    need_root();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_psdiff"))
        .args(["files", "--", "true"])
        .output();
    let Ok(out) = out else {
        skip("setpriv (util-linux)");
    };
    assert_eq!(out.status.code(), Some(2));
    let err = crate::common::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
}

crate::tests![
    a_scripted_tree_shows_each_open_and_close_under_the_filter,
    a_pid_is_followed_into_children_started_later_and_depth_limits_it,
    a_name_follows_processes_that_start_later,
    agrees_with_fatrace,
    an_overflow_is_reported,
    open_file_bookkeeping_is_bounded,
    without_cap_sys_admin_it_says_so_and_exits_2,
];
