//! The wiring operators paste, driven through the real peers on loopback:
//! Debian's nrpe and check_nrpe (nagios-nrpe-server, nagios-nrpe-plugin),
//! prometheus-node-exporter reading the textfile output, and the non-root
//! agent's failure modes (hidepid, an unreadable baseline).

use crate::common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NRPE: &str = "/usr/sbin/nrpe";
const CHECK_NRPE: &str = "/usr/lib/nagios/plugins/check_nrpe";
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited early: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// psdiff as a shipped command line names it, pointed at a test baseline
/// and tree: `[sudo -n] /usr/bin/psdiff ARGS` becomes `BIN --db ..
/// --proc-root .. ARGS` (sudo's part is the live Debian suite's).
fn localize(line: &str, db: &Path, proc: &Path) -> String {
    line.replace("/usr/bin/sudo -n /usr/bin/psdiff", "/usr/bin/psdiff")
        .replace(
            "/usr/bin/psdiff",
            &format!(
                "{} --config /dev/null --db {} --proc-root {} --passwd {}",
                env!("CARGO_BIN_EXE_psdiff"),
                db.display(),
                proc.display(),
                fixtures().join("passwd").display()
            ),
        )
}

/// A readable-by-all folder with a baseline of the `defaults` fixture and
/// a copy of that tree in which rsyslogd died.
fn world_readable_setup(tag: &str) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new(tag);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("psdiff.db");
    assert!(
        on_tree(&fixtures().join("defaults/proc"), &db)
            .arg("write")
            .status()
            .unwrap()
            .success()
    );
    let proc = copy_fixture("defaults", dir.path());
    std::fs::remove_dir_all(proc.join("540")).unwrap();
    (dir, db, proc)
}

fn nrpe_runs_the_shipped_commands_for_check_nrpe() {
    need_file(NRPE, "nagios-nrpe-server");
    need_file(CHECK_NRPE, "nagios-nrpe-plugin");
    let (dir, db, proc) = world_readable_setup("nrpe");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/etc/nagios/nrpe_psdiff.cfg"
    ))
    .unwrap();
    let commands = dir.path().join("psdiff.cfg");
    std::fs::write(&commands, localize(&shipped, &db, &proc)).unwrap();
    let port = free_port();
    let config = dir.path().join("nrpe.cfg");
    std::fs::write(
        &config,
        format!(
            "server_port={port}\nserver_address=127.0.0.1\nallowed_hosts=127.0.0.1\nnrpe_user=nagios\nnrpe_group=nagios\n\
             pid_file={}\ndont_blame_nrpe=0\ncommand_timeout=30\nconnection_timeout=30\ninclude={}\n",
            dir.path().join("nrpe.pid").display(),
            commands.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(NRPE)
        .args(["-c", config.to_str().unwrap(), "-n", "-f"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    let _server = Server(child);
    let ask = |command: &str| {
        let out = Command::new(CHECK_NRPE)
            .args([
                "-n",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "30",
                "-c",
                command,
            ])
            .output()
            .unwrap();
        (out.status.code().unwrap(), stdout(&out))
    };
    let rsyslog = "-     /usr/sbin/rsyslogd -n -iNONE  {user=root}";
    let (code, out) = ask("check_psdiff");
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        out,
        format!(
            "PSDIFF CRITICAL - 1 missing, 0 extra | missing=1;;1;0; extra=0;1;;0;\n{rsyslog}\n"
        )
    );
    let (code, out) = ask("check_psdiff_extra");
    assert_eq!(
        (code, out.as_str()),
        (0, "PSDIFF OK - 0 extra | extra=0;1;;0;\n")
    );
    let (code, out) = ask("check_psdiff_missing");
    assert_eq!(code, 2, "{out}");
    // check without [[check]] tables is a configuration error: UNKNOWN.
    let (code, out) = ask("check_psdiff_procs");
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("PROCS UNKNOWN - no checks"), "{out}");
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn node_exporter_serves_the_textfile_output() {
    need_file(NODE_EXPORTER, "prometheus-node-exporter");
    let (dir, db, proc) = world_readable_setup("textfile");
    let textfiles = dir.path().join("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    // The systemd unit's command, as shipped.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/etc/systemd/psdiff-textfile.service"
    ))
    .unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let exec = localize(exec, &db, &proc).replace(
        "/var/lib/prometheus/node-exporter",
        textfiles.to_str().unwrap(),
    );
    let argv: Vec<&str> = exec.split_whitespace().collect();
    let status = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "differences found; the unit says SuccessExitStatus=1"
    );
    std::fs::write(
        dir.path().join("checks.toml"),
        "[[check]]\nname = \"rsyslog\"\nmatch = { comm = \"rsyslogd\" }\ncount = \"1-1\"\n",
    )
    .unwrap();
    let status = on_tree(&proc, &db)
        .args(["check", "--format", "prometheus", "--output"])
        .arg(textfiles.join("psdiff_check.prom"))
        .arg("--rules")
        .arg(dir.path().join("checks.toml"))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));

    let port = free_port();
    let mut child = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child);
    let _server = Server(child);
    let metrics = http_get(port, "/metrics");
    for series in [
        "psdiff_missing_lines 1\n",
        "psdiff_extra_lines 0\n",
        "psdiff_baseline_present 1\n",
        "psdiff_up 1\n",
        "psdiff_check_failed{check=\"rsyslog\"} 1\n",
        "psdiff_check_count{check=\"rsyslog\",group=\"rsyslog\"} 0\n",
        "psdiff_check_up 1\n",
    ] {
        assert!(
            metrics.contains(series),
            "{series} not in node_exporter's /metrics:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("\nnode_textfile_scrape_error 0\n"),
        "{metrics}"
    );
}

