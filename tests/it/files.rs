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
    scripted_tree("fanotify");
}

fn a_scripted_tree_shows_each_open_and_close_under_the_filter_ebpf() {
    scripted_tree("ebpf");
}

fn need(backend: &str) {
    match backend {
        "ebpf" => need_ebpf(),
        _ => need_fanotify(),
    }
}

/// Why the eBPF backend cannot be tested here, if it cannot.
fn need_ebpf() {
    need_root();
    let out = psdiff()
        .args(["files", "--backend", "ebpf", "--", "true"])
        .output()
        .unwrap();
    if !out.status.success() {
        skip(format!(
            "the eBPF backend cannot run here: {}",
            crate::common::stderr(&out).trim()
        ));
    }
}

/// The same tree through either backend: what each reports of it.
fn scripted_tree(backend: &str) {
    need(backend);
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
        .args(["files", "--backend", backend, "--format", "json", "--path"])
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
    let ebpf = backend == "ebpf";
    // a: read by a cat, the script's child.
    let (open_a, close_a) = (find("open", "a"), find("close", "a"));
    assert_eq!((open_a.len(), close_a.len()), (1, 1), "{events:?}");
    assert_eq!(open_a[0]["ppid"], sh);
    assert_eq!(open_a[0]["comm"], "cat");
    assert_eq!(open_a[0]["pid"], close_a[0]["pid"]);
    // b: held open by the shell itself for about 300 ms (with eBPF, the
    // shell's copy of it to descriptor 3 is seen too, and its close).
    let open_b = find("open", "b");
    // (A child that inherited it and exited closed its copy too.)
    let close_b: Vec<_> = find("close", "b")
        .into_iter()
        .filter(|c| c.get("closed_by").is_none())
        .collect();
    assert_eq!(open_b.len(), 1, "{events:?}");
    assert_eq!(
        close_b.len(),
        if ebpf { find("dup", "b").len() + 1 } else { 1 }
    );
    assert_eq!(open_b[0]["pid"], sh);
    let held = close_b
        .iter()
        .map(|c| c["duration_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!((250.0..3000.0).contains(&held), "b held {held} ms");
    // c: by the grandchild, below the inner shell.
    let open_c = find("open", "c");
    assert_eq!(open_c.len(), 1, "{events:?}");
    assert_eq!(open_c[0]["ppid"], inner);
    assert_eq!(find("close", "c").len(), 1);
    let err = crate::common::stderr(&out);
    if ebpf {
        for e in &events {
            assert_eq!(e["tid"], e["pid"], "single-threaded: {e}");
            assert!(e["fd"].as_i64().unwrap() >= 0, "{e}");
        }
        assert_eq!(open_a[0]["fd"], close_a[0]["fd"]);
        assert_eq!(open_a[0]["flags"], "O_RDONLY");
        assert!(
            err.contains("backend ebpf;") && err.contains(" 0 events lost"),
            "{err}"
        );
    } else {
        assert_eq!(events.len(), 6, "{events:?}");
        assert!(err.contains("6 events; 0 queue overflows"), "{err}");
    }
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
        .any(|l| l.starts_with("psdiff files: ") && l.contains("; watching "))
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
    pid_and_depth("fanotify");
}

fn a_pid_is_followed_into_children_started_later_and_depth_limits_it_ebpf() {
    pid_and_depth("ebpf");
}

fn pid_and_depth(backend: &str) {
    need(backend);
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
        let mut args = vec![
            "--backend",
            backend,
            "--pid",
            &pid,
            "--path",
            data.to_str().unwrap(),
        ];
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
        assert!(stderr.contains(&format!("backend {backend}; ")), "{stderr}");
    }
}

fn a_name_follows_processes_that_start_later() {
    name_follows("fanotify");
}

fn a_name_follows_processes_that_start_later_ebpf() {
    name_follows("ebpf");
}

fn name_follows(backend: &str) {
    need(backend);
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
    let (watch, _) = start_watch(&[
        "--backend",
        backend,
        "--name",
        "psdiffreader",
        "--path",
        data.to_str().unwrap(),
    ]);
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
        .args([
            "files",
            "--backend",
            "fanotify",
            "--format",
            "json",
            "--path",
        ])
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

/// Watches (with `args`) a process that opens 40,000 files and closes
/// them, while psdiff is stopped: 80,000 events come with nobody reading.
/// Returns psdiff's output and stderr once it ended by itself (every
/// watched process has ended), which it must, with exit status 0.
fn flood_while_stopped(args: &[&str]) -> (std::process::Output, String) {
    let tmp = TempDir::new("files-flood");
    let (opener, dir) = opener_and_files(&tmp, 40_000);
    let script = r#"while [ ! -e "$D/../go" ]; do sleep 0.02; done; "$OPENER" "$D" 40000 40000"#;
    let mut target = Command::new("sh")
        .args(["-c", script])
        .env("D", &dir)
        .env("OPENER", &opener)
        .spawn()
        .unwrap();
    let pid = target.id().to_string();
    let mut args = args.to_vec();
    args.extend(["--pid", &pid, "--path", dir.to_str().unwrap()]);
    let (watch, stderr) = start_watch(&args);
    let watcher = nix::unistd::Pid::from_raw(watch.id() as i32);
    nix::sys::signal::kill(watcher, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::fs::write(tmp.path().join("go"), "").unwrap();
    assert!(target.wait().unwrap().success());
    nix::sys::signal::kill(watcher, nix::sys::signal::Signal::SIGCONT).unwrap();
    let out = watch.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (out, stderr)
}

fn an_overflow_is_reported() {
    need_fanotify();
    // Past the kernel's queue of 16,384.
    let (out, stderr) = flood_while_stopped(&["--backend", "fanotify"]);
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

/// `psdiff files --backend BACKEND --max-open-files 1000` on a process
/// that opens 5,000 files and holds them until it exits.
fn hold_5000_files(backend: &str) -> std::process::Output {
    let tmp = TempDir::new("files-bounded");
    let (opener, dir) = opener_and_files(&tmp, 5000);
    let script = r#"ulimit -n 6000 && exec "$OPENER" "$D" 5000 5000 hold"#;
    psdiff()
        .args(["files", "--backend", backend, "--max-open-files", "1000"])
        .args(["--format", "json", "--path"])
        .arg(&dir)
        .args(["--", "sh", "-c", script])
        .env("OPENER", &opener)
        .env("D", &dir)
        .output()
        .unwrap()
}

/// A process that holds 5,000 files open, with --max-open-files 1000:
/// psdiff remembers only 1,000 of them, so the closes of the others (when
/// the process exits) come without a duration, and its memory stays
/// bounded. (The default is 65,536; this sandbox allows a process 20,000
/// descriptors.)
fn open_file_bookkeeping_is_bounded() {
    need_fanotify();
    let out = hold_5000_files("fanotify");
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

/// Relative paths come out absolute: against the directory psdiff's
/// command started in, and against the one a `cd` chose, which its
/// children inherit.
fn relative_paths_are_made_absolute() {
    need_ebpf();
    let tmp = TempDir::new("files-relative");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a"), "a").unwrap();
    std::fs::write(dir.join("b"), "b").unwrap();
    let out = psdiff()
        .args(["files", "--backend", "ebpf", "--format", "json", "--path"])
        .arg(dir)
        .args([
            "--",
            "sh",
            "-c",
            "cat a >/dev/null; cd sub && cat ../b ./../missing >/dev/null 2>&1",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let events = events(&out.stdout);
    let seen: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] != "close")
        .map(|e| (e["event"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    assert_eq!(
        seen,
        [
            ("open", path("a").as_str()),
            ("open", &path("b")),
            ("error", &path("missing"))
        ],
        "{}",
        crate::common::stderr(&out)
    );
}

/// A ring buffer of one page, and psdiff stopped while 80,000 events
/// come: the kernel counts what it could not send, and psdiff says how
/// many were lost, in its output and its summary.
fn a_full_ring_buffer_is_reported_with_a_count() {
    need_ebpf();
    let (out, stderr) = flood_while_stopped(&["--backend", "ebpf", "--ring-buffer", "4"]);
    let events = events(&out.stdout);
    let lost: u64 = events
        .iter()
        .filter(|e| e["event"] == "overflow")
        .map(|e| e["lost"].as_u64().unwrap())
        .sum();
    let reported = events.iter().filter(|e| e["event"] != "overflow").count() as u64;
    // 80,000 sent or lost, and a few of the shell's.
    assert!(
        lost > 0 && reported + lost >= 80_000,
        "lost {lost}, reported {reported}"
    );
    assert!(stderr.contains("the ring buffer was full"), "{stderr}");
    assert!(
        stderr.contains(&format!("; {lost} events lost (ring buffer full)")),
        "{stderr}"
    );
}

/// As `open_file_bookkeeping_is_bounded`, through eBPF: the 1,000 newest
/// descriptors are remembered and closed by the exit, with durations; the
/// 4,000 forgotten are counted, not reported.
fn descriptor_bookkeeping_is_bounded() {
    need_ebpf();
    let out = hold_5000_files("ebpf");
    let err = crate::common::stderr(&out);
    assert!(out.status.success(), "{err}");
    let events = events(&out.stdout);
    let opens = events.iter().filter(|e| e["event"] == "open").count();
    let closes: Vec<&Value> = events.iter().filter(|e| e["event"] == "close").collect();
    assert_eq!(opens, 5_000);
    assert_eq!(closes.len(), 1_000);
    assert!(
        closes
            .iter()
            .all(|c| c["closed_by"] == "exit" && c["duration_ms"].as_f64().unwrap() > 1000.0)
    );
    assert!(
        err.contains("; 0 descriptors still open; 4000 forgotten"),
        "{err}"
    );
}

/// The ground truth is strace on the same run: every open, failed open,
/// copy and close of the workload's files, with the same thread,
/// descriptor and path, from a python that opens by absolute and relative
/// path, copies descriptors each way the kernel offers, opens from four
/// threads and forks a child that lives a moment.
fn agrees_with_strace() {
    need_ebpf();
    if Command::new("strace").arg("-V").output().is_err() {
        skip("strace (Debian package strace)");
    }
    let tmp = TempDir::new("files-strace");
    let dir = tmp.path().join("w");
    std::fs::create_dir(&dir).unwrap();
    for name in ["a", "b", "c", "t0", "t1", "t2", "t3"] {
        std::fs::write(dir.join(name), name).unwrap();
    }
    let workload = r#"
import fcntl, os, sys, threading
d = sys.argv[1]
fd = os.open(d + "/a", os.O_RDONLY)
try:
    os.open(d + "/missing", os.O_RDONLY)
except OSError:
    pass
copies = [os.dup(fd), os.dup2(fd, 40), os.dup2(fd, 41, inheritable=False),
          fcntl.fcntl(fd, fcntl.F_DUPFD, 50), fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 60)]
for c in copies:
    os.close(c)
os.chdir(d)
rel = os.open("b", os.O_RDONLY | os.O_CLOEXEC)
os.close(rel)
def work(i):
    f = os.open(f"t{i}", os.O_RDONLY)
    os.close(f)
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
child = os.fork()
if child == 0:
    os.close(os.open("c", os.O_RDONLY))
    os._exit(0)
os.waitpid(child, 0)
os.close(fd)
"#;
    let trace = tmp.path().join("strace.out");
    let out = psdiff()
        .args(["files", "--backend", "ebpf", "--format", "json", "--path"])
        .arg(&dir)
        .args(["--", "strace", "-f", "-qq", "-o"])
        .arg(&trace)
        // clone and clone3 tell threads from processes.
        .args([
            "-e",
            "trace=openat,open,creat,close,dup,dup2,dup3,fcntl,clone,clone3",
        ])
        .args(["/usr/bin/python3", "-c", workload])
        .arg(&dir)
        .output()
        .unwrap();
    let err = crate::common::stderr(&out);
    assert!(out.status.success(), "{err}");

    // strace's view: (tid, event, path, fd), with a descriptor table per
    // process (threads share theirs, a forked child starts with a copy) to
    // name what each close and copy refers to.
    let prefix = dir.to_str().unwrap();
    let mut theirs = Vec::new();
    let mut tables: HashMap<u64, HashMap<i64, String>> = HashMap::new();
    let mut process_of: HashMap<u64, u64> = HashMap::new();
    let mut unfinished: HashMap<u64, String> = HashMap::new();
    for line in std::fs::read_to_string(&trace).unwrap().lines() {
        let (tid, call) = line.split_once(' ').unwrap();
        let tid: u64 = tid.parse().unwrap();
        let mut call = call.trim_start().to_string();
        // A call another thread interrupted comes in two lines.
        if let Some(head) = call.strip_suffix(" <unfinished ...>") {
            unfinished.insert(tid, head.to_string());
            continue;
        }
        if call.starts_with("<... ") {
            let rest = call.split_once(" resumed>").unwrap().1.to_string();
            call = unfinished.remove(&tid).unwrap() + &rest;
        }
        let Some((head, ret)) = call.rsplit_once(" = ") else {
            continue;
        };
        let head = head.trim_end();
        let Ok(ret) = ret.split_whitespace().next().unwrap().parse::<i64>() else {
            continue;
        };
        let process = *process_of.entry(tid).or_insert(tid);
        let name = head.split('(').next().unwrap();
        let args = &head[name.len() + 1..head.len() - 1];
        if name.starts_with("clone") {
            if args.contains("CLONE_THREAD") {
                process_of.insert(ret as u64, process);
            } else {
                let copy = tables.get(&process).cloned().unwrap_or_default();
                tables.insert(ret as u64, copy);
            }
            continue;
        }
        let table = tables.entry(process).or_default();
        match name {
            "openat" | "open" => {
                let path = args.split('"').nth(1).unwrap();
                let path = if path.starts_with('/') {
                    path.to_string()
                } else {
                    format!("{prefix}/{path}")
                };
                if !path.starts_with(prefix) {
                    continue;
                }
                if ret >= 0 {
                    table.insert(ret, path.clone());
                    theirs.push((tid, "open".to_string(), path, ret));
                } else {
                    theirs.push((tid, "error".to_string(), path, -1));
                }
            }
            "close" => {
                let fd: i64 = args.parse().unwrap();
                if let Some(path) = table.remove(&fd) {
                    theirs.push((tid, "close".to_string(), path, fd));
                }
            }
            "dup" | "dup2" | "dup3" | "fcntl" => {
                if (name == "fcntl" && !args.contains("F_DUPFD")) || ret < 0 {
                    continue;
                }
                let old: i64 = args.split(',').next().unwrap().trim().parse().unwrap();
                if let Some(path) = table.get(&old).cloned() {
                    table.insert(ret, path.clone());
                    theirs.push((tid, "dup".to_string(), path, ret));
                }
            }
            _ => {}
        }
    }

    let events = events(&out.stdout);
    let ours: Vec<(u64, String, String, i64)> = events
        .iter()
        .filter(|e| e.get("closed_by").is_none())
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["event"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e.get("fd").and_then(Value::as_i64).unwrap_or(-1),
            )
        })
        .collect();
    let sorted = |mut v: Vec<(u64, String, String, i64)>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(ours.clone()),
        sorted(theirs.clone()),
        "psdiff (left) and strace (right) differ"
    );
    // What the workload did, all of it seen: 1 + 5 copies + b + 4 threads'
    // + c opens and the failed one.
    let count = |kind: &str| ours.iter().filter(|e| e.1 == kind).count();
    assert_eq!(
        (count("open"), count("dup"), count("error")),
        (7, 5, 1),
        "{ours:?}"
    );
    assert_eq!(count("close"), 12);
    let tids: std::collections::HashSet<u64> = ours
        .iter()
        .filter(|e| {
            e.2.ends_with("/t0")
                || e.2.ends_with("/t1")
                || e.2.ends_with("/t2")
                || e.2.ends_with("/t3")
        })
        .map(|e| e.0)
        .collect();
    assert_eq!(tids.len(), 4, "each thread its own tid");
    let failed = events.iter().find(|e| e["event"] == "error").unwrap();
    assert_eq!(failed["error"], "ENOENT");
    let relative = events
        .iter()
        .find(|e| e["event"] == "open" && e["path"].as_str().unwrap().ends_with("/b"))
        .unwrap();
    assert_eq!(relative["flags"], "O_RDONLY|O_CLOEXEC");
    let child = events
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("/c"))
        .unwrap();
    assert_ne!(
        child["pid"], relative["pid"],
        "the forked child is its own process"
    );
    assert_eq!(child["ppid"], relative["pid"]);
    assert_eq!(child["comm"], "python3");
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
    // Asked for eBPF by name, it says what eBPF needs.
    let out = crate::common::as_nobody(&[env!("CARGO_BIN_EXE_psdiff")])
        .args(["files", "--backend", "ebpf", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = crate::common::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs root, or CAP_BPF and CAP_PERFMON"),
        "{err}"
    );
}

/// `--backend auto` takes eBPF where it can run, and says so.
fn auto_says_which_backend_it_took() {
    need_ebpf();
    let out = psdiff().args(["files", "--", "true"]).output().unwrap();
    let err = crate::common::stderr(&out);
    assert!(out.status.success(), "{err}");
    let said: Vec<&str> = err.lines().collect();
    assert!(
        said.first()
            .unwrap()
            .starts_with("psdiff files: backend ebpf; watching 1 processes"),
        "{err}"
    );
    assert!(
        said.last()
            .unwrap()
            .starts_with("psdiff files: backend ebpf; "),
        "{err}"
    );
}

crate::tests![
    a_scripted_tree_shows_each_open_and_close_under_the_filter,
    a_scripted_tree_shows_each_open_and_close_under_the_filter_ebpf,
    a_pid_is_followed_into_children_started_later_and_depth_limits_it,
    a_pid_is_followed_into_children_started_later_and_depth_limits_it_ebpf,
    a_name_follows_processes_that_start_later,
    a_name_follows_processes_that_start_later_ebpf,
    agrees_with_strace,
    relative_paths_are_made_absolute,
    a_full_ring_buffer_is_reported_with_a_count,
    descriptor_bookkeeping_is_bounded,
    agrees_with_fatrace,
    an_overflow_is_reported,
    open_file_bookkeeping_is_bounded,
    without_cap_sys_admin_it_says_so_and_exits_2,
    auto_says_which_backend_it_took,
];
