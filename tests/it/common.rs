//! Runs the real psdiff binary, isolated from the machine's own config.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// psdiff with no config of the machine's: `--config /dev/null` unless the
/// caller gives one.
pub fn psdiff() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_psdiff"));
    cmd.env_remove("PSDIFF_CONFIG")
        .env("PSDIFF_CONFIG", "/dev/null");
    cmd
}

/// psdiff over a fixture tree, with the fixtures' passwd file.
pub fn on_fixture(tree: &str) -> Command {
    let mut cmd = psdiff();
    cmd.arg("--proc-root")
        .arg(fixtures().join(tree).join("proc"))
        .arg("--passwd")
        .arg(fixtures().join("passwd"));
    cmd
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh empty folder under the system temp dir (tempfile's: made
/// exclusively, under a random name), removed on drop. Mode 0755, as a
/// folder made by hand would be: some tests run as nobody inside.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("psdiff-test-{tag}-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Why a live test cannot run here, if it cannot: it needs root (or user
/// namespaces), `unshare` and a C compiler for the sleeper helper.
pub fn live_unavailable() -> Option<String> {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    match probe {
        Err(e) => return Some(format!("cannot run unshare: {e}")),
        Ok(out) if !out.status.success() => {
            return Some(format!(
                "unshare --pid --fork --mount-proc failed (needs root or user namespaces): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(_) => {}
    }
    match Command::new("cc").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("no C compiler (cc) to build the sleeper helper".into()),
    }
}

/// Builds tests/helpers/sleeper.c into `dir` and returns its path.
pub fn build_sleeper(dir: &Path) -> PathBuf {
    build_helper(dir, "sleeper")
}

/// Builds tests/helpers/NAME.c into `dir` and returns its path.
pub fn build_helper(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/helpers/{name}.c"));
    let status = Command::new("cc")
        .arg("-O")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "cc failed to build {}", src.display());
    out
}

/// Runs `script` with bash as pid 1 of a new PID namespace (with its own
/// /proc), with `$SLEEPER`, `$PSDIFF`, `$WORK` set; returns its stdout.
pub fn run_in_pid_namespace(script: &str, work: &Path, sleeper: &Path) -> Output {
    Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "bash",
            "-c",
            script,
        ])
        .env("SLEEPER", sleeper)
        .env("PSDIFF", env!("CARGO_BIN_EXE_psdiff"))
        .env("WORK", work)
        .env("PSDIFF_CONFIG", "/dev/null")
        .output()
        .unwrap()
}

/// A copy of a fixture's proc tree in `dir`, to add or remove processes.
/// Its system root (logind records, timers, container names) is copied
/// with it, so the copy is the same machine.
pub fn copy_fixture(tree: &str, dir: &Path) -> PathBuf {
    let to = dir.join(tree);
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixtures().join(tree))
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    to.join("proc")
}

/// psdiff on the proc tree at `proc`, with the fixtures' passwd file and
/// the baseline at `db`.
pub fn on_tree(proc: &Path, db: &Path) -> Command {
    let mut cmd = psdiff();
    cmd.env("PSDIFF_PROC_ROOT", proc)
        .env("PSDIFF_PASSWD", fixtures().join("passwd"))
        .env("PSDIFF_DB", db);
    cmd
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// The part of a test script's output after the line `==NAME==`, up to
/// the next such marker.
pub fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("=={name}==\n"))
        .unwrap_or_else(|| panic!("no section {name} in {out}"))
        + name.len()
        + 5;
    let end = out[start..]
        .find("\n==")
        .map_or(out.len(), |e| start + e + 1);
    &out[start..end]
}

/// The payload of a test that cannot run here (see `skip`).
pub struct Skip(pub String);