fn icinga_command_runs_the_same_psdiff() {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/etc/icinga2/psdiff.conf"
    ))
    .unwrap();
    for command in conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("command = [ "))
    {
        let argv: Vec<String> = command
            .trim_end_matches(" ]")
            .split(", ")
            .map(|a| a.trim_matches('"').to_string())
            .collect();
        assert_eq!(argv[0], "/usr/bin/psdiff");
        // The same arguments are valid for this psdiff.
        let dir = TempDir::new("icinga");
        let out = on_tree(&fixtures().join("defaults/proc"), &dir.path().join("db"))
            .args(&argv[1..])
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
    }
}

const HIDEPID: &str = r#"
mount -o remount,hidepid=2 /proc
echo ==hidden==; setpriv --reuid=65534 --regid=65534 --clear-groups "$PSDIFF" --db "$WORK/psdiff.db" show-missing 2>&1; echo "exit $?"
mount -o remount,hidepid=2,gid=4242 /proc
echo ==group==; setpriv --reuid=65534 --regid=65534 --groups=4242 "$PSDIFF" dump 2>&1 >/dev/null; echo "exit $?"
echo ==group-no-exe==; setpriv --reuid=65534 --regid=65534 --groups=4242 "$PSDIFF" --config "$WORK/no-exe.toml" dump >/dev/null; echo "exit $?"
chmod 600 "$WORK/psdiff.db"
echo ==unreadable==; setpriv --reuid=65534 --regid=65534 --groups=4242 "$PSDIFF" --db "$WORK/psdiff.db" show-missing 2>&1; echo "exit $?"
"#;

fn a_non_root_agent_is_told_how_to_fix_hidepid_and_permissions() {
    need_live();
    let work = TempDir::new("hidepid");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sleeper = build_sleeper(work.path());
    std::fs::write(
        work.path().join("psdiff.db"),
        "root  {user=root}\n  INIT  {user=root}\n",
    )
    .unwrap();
    std::fs::write(work.path().join("no-exe.toml"), "defaults = false\n").unwrap();
    let out = run_in_pid_namespace(HIDEPID, work.path(), &sleeper);
    let text = stdout(&out);
    let hidden = section(&text, "hidden");
    assert!(hidden.starts_with("psdiff: /proc is mounted with hidepid=invisible: as user nobody psdiff would see only its own processes"), "{hidden}");
    assert!(
        hidden.contains("gid=GROUP")
            && hidden.contains("the lines are in /usr/share/psdiff/sudoers"),
        "{hidden}"
    );
    assert!(hidden.ends_with("exit 3\n"), "{hidden}");
    // A member of the gid= group sees every process, but not which
    // program each runs, which the built-in rules rest on: it is told to
    // run psdiff as root. Rules that need no exe work for it.
    let group = section(&text, "group");
    assert!(
        group.starts_with("psdiff: psdiff runs as user nobody, which may not read which program other users' processes run (/proc/PID/exe)"),
        "{group}"
    );
    assert!(group.contains("/usr/share/psdiff/sudoers"), "{group}");
    assert!(group.ends_with("exit 3\n"), "{group}");
    assert_eq!(section(&text, "group-no-exe"), "exit 0\n");
    let unreadable = section(&text, "unreadable");
    assert!(
        unreadable
            .starts_with("psdiff: psdiff runs as user nobody, which may not read the baseline "),
        "{unreadable}"
    );
    assert!(unreadable.ends_with("exit 3\n"), "{unreadable}");
}

crate::tests![
    nrpe_runs_the_shipped_commands_for_check_nrpe,
    node_exporter_serves_the_textfile_output,
    icinga_command_runs_the_same_psdiff,
    a_non_root_agent_is_told_how_to_fix_hidepid_and_permissions,
];
