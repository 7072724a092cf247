//! `psdiff serve` run for real on an ephemeral loopback port, asked by a
//! real HTTP client (ureq), and by raw sockets where a client misbehaves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{TempDir, fixtures, psdiff, stdout};
use serde_json::{Value, json};

/// A running server with a read token and a control token.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
    read: String,
    control: String,
    tokens: PathBuf,
    _dir: Arc<TempDir>,
}

fn add_token(tokens: &Path, name: &str, control: bool) -> String {
    let mut cmd = psdiff();
    cmd.args(["token", "add", name, "--tokens"]).arg(tokens);
    if control {
        cmd.arg("--control");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    crate::common::stdout(&out).trim().to_string()
}

impl Server {
    /// Starts `psdiff serve ARGS` with `configure` applied to its command.
    fn start(dir: Arc<TempDir>, args: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        let tokens = dir.path().join("tokens");
        if !tokens.exists() {
            add_token(&tokens, "reader", false);
        }
        let read = add_token(&tokens, &format!("r{}", unique()), false);
        let control = add_token(&tokens, &format!("ops{}", unique()), true);
        let mut cmd = psdiff();
        cmd.env("PSDIFF_DB", dir.path().join("psdiff.db"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tokens"])
            .arg(&tokens)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("a first line").unwrap();
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in `{first}`"))
            .to_string();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Server {
            child,
            addr,
            log,
            read,
            control,
            tokens,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// (status, body) of METHOD PATH with `token` and an optional JSON body.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("Content-Type", "application/json");
        }
        let request = request.body(body.unwrap_or("").to_string()).unwrap();
        let mut response = agent.run(request).unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    /// The lines of a streamed answer (server-sent events), as they come.
    fn follow(&self, path: &str) -> std::sync::mpsc::Receiver<String> {
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        let response = agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {}", self.read))
            .call()
            .unwrap();
        assert_eq!(response.status(), 200);
        let (lines, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let reader = BufReader::new(response.into_body().into_reader());
            for line in reader.lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        receiver
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, &self.read)
    }

    fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, body) = self.call("GET", path, Some(token), None);
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
        )
    }

    fn control(&self, method: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.call(
            method,
            "/api/ps",
            Some(&self.control),
            Some(&body.to_string()),
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds every one of `needles`, or as it is after 10 s:
    /// the reader thread may lag the response that follows the line.
    fn log_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if needles.iter().all(|n| log.contains(n)) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> i32 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        // The stderr thread ends with the process.
        std::thread::sleep(Duration::from_millis(50));
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn live_server(args: &[&str]) -> Server {
    Server::start(Arc::new(TempDir::new("serve")), args, |_| {})
}

/// A process to act on: `sleep` with a duration no other test uses.
/// Returned once it sleeps, so its record is the same from any route.
fn sleeper() -> Child {
    let seconds = format!("{}.{}", 600 + unique(), std::process::id());
    let child = Command::new("sleep").arg(seconds).spawn().unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains("(sleep) S ")) {
        assert!(Instant::now() < deadline, "sleep never slept");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn health_is_open_and_everything_else_needs_a_token() {
    let server = live_server(&[]);
    // Every refusal is JSON, also those of the HTTP layers below the
    // routes (a query or path that is not UTF-8).
    for path in ["/api/ps?fields=%ff", "/api/ps/%ff", "/api/users/%ff/ps"] {
        let (status, body) = server.call("GET", path, Some(&server.read), None);
        assert_eq!(status, 400, "{path}: {body}");
        let body: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, body) = server.call("GET", "/", None, None);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );
    for path in [
        "/api/ps",
        "/api/ps/1",
        "/api/users",
        "/api/diff",
        "/api/check",
        "/metrics",
        "/nope",
    ] {
        let (status, body) = server.call("GET", path, None, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("Authorization: Bearer"), "{body}");
        let (status, _) = server.call("GET", path, Some("not-a-token"), None);
        assert_eq!(status, 401, "{path}");
        let (status, _) = server.call("GET", path, Some(&format!("{}x", server.read)), None);
        assert_eq!(status, 401, "{path}");
    }
    // The right token under another scheme is still no bearer token.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(server.url("/api/users"))
        .header("Authorization", format!("Basic {}", server.read))
        .call()
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, _) = server.get("/api/users");
    assert_eq!(status, 200);
    let (status, body) = server.get("/nope");
    assert_eq!((status, body["error"].is_string()), (404, true));
    let (status, body) = server.call("PUT", "/api/users", Some(&server.read), Some("{}"));
    assert_eq!(status, 405, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
    assert_eq!(server.stop(), 0);
}

fn tokens_are_stored_hashed_0600_and_revoked_live() {
    use std::os::unix::fs::PermissionsExt;
    let server = live_server(&[]);
    let text = std::fs::read_to_string(&server.tokens).unwrap();
    assert!(!text.contains(&server.read) && !text.contains(&server.control));
    let mode = std::fs::metadata(&server.tokens)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(server.read.len() >= 32);
    assert!(
        server
            .read
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    let out = psdiff()
        .args(["token", "list", "--tokens"])
        .arg(&server.tokens)
        .output()
        .unwrap();
    let list = crate::common::stdout(&out);
    assert!(list.lines().any(|l| l.starts_with("reader read")), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("ops") && l.ends_with(" control")),
        "{list}"
    );

    let out = psdiff()
        .args(["token", "add", "reader", "--tokens"])
        .arg(&server.tokens)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::common::stderr(&out).contains("a token named `reader` exists"));

    // Revoked: refused from the next request on, without a restart.
    let name = list
        .lines()
        .find(|l| l.starts_with('r') && !l.starts_with("reader"))
        .unwrap();
    let name = name.split(' ').next().unwrap();
    assert_eq!(server.get("/api/users").0, 200);
    let out = psdiff()
        .args(["token", "revoke", name, "--tokens"])
        .arg(&server.tokens)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    assert_eq!(server.get("/api/users").0, 401);
    let out = psdiff()
        .args(["token", "revoke", name, "--tokens"])
        .arg(&server.tokens)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A file others may read: the server refuses to start, and a running
    // one refuses everybody until it is fixed.
    std::fs::set_permissions(&server.tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        server
            .call("GET", "/api/users", Some(&server.control), None)
            .0,
        401
    );
    let log = server.log_with(&["chmod 600"]);
    assert!(log.contains("chmod 600"), "{log}");
    let out = psdiff()
        .args(["serve", "--listen", "127.0.0.1:0", "--tokens"])
        .arg(&server.tokens)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&server.tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        server
            .call("GET", "/api/users", Some(&server.control), None)
            .0,
        200
    );

    let out = psdiff()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            "/nonexistent/tokens",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::common::stderr(&out).contains("psdiff token add"),
        "{}",
        crate::common::stderr(&out)
    );
}

fn process_routes_show_psutil_fields() {
    let server = live_server(&[]);
    let mut child = sleeper();
    let pid = child.id();
    // The control token sees every field (as an --inspect one would).
    let (status, list) = server.get_as("/api/ps", &server.control);
    assert_eq!(status, 200);
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .expect("the sleeper is listed")
        .clone();
    let (status, one) = server.get_as(&format!("/api/ps/{pid}"), &server.control);
    assert_eq!(status, 200);
    for record in [&entry, &one] {
        assert_eq!(record["ppid"], std::process::id());
        assert_eq!(record["name"], "sleep");
        assert_eq!(record["cmdline"][0], "sleep");
        assert_eq!(record["username"], "root");
        assert_eq!(record["status"], "sleeping");
        assert_eq!(record["num_threads"], 1);
        assert!(
            record["exe"].as_str().unwrap().ends_with("/sleep"),
            "{record}"
        );
        assert!(record["memory_info"]["rss"].as_u64().unwrap() > 0);
        assert!(record["num_fds"].as_u64().unwrap() >= 3);
        assert!(record["create_time"].as_f64().unwrap() > 1.6e9);
        assert!(record["cwd"].is_string());
        assert!(record["uids"]["effective"].is_u64() && record["gids"]["saved"].is_u64());
        assert!(record["num_ctx_switches"]["voluntary"].is_u64());
        assert!(record["cpu_times"]["user"].is_f64() && record["cpu_percent"].is_f64());
        assert!(record["memory_percent"].is_f64());
        assert!(record.get("open_files").is_none() && record.get("connections").is_none());
    }
    // The costly fields, on request: this test's own open file and socket.
    let file = std::fs::File::open(fixtures().join("passwd")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let me = std::process::id();
    let (status, mine) = server.get_as(
        &format!("/api/ps/{me}?fields=pid,open_files,connections"),
        &server.control,
    );
    assert_eq!(status, 200);
    assert_eq!(mine.as_object().unwrap().len(), 3, "{mine}");
    let files = mine["open_files"].as_array().unwrap();
    let passwd = fixtures().join("passwd");
    assert!(
        files.iter().any(|f| f["path"] == passwd.to_str().unwrap()),
        "{files:?}"
    );
    let socket = mine["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["laddr"] == json!(["127.0.0.1", port]))
        .unwrap_or_else(|| panic!("no listener on {port}: {mine}"));
    assert_eq!(socket["status"], "LISTEN");
    assert_eq!(socket["type"], "SOCK_STREAM");
    drop((file, listener));

    // A read token: what needs ptrace access is null, and refused by name.
    let (status, read) = server.get(&format!("/api/ps/{pid}"));
    assert_eq!(status, 200);
    assert!(read["exe"].is_null() && read["cwd"].is_null(), "{read}");
    assert_eq!(read["name"], "sleep");
    for fields in ["exe", "pid,cwd", "open_files", "connections,name"] {
        for path in [
            format!("/api/ps?fields={fields}"),
            format!("/api/ps/{pid}?fields={fields}"),
        ] {
            let (status, body) = server.get(&path);
            assert_eq!(status, 403, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("--inspect"),
                "{body}"
            );
        }
    }

    let (status, some) = server.get("/api/ps?fields=pid,name");
    assert_eq!(status, 200);
    assert!(
        some.as_array()
            .unwrap()
            .iter()
            .all(|p| p.as_object().unwrap().len() == 2)
    );
    let (status, body) = server.get("/api/ps?fields=pid,nmae");
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `nmae`"),
        "{body}"
    );
    assert_eq!(server.get("/api/ps/abc").0, 400);
    let (status, body) = server.get("/api/ps/4000000000");
    assert_eq!(status, 404, "{body}");

    let (status, users) = server.get("/api/users");
    assert_eq!(status, 200);
    let root = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "root")
        .unwrap();
    assert!(root["running"].as_u64().unwrap() >= 2);
    let (status, theirs) = server.get("/api/users/root/ps?fields=pid,username");
    assert_eq!(status, 200);
    let theirs = theirs.as_array().unwrap();
    assert!(theirs.iter().all(|p| p["username"] == "root"));
    assert!(theirs.iter().any(|p| p["pid"] == pid));
    assert_eq!(server.get("/api/users/nobody/ps").0, 200);
    let (status, body) = server.get("/api/users/no-such-user-here/ps");
    assert_eq!(status, 404, "{body}");

    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(server.get(&format!("/api/ps/{pid}")).0, 404);
}

/// monitoreo's remaining fields, against what /proc says of a live
/// process: a python with two extra threads, pinned to CPU 0.
fn process_routes_show_threads_affinity_and_memory_maps() {
    let server = live_server(&[]);
    let script = "import threading, time\n\
        for _ in range(2): threading.Thread(target=time.sleep, args=(120,), daemon=True).start()\n\
        print('ready', flush=True)\ntime.sleep(120)";
    let (mut child, _) = crate::common::started(Command::new("taskset").args([
        "-c",
        "0",
        "/usr/bin/python3",
        "-c",
        script,
    ]));
    let pid = child.id();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let fields = "pid,cpu_affinity,threads,memory_full_info,memory_info_ex,memory_maps";
    // Pss and uss change when another process maps the same pages (other
    // tests start pythons): read until smaps_rollup is the same before
    // and after the request, and compare with that.
    let read_rollup = || std::fs::read_to_string(proc_dir.join("smaps_rollup")).unwrap();
    let (status, record, rollup) = (0..20)
        .map(|_| {
            let before = read_rollup();
            let (status, record) =
                server.get_as(&format!("/api/ps/{pid}?fields={fields}"), &server.control);
            (status, record, before, read_rollup())
        })
        .find(|(_, _, before, after)| before == after)
        .map(|(status, record, rollup, _)| (status, record, rollup))
        .expect("smaps_rollup stayed the same over one request");
    assert_eq!(status, 200, "{record}");
    assert_eq!(record.as_object().unwrap().len(), 6, "{record}");
    assert_eq!(record["cpu_affinity"], json!([0]));

    let mut tids: Vec<u64> = std::fs::read_dir(proc_dir.join("task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    tids.sort();
    let threads = record["threads"].as_array().unwrap();
    let shown: Vec<u64> = threads.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(shown, tids);
    assert_eq!(tids.len(), 3);
    assert!(
        threads
            .iter()
            .all(|t| t["user_time"].is_f64() && t["system_time"].is_f64())
    );

    // Counters of a sleeping process stay put between its read and ours.
    let kb = |text: &str, key: &str| -> u64 {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(|rest| {
                rest.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
                    * 1024
            })
            .sum()
    };
    let full = &record["memory_full_info"];
    assert_eq!(full, &record["memory_info_ex"]);
    // Sharing can still flicker between two equal readings (a python
    // that starts and ends meanwhile): pss and uss within 2%.
    let near = |shown: &Value, read: u64| {
        let shown = shown.as_u64().unwrap();
        assert!(
            shown.abs_diff(read) * 50 <= read,
            "{shown} vs {read} in /proc"
        );
    };
    near(&full["pss"], kb(&rollup, "Pss:"));
    assert_eq!(full["swap"], kb(&rollup, "Swap:"));
    let private = kb(&rollup, "Private_Clean:")
        + kb(&rollup, "Private_Dirty:")
        + kb(&rollup, "Private_Hugetlb:");
    near(&full["uss"], private);
    assert!(private > 0);
    let statm: Vec<u64> = std::fs::read_to_string(proc_dir.join("statm"))
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let page = 4096;
    assert_eq!(full["vms"], statm[0] * page);
    assert_eq!(full["rss"], statm[1] * page);

    let maps = record["memory_maps"].as_array().unwrap();
    let python = std::fs::read_link(proc_dir.join("exe")).unwrap();
    let exe_map = maps
        .iter()
        .find(|m| m["path"] == python.to_str().unwrap())
        .unwrap_or_else(|| panic!("no map of {python:?}: {maps:?}"));
    assert!(exe_map["rss"].as_u64().unwrap() > 0);
    assert!(maps.iter().any(|m| m["path"] == "[anon]"), "{maps:?}");
    assert!(maps.iter().any(|m| m["path"] == "[stack]"));
    let paths: std::collections::HashSet<_> =
        maps.iter().map(|m| m["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), maps.len(), "one entry per path");
    let sum = |key: &str| maps.iter().map(|m| m[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("rss"), kb(&rollup, "Rss:"));
    // Pss is rounded down to a kB per mapping in smaps, once in the rollup.
    near(&json!(sum("pss")), kb(&rollup, "Pss:"));

    // Not in the default listing; refused by name to a read token.
    let (_, default) = server.get_as(&format!("/api/ps/{pid}"), &server.control);
    assert_eq!(default["cpu_affinity"], json!([0]));
    assert!(default.get("threads").is_none() && default.get("memory_maps").is_none());
    for field in ["memory_full_info", "memory_info_ex", "memory_maps"] {
        let (status, body) = server.get(&format!("/api/ps/{pid}?fields=pid,{field}"));
        assert_eq!(status, 403, "{field}: {body}");
    }
    let (status, body) = server.get(&format!("/api/ps/{pid}?fields=threads,cpu_affinity"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["threads"].as_array().unwrap().len(), 3);

    child.kill().unwrap();
    child.wait().unwrap();
}

/// On a synthetic tree: /api/diff says what `show --format json` says,
/// /api/check what `check --format json` says, and /metrics counts both.
fn diff_check_and_metrics_agree_with_the_commands() {
    let dir = Arc::new(TempDir::new("serve-diff"));
    let proc = crate::common::copy_fixture("defaults", dir.path());
    let config = dir.path().join("psdiff.toml");
    std::fs::write(
        &config,
        "[[check]]\nname = \"cron\"\nmatch = { comm = \"cron\" }\ncrit = \"5:\"\n\n[[check]]\nname = \"sshd\"\nmatch = { comm = \"sshd\" }\ncount = \"1-\"\n",
    )
    .unwrap();
    let db = dir.path().join("psdiff.db");
    let cli = |args: &[&str]| {
        let mut cmd = crate::common::on_tree(&proc, &db);
        cmd.env("PSDIFF_CONFIG", &config).args(args);
        crate::common::run(&mut cmd)
    };
    assert_eq!(cli(&["write"]).0, 0);
    // A daemon gone, another one new.
    std::fs::remove_dir_all(proc.join("540")).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(proc.join("380"))
        .arg(proc.join("9380"))
        .status();
    assert!(status.unwrap().success());
    std::fs::write(proc.join("9380/cmdline"), "/usr/sbin/intruder\0--quiet\0").unwrap();
    let stat = std::fs::read_to_string(proc.join("9380/stat")).unwrap();
    std::fs::write(proc.join("9380/stat"), stat.replacen("380 ", "9380 ", 1)).unwrap();

    let (proc2, config2) = (proc.clone(), config.clone());
    let server = Server::start(dir.clone(), &[], move |cmd| {
        cmd.env("PSDIFF_PROC_ROOT", &proc2)
            .env("PSDIFF_PASSWD", fixtures().join("passwd"))
            .env("PSDIFF_CONFIG", &config2);
    });
    let (status, diff) = server.get("/api/diff");
    assert_eq!(status, 200);
    assert_eq!(diff["baseline"], "present");
    assert_eq!(diff["rules_note"], Value::Null);
    let (_, shown, _) = cli(&["show", "--format", "json"]);
    assert_eq!(diff, serde_json::from_str::<Value>(&shown).unwrap());
    assert_eq!(
        diff["missing"][0]["cmdline"],
        "/usr/sbin/rsyslogd -n -iNONE"
    );
    assert_eq!(
        diff["extra"][0]["cmdline"], "/usr/sbin/intruder --quiet",
        "{diff}"
    );

    let (status, checks) = server.get("/api/check");
    assert_eq!(status, 200);
    let (_, checked, _) = cli(&["check", "--format", "json"]);
    assert_eq!(checks, serde_json::from_str::<Value>(&checked).unwrap());

    let (status, metrics) = server.call("GET", "/metrics", Some(&server.read), None);
    assert_eq!(status, 200);
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
            .to_string()
    };
    assert_eq!(value("psdiff_missing_lines"), "1");
    assert_eq!(value("psdiff_extra_lines"), "1");
    assert_eq!(value("psdiff_baseline_present"), "1");
    assert_eq!(value("psdiff_up"), "1");
    assert_eq!(value("psdiff_check_failed{check=\"cron\"}"), "1");
    assert_eq!(value("psdiff_check_failed{check=\"sshd\"}"), "0");
    let entries = std::fs::read_dir(&proc).unwrap().count();
    let counted: usize = metrics
        .lines()
        .filter(|l| l.starts_with("psdiff_processes{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert!(counted > 20 && counted <= entries, "{counted}");
    // alice's processes, counted from the tree's status files.
    let alice_uid = "1000";
    let alice = std::fs::read_dir(&proc)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("status")).ok())
        .filter(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                == Some(alice_uid)
        })
        .count();
    assert!(alice > 0);
    assert_eq!(value("psdiff_processes{user=\"alice\"}"), alice.to_string());
    assert!(
        value("psdiff_scrape_duration_seconds")
            .parse::<f64>()
            .unwrap()
            >= 0.0
    );

    // A damaged baseline is an error, said as JSON, and psdiff_up 0.
    std::fs::write(&db, "garbage without the format\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = server.get("/api/diff");
    assert_eq!(status, 500, "{body}");
    // The client learns that it failed, not which file said what.
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("see its log") && !error.contains("psdiff.db"),
        "{body}"
    );
    let (_, metrics) = server.call("GET", "/metrics", Some(&server.read), None);
    assert!(metrics.contains("\npsdiff_up 0\n"), "{metrics}");
}

fn control_routes_need_the_flag_and_a_control_token() {
    let off = live_server(&[]);
    let mut child = sleeper();
    let pid = child.id();
    let (status, body) = off.control("DELETE", &json!({"pid": pid}));
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("--allow-control"));
    drop(off);

    let server = live_server(&["--allow-control"]);
    let as_reader = server.call(
        "DELETE",
        "/api/ps",
        Some(&server.read),
        Some(&json!({"pid": pid}).to_string()),
    );
    assert_eq!(as_reader.0, 403, "{}", as_reader.1);
    assert!(as_reader.1.contains("only read"));
    let (status, _) = server.call(
        "GET",
        "/api/ps/output/0123456789abcdef0123456789abcdef",
        Some(&server.read),
        None,
    );
    assert_eq!(status, 403);

    // Renice, then signal.
    let (status, body) = server.control("PATCH", &json!({"pid": pid, "priority": 7}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.get(&format!("/api/ps/{pid}?fields=nice")).1["nice"],
        7
    );
    let (status, body) = server.control("DELETE", &json!({"pid": pid, "signal": "USR1"}));
    assert_eq!((status, body["signal"].as_str()), (200, Some("SIGUSR1")));
    let ended = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(ended.signal(), Some(libc::SIGUSR1));

    // Never pid 1, the server, or its ancestors (this test).
    for protected in [1, server.child.id(), std::process::id()] {
        let (status, body) = server.control("DELETE", &json!({"pid": protected}));
        assert_eq!(status, 403, "{protected}: {body}");
        let (status, _) = server.control("PATCH", &json!({"pid": protected, "priority": 19}));
        assert_eq!(status, 403);
    }
    // Nor through a thread id: one of the server's threads (a tokio worker)
    // or of pid 1 would stand for its whole process.
    let threads: Vec<u32> = std::fs::read_dir(format!("/proc/{}/task", server.child.id()))
        .unwrap()
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&tid| tid != server.child.id())
        .collect();
    assert!(!threads.is_empty(), "the server runs threads");
    for tid in threads {
        let (status, body) = server.control("DELETE", &json!({"pid": tid, "signal": "KILL"}));
        assert!(
            [403, 404].contains(&status),
            "thread {tid}: {status} {body}"
        );
        let (status, _) = server.control("PATCH", &json!({"pid": tid, "priority": 19}));
        assert!([403, 404].contains(&status), "thread {tid}: {status}");
    }
    assert_eq!(server.get("/").0, 200, "the server lives");
    // A kernel thread (kthreadd is pid 2 where the kernel's threads show).
    if std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd") {
        assert_eq!(server.control("DELETE", &json!({"pid": 2})).0, 403);
    }

    let bad: [(&str, Value, u16); 9] = [
        ("DELETE", json!({"pid": 0}), 400),
        ("DELETE", json!({"pid": -1}), 400),
        ("DELETE", json!({"pid": 4_000_000_000u64}), 400),
        ("DELETE", json!({"pid": 4_000_000}), 404),
        ("DELETE", json!({"pid": 12, "signal": "BOGUS"}), 400),
        ("DELETE", json!({"pdi": 12}), 400),
        ("PATCH", json!({"pid": 12, "priority": 20}), 400),
        ("PATCH", json!({"pid": 12, "priority": -21}), 400),
        ("PATCH", json!({"pid": 12}), 400),
    ];
    for (method, body, want) in bad {
        let (status, answer) = server.control(method, &body);
        assert_eq!(status, want, "{method} {body}: {answer}");
        assert!(answer["error"].is_string());
    }
    let (status, body) = server.call(
        "DELETE",
        "/api/ps",
        Some(&server.control),
        Some("{\"pid\": "),
    );
    assert_eq!(status, 400, "{body}");
    let huge = format!("{{\"cmd\": [\"{}\"]}}", "a".repeat(100_000));
    let (status, body) = server.call("POST", "/api/ps", Some(&server.control), Some(&huge));
    assert_eq!(status, 413, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());

    let log = server.log_with(&["action=DELETE /api/ps target=- result=refused"]);
    assert!(
        log.contains(&format!(
            "action=renice 7 target=pid {pid} (sleep) result=ok"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "action=signal SIGUSR1 target=pid {pid} (sleep) result=ok"
        )),
        "{log}"
    );
    assert!(
        log.contains("action=signal SIGTERM target=pid 1 result=403"),
        "{log}"
    );
    assert!(
        log.contains("action=DELETE /api/ps target=- result=refused"),
        "{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("control: token=ops"))
            .count()
            >= 10
    );
}

fn run_starts_only_allowed_commands_and_keeps_their_output() {
    let dir = Arc::new(TempDir::new("serve-run"));
    let config = dir.path().join("psdiff.toml");
    std::fs::write(
        &config,
        "[serve]\nrun_allow = [[\"/bin/sh\", \"-c\", \"...\"], [\"/bin/echo\", \"hello\", \"...\"], [\"/bin/true\", \"x\"]]\n",
    )
    .unwrap();
    let server = Server::start(dir.clone(), &["--allow-control"], |cmd| {
        cmd.env("PSDIFF_CONFIG", &config);
    });
    let (status, started) = server.control(
        "POST",
        &json!({"cmd": ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]}),
    );
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(started["pid"].as_u64().unwrap() > 1);
    let output = wait_for_end(&server, id);
    assert_eq!(output["out"], "out\n");
    assert_eq!(output["err"], "err\n");
    assert_eq!(output["exit_code"], 3);
    assert_eq!(output["timed_out"], false);

    // argv is not a shell line: `;` is an argument of echo.
    let (status, started) = server.control("POST", &json!({"cmd": ["/bin/echo", "hello", "; id"]}));
    assert_eq!(status, 202);
    let output = wait_for_end(&server, started["id"].as_str().unwrap());
    assert_eq!(output["out"], "hello ; id\n");

    for refused in [
        json!(["/bin/echo"]),
        json!(["/bin/echo", "goodbye"]),
        json!(["/bin/true", "x", "y"]),
        json!(["echo", "hello"]),
        json!(["/bin/bash", "-c", "id"]),
    ] {
        let (status, body) = server.control("POST", &json!({"cmd": refused}));
        assert_eq!(status, 403, "{refused}: {body}");
        assert!(body["error"].as_str().unwrap().contains("run_allow"));
    }
    assert_eq!(server.control("POST", &json!({"cmd": []})).0, 400);
    assert_eq!(
        server.control("POST", &json!({"cmd": "/bin/echo hello"})).0,
        400
    );

    // Output is capped, and a command that overstays is killed with all
    // it started, also what left its process group or lost its parent.
    let marker = 3000 + std::process::id() % 1000;
    let escapes = format!("setsid sleep {marker}.1 & (sleep {marker}.2 &);");
    let (_, started) = server.control(
        "POST",
        &json!({"cmd": ["/bin/sh", "-c", format!("{escapes} head -c 200000 /dev/zero | tr '\\0' x; sleep 60")]}),
    );
    let begun = Instant::now();
    let output = wait_for_end(&server, started["id"].as_str().unwrap());
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert_eq!(output["timed_out"], true);
    assert_eq!(output["signal"], 9);
    assert_eq!(output["out"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(output["out_truncated"], true);
    let left = std::process::Command::new("pgrep")
        .args(["-af", &format!("sleep {marker}\\.")])
        .output()
        .unwrap();
    assert_eq!(stdout(&left), "", "escaped the limit");

    let (status, body) = server.call(
        "GET",
        "/api/ps/output/0123456789abcdef0123456789abcdef",
        Some(&server.control),
        None,
    );
    assert_eq!(status, 404, "{body}");
    let log = server.log_with(&["action=run-ended", "killed after 10s"]);
    assert!(
        log.contains("action=run-ended") && log.contains("killed after 10s"),
        "{log}"
    );
}

fn wait_for_end(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = server.call(
            "GET",
            &format!("/api/ps/output/{id}"),
            Some(&server.control),
            None,
        );
        assert_eq!(status, 200, "{text}");
        let output: Value = serde_json::from_str(&text).unwrap();
        if output["running"] == false {
            return output;
        }
        assert!(Instant::now() < deadline, "still running: {output}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn a_bad_run_allow_is_refused_at_start() {
    let dir = TempDir::new("serve-config");
    let config = dir.path().join("psdiff.toml");
    std::fs::write(
        &config,
        "[serve]\nrun_allow = [[\"systemctl\", \"status\"]]\n",
    )
    .unwrap();
    let out = psdiff()
        .env("PSDIFF_CONFIG", &config)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("psdiff.toml:2:") && err.contains("not an absolute path"),
        "{err}"
    );
}

/// Slow, idle, oversized and too many clients: each is cut off, and the
/// server goes on answering the others.
fn misbehaving_clients_are_bounded() {
    let server = live_server(&["--client-timeout", "1", "--max-connections", "3"]);
    let connect = || {
        let s = TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // Headers over 16 KiB: 431.
    let mut s = connect();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = s.write_all(big.as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");

    // Headers sent too slowly, and a kept-alive connection left idle: both
    // closed after the client timeout.
    for first in [
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut s = connect();
        s.write_all(first.as_bytes()).unwrap();
        let begun = Instant::now();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let took = begun.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{first:?}: {took:?}"
        );
    }

    // A body that never arrives whole: an answer, then the connection ends.
    let mut s = connect();
    let head = format!(
        "DELETE /api/ps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"pid\"",
        server.control
    );
    s.write_all(head.as_bytes()).unwrap();
    let begun = Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(begun.elapsed() < Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");

    // Three connections held open without a token: a fourth is served at
    // once, and the oldest stranger is closed to make room.
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let begun = Instant::now();
    assert_eq!(server.call("GET", "/", None, None).0, 200);
    assert!(
        begun.elapsed() < Duration::from_millis(900),
        "{:?}",
        begun.elapsed()
    );
    let mut byte = [0u8; 1];
    assert_eq!(
        held[0].read(&mut byte).unwrap_or(0),
        0,
        "the oldest stays open"
    );
    held.clear();
}

/// SIGTERM lets a request in progress finish, then the server exits 0.
fn sigterm_finishes_open_requests() {
    let dir = Arc::new(TempDir::new("serve-term"));
    let config = dir.path().join("psdiff.toml");
    // A CPU check is measured over a second: a slow request to interrupt.
    std::fs::write(&config, "[[check]]\nname = \"busy\"\nmatch = { comm = \"nothing-is-called-this\" }\ncpu_percent = 90\n").unwrap();
    let server = Server::start(dir.clone(), &[], |cmd| {
        cmd.env("PSDIFF_CONFIG", &config);
    });
    let url = server.url("/api/check");
    let token = server.read.clone();
    let request = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .get(url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    });
    std::thread::sleep(Duration::from_millis(300));
    let addr = server.addr.clone();
    assert_eq!(server.stop(), 0);
    let (status, body) = request.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"busy\""), "{body}");
    assert!(TcpStream::connect(addr).is_err());
}

/// Issue 16: a local user holding 1,500 idle connections, re-opened as
/// they are closed, must not keep a token holder out.
fn a_crowd_of_strangers_cannot_starve_token_holders() {
    crate::common::need_file("/usr/bin/python3", "python3");
    let server = live_server(&[]);
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attack/hold_connections.py");
    let mut attacker = Command::new("setpriv");
    if nix::unistd::geteuid().is_root() {
        attacker.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    } else {
        eprintln!("not root: the attacker runs as this user");
    }
    let mut attacker = attacker
        .arg("/usr/bin/python3")
        .arg(&script)
        .args([host, port, "1500", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(attacker.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "holding");
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let begun = Instant::now();
        let (status, body) = server.call("GET", "/metrics", Some(&server.read), None);
        slowest = slowest.max(begun.elapsed());
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("psdiff_up"), "{body}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let opened: usize = lines.next().unwrap().unwrap().parse().unwrap();
    assert!(attacker.wait().unwrap().success());
    eprintln!("slowest /metrics under {opened} stranger connections: {slowest:?}");
    assert!(opened > 1500, "the crowd was never pushed out: {opened}");
    // Far below the 10 s a stranger may hold a place: nobody waited on them.
    assert!(slowest < Duration::from_secs(3), "{slowest:?}");
}

crate::tests![
    health_is_open_and_everything_else_needs_a_token,
    a_crowd_of_strangers_cannot_starve_token_holders,
    tokens_are_stored_hashed_0600_and_revoked_live,
    process_routes_show_psutil_fields,
    process_routes_show_threads_affinity_and_memory_maps,
    diff_check_and_metrics_agree_with_the_commands,
    control_routes_need_the_flag_and_a_control_token,
    run_starts_only_allowed_commands_and_keeps_their_output,
    a_bad_run_allow_is_refused_at_start,
    misbehaving_clients_are_bounded,
    sigterm_finishes_open_requests,
    history_answers_what_the_watcher_journaled,
];

/// `GET /api/history` answers what `psdiff history --format json` prints,
/// from the journal a real watcher writes, behind a token.
fn history_answers_what_the_watcher_journaled() {
    crate::common::need_root();
    let _turn = crate::common::whole_machine();
    let dir = Arc::new(TempDir::new("serve-history"));
    let journal = dir.path().join("journal.sqlite");
    let db = dir.path().join("psdiff.db");
    let env = |cmd: &mut Command| {
        cmd.env("PSDIFF_DB", &db).env("PSDIFF_JOURNAL", &journal);
    };
    let mut write = psdiff();
    env(&mut write);
    assert!(write.arg("write").status().unwrap().success());
    let mut watch = psdiff();
    env(&mut watch);
    let mut watcher = watch
        .args(["watch", "--tick", "0.2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server::start(dir.clone(), &[], |cmd| env(cmd));
    let ours = "/api/history?since=10m&all=true&match=%5E%5Cs*sleep%206161";
    let deadline = Instant::now() + Duration::from_secs(20);
    // The watcher is up once its heartbeat is in the answer.
    while server.get(ours).1["watcher"]["pid"] != watcher.id() {
        assert!(Instant::now() < deadline, "{:?}", server.get(ours));
        std::thread::sleep(Duration::from_millis(100));
    }
    // A follower of the live events, from before the victim starts.
    let feed = server.follow("/api/events?all=true&match=%5E%5Cs*sleep%206161");
    let mut victim = crate::common::as_nobody(&["sleep", "6161.5"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    victim.kill().unwrap();
    victim.wait().unwrap();
    let events = loop {
        let (status, v) = server.get(ours);
        assert_eq!(status, 200, "{v}");
        let events = v["events"].as_array().unwrap().clone();
        if events.iter().any(|e| e["kind"] == "exit") {
            break events;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["start", "exit"], "{events:?}");
    assert_eq!(events[0]["user"], "nobody");
    assert_eq!(events[0]["pid"], victim.id());
    assert_eq!(events[1]["exit_signal"], 9);
    // The same filters as the command, and their errors, said as such.
    let (status, none) = server.get(&format!("{ours}&user=root"));
    assert_eq!((status, none["events"].as_array().unwrap().len()), (200, 0));
    let (status, bad) = server.get("/api/history?since=yesterday-ish");
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .starts_with("since \"yesterday-ish\""),
        "{bad}"
    );
    let (status, _) = server.get("/api/history?frobnicate=1");
    assert_eq!(status, 400);
    let (status, _) = server.call("GET", ours, None, None);
    assert_eq!(status, 401);
    // The feed said the same, as it happened: `event: KIND`, `data: JSON`.
    let mut said = Vec::new();
    while said.len() < 2 {
        let line = feed
            .recv_timeout(Duration::from_secs(20))
            .expect("the feed said nothing");
        if let Some(kind) = line.strip_prefix("event: ") {
            said.push(kind.to_string());
        } else if let Some(data) = line.strip_prefix("data: ") {
            let event: Value = serde_json::from_str(data).unwrap();
            assert_eq!(event["pid"], victim.id(), "{event}");
        }
    }
    assert_eq!(said, ["start", "exit"]);
    assert_eq!(
        server
            .call("GET", "/api/events?match=(", Some(&server.read), None)
            .0,
        400
    );
    assert_eq!(server.call("GET", "/api/events", None, None).0, 401);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watcher.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(watcher.wait().unwrap().success());
}