/// This test cannot run here: it needs `what`. In CI (`CI` set) that is a
/// failure naming what is missing; elsewhere the test is skipped, and the
/// run ends with the count of skipped tests and why (tests/it/main.rs).
pub fn skip(what: impl Into<String>) -> ! {
    let what = what.into();
    if std::env::var_os("CI").is_some() {
        panic!("cannot run in CI: it needs {what}; .ci/run must provide it");
    }
    std::panic::panic_any(Skip(what))
}

/// A tool's path, or a skip naming the Debian package that has it.
pub fn need_file(path: &str, package: &str) {
    if !Path::new(path).exists() {
        skip(format!("{path} (Debian package {package})"));
    }
}

/// A live test's prerequisites, or a skip naming what is missing.
pub fn need_live() {
    if let Some(why) = live_unavailable() {
        skip(why);
    }
}

/// Root, or a skip.
pub fn need_root() {
    if !nix::unistd::geteuid().is_root() {
        skip("root");
    }
}

/// `argv` run as nobody (uid and gid 65534, no groups), through setpriv:
/// the unprivileged user of the attack tests.
pub fn as_nobody(argv: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(argv)
        .env_remove("PSDIFF_CONFIG");
    cmd
}

/// Starts `cmd` with its stdout piped, and waits for the first line it
/// prints (how a helper says it is ready, and what it holds).
pub fn started(cmd: &mut Command) -> (Child, String) {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// The real Zabbix agent with the shipped UserParameter file
/// (`zabbix_agentd -t KEY` runs an item as the agent does).
pub struct ZabbixAgent {
    dir: TempDir,
}

impl ZabbixAgent {
    pub fn new() -> ZabbixAgent {
        if Command::new("zabbix_agentd").arg("-V").output().is_err() {
            skip("zabbix_agentd (Debian package zabbix-agent)");
        }
        let dir = TempDir::new("zabbix");
        // The shipped file, with psdiff run directly (the agent runs as
        // root here; the live Debian suite runs it through sudo) so that
        // the test's tree and baseline reach it.
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/zabbix/userparameter_psdiff.conf"),
        )
        .unwrap();
        let params = dir.path().join("userparameter_psdiff.conf");
        std::fs::write(
            &params,
            shipped.replace("sudo -n /usr/bin/psdiff", env!("CARGO_BIN_EXE_psdiff")),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("agent.conf"),
            format!(
                "LogType=console\nAllowRoot=1\nInclude={}\n",
                params.display()
            ),
        )
        .unwrap();
        ZabbixAgent { dir }
    }

    /// The item's value over the proc tree `proc` (a fixture, with the
    /// fixtures' passwd file).
    pub fn item(&self, key: &str, proc: &Path) -> String {
        self.item_with(
            key,
            &[
                ("PSDIFF_PROC_ROOT", proc.as_os_str()),
                ("PSDIFF_PASSWD", fixtures().join("passwd").as_os_str()),
            ],
        )
    }

    /// The item's value as the agent reports it (`KEY [t|VALUE]`), with
    /// psdiff's built-in rules, this agent's baseline, and `env`.
    pub fn item_with(&self, key: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
        let bin = Path::new(env!("CARGO_BIN_EXE_psdiff")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("zabbix_agentd")
            .arg("-c")
            .arg(self.dir.path().join("agent.conf"))
            .args(["-t", key])
            .env("PATH", path)
            .env("PSDIFF_CONFIG", "/dev/null")
            .env("PSDIFF_DB", self.db())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = stdout(&out);
        let value = text
            .split_once("[t|")
            .unwrap_or_else(|| panic!("no value for {key}: {text} {}", stderr(&out)))
            .1;
        value.trim_end().strip_suffix(']').unwrap().to_string()
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("psdiff.db")
    }
}

/// Tests that load the whole machine (fork storms) and those that must
/// see every process event of it (a watcher's) take turns, so that none
/// starves or floods another.
static WHOLE_MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This test's turn at the whole machine, until the guard drops.
pub fn whole_machine() -> std::sync::MutexGuard<'static, ()> {
    WHOLE_MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}
