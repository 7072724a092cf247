//! Issue 16's attacks, each made by an unprivileged user (nobody, through
//! setpriv) against psdiff running as root: none may borrow its root, blind
//! it, or turn it on someone else.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const NOBODY: u32 = 65534;

fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// The shipped sudoers lines, with the test binary for /usr/bin/psdiff and
/// nobody for the agents, installed in /etc/sudoers.d while it lives.
struct Sudoers(std::path::PathBuf);

impl Sudoers {
    fn install() -> Sudoers {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/sudoers/psdiff"),
        )
        .unwrap();
        let text = shipped
            .replace("/usr/bin/psdiff", env!("CARGO_BIN_EXE_psdiff"))
            .replace("zabbix ALL", "nobody ALL")
            .replace("nagios ALL", "nobody ALL");
        let path = Path::new("/etc/sudoers.d").join(format!("psdiff-test-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        let sudoers = Sudoers(path);
        let (code, out, err) = run(Command::new("visudo").arg("-c").arg("-f").arg(&sudoers.0));
        assert_eq!(code, 0, "visudo refuses the shipped lines: {out}{err}");
        sudoers
    }
}

impl Drop for Sudoers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The shipped sudoers lines let an agent run exactly the agent commands:
/// no other argument, no environment (issue 16, item 1).
fn sudo_runs_only_the_agent_commands() {
    need_root();
    need_file("/usr/bin/sudo", "sudo");
    need_file("/usr/sbin/visudo", "sudo");
    let _sudoers = Sudoers::install();
    let bin = env!("CARGO_BIN_EXE_psdiff");
    let sudo = |args: &[&str], env: &[(&str, &str)]| {
        let mut argv = vec!["sudo", "-n", bin];
        argv.extend_from_slice(args);
        let mut cmd = as_nobody(&argv);
        cmd.envs(env.iter().copied()).stdin(Stdio::null());
        run(&mut cmd)
    };
    for allowed in [
        &["show-missing", "--retry"][..],
        &["show-extra", "--retry", "--format", "nagios"],
        &["check", "--retry", "--format", "nagios"],
    ] {
        let (code, out, err) = sudo(allowed, &[]);
        assert!(!err.contains("sudo:"), "{allowed:?} refused: {err}");
        assert!(
            [0, 1, 2, 3].contains(&code),
            "{allowed:?}: {code} {out}{err}"
        );
    }
    for refused in [
        &["files", "--", "/usr/bin/id"][..],
        &["--db", "/etc/shadow", "show-missing"],
        &["show-missing", "--retry", "--db", "/etc/shadow"],
        &["show-missing", "--retry", "--config", "/tmp/evil.toml"],
        &["show-extra", "--retry", "--output", "/etc/motd"],
        &["show-missing"],
        &["serve", "--allow-control"],
    ] {
        let (code, out, err) = sudo(refused, &[]);
        assert_eq!(code, 1, "{refused:?} ran: {out}{err}");
        assert!(err.contains("sudo:"), "{refused:?}: {err}");
        assert!(!out.contains("root:"), "{out}");
    }
    // The environment is not passed on: PSDIFF_DB pointing at /etc/shadow
    // leaves psdiff on its own baseline, and it never prints the file.
    let (_, out, err) = sudo(
        &["show-missing", "--retry"],
        &[("PSDIFF_DB", "/etc/shadow")],
    );
    assert!(
        !out.contains("root:") && !err.contains("root:") && !err.contains("shadow"),
        "{out}{err}"
    );
}

/// `--output` into a folder its user owns: links planted at the file and
/// at every temp name they can guess are replaced, never written through
/// (issue 16, item 2).
fn planted_links_get_no_root_write() {
    need_root();
    let dir = TempDir::new("planted");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "secret\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let theirs = dir.path().join("textfile");
    std::fs::create_dir(&theirs).unwrap();
    chown_nobody(&theirs);
    let output = theirs.join("psdiff.prom");
    let planting = format!(
        "ln -s {v} {o}; for i in $(seq 1 4000); do ln -s {v} {d}/.psdiff.prom.$(( $$ + i )); ln -s {v} {d}/.psdiff.prom.new.$(( $$ + i )); done",
        v = victim.display(),
        o = output.display(),
        d = theirs.display()
    );
    let (code, _, err) = run(&mut as_nobody(&["sh", "-c", &planting]));
    assert_eq!(code, 0, "{err}");
    let db = dir.path().join("psdiff.db");
    let proc = fixtures().join("defaults/proc");
    assert_eq!(run(on_tree(&proc, &db).arg("write")).0, 0);
    let (code, _, err) = run(on_tree(&proc, &db)
        .args(["show", "--format", "prometheus", "--output"])
        .arg(&output));
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o7777, 0o600);
    let written = std::fs::symlink_metadata(&output).unwrap();
    assert!(
        written.is_file(),
        "the planted link is replaced by the file"
    );
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .contains("psdiff_up 1")
    );
}

/// Rules, drop-ins and tokens that someone else could change are refused,
/// with what to do (issue 16, item 3).
fn config_others_can_change_is_refused() {
    need_root();
    let dir = TempDir::new("untrusted");
    let config = dir.path().join("psdiff.toml");
    std::fs::write(&config, "").unwrap();
    let drop_ins = dir.path().join("psdiff.d");
    std::fs::create_dir(&drop_ins).unwrap();
    let planted = drop_ins.join("x.toml");
    std::fs::write(&planted, "[[check]]\nname = \"x\"\nmatch = { user = \"root\" }\ncount = \"0-\"\non_crit = { exec = [\"/usr/bin/id\"] }\n").unwrap();
    let check = || {
        run(psdiff()
            .env("PSDIFF_CONFIG", &config)
            .args(["config", "check"]))
    };
    assert_eq!(check().0, 0, "a root-owned 0644 drop-in is fine");

    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = check();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("x.toml") && err.contains("chmod go-w"),
        "{err}"
    );

    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).unwrap();
    chown_nobody(&planted);
    let (code, _, err) = check();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("belongs to nobody") && err.contains("chown root:"),
        "{err}"
    );

    std::fs::remove_file(&planted).unwrap();
    std::fs::set_permissions(&drop_ins, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (code, _, err) = check();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("psdiff.d") && err.contains("may be written by"),
        "{err}"
    );

    // --rules files and the token file alike.
    std::fs::set_permissions(&drop_ins, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rules = dir.path().join("checks.toml");
    std::fs::write(&rules, "").unwrap();
    chown_nobody(&rules);
    let (code, _, err) = run(psdiff().arg("check").arg("--rules").arg(&rules));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("belongs to nobody"), "{err}");
    let tokens = dir.path().join("tokens");
    assert_eq!(
        run(psdiff()
            .args(["token", "add", "a", "--tokens"])
            .arg(&tokens))
        .0,
        0
    );
    chown_nobody(&tokens);
    let (code, _, err) = run(psdiff().args(["token", "list", "--tokens"]).arg(&tokens));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("belongs to nobody"), "{err}");
}

/// A user's `exec -a` neither passes a name check for a daemon nor gets a
/// root process killed by a count over names (issue 16, item 4).
fn a_disguise_passes_no_check_and_kills_nothing() {
    need_root();
    let name = format!("psdiff-fake-{}", std::process::id());
    let argv0 = format!("/usr/sbin/{name}");
    let mut fake = as_nobody(&["bash", "-c", &format!("exec -a {argv0} sleep 600")])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = run(psdiff().args(["check", &format!("{name}:1-")]));
    assert_eq!(code, 1, "the disguise passed: {out}{err}");
    assert!(out.contains(&name), "{out}");

    let dir = TempDir::new("kill-by-name");
    let rules = dir.path().join("checks.toml");
    std::fs::write(
        &rules,
        "[[check]]\nname = \"sshd\"\nmatch = { command = \"sshd\" }\ncount = \"1-1\"\non_crit = { kill = true }\n",
    )
    .unwrap();
    let (code, _, err) = run(psdiff().arg("check").arg("--rules").arg(&rules));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`kill = true`") && err.contains("exe ="),
        "{err}"
    );
    fake.kill().unwrap();
    fake.wait().unwrap();
}

/// Titles a user chooses cannot forge what monitoring reads: no perfdata
/// injected into Nagios output, no bidi or zero-width characters (issue
/// 16, item 8).
fn titles_cannot_forge_the_output() {
    need_root();
    let dir = TempDir::new("forged");
    let db = dir.path().join("psdiff.db");
    let baseline = || {
        let mut cmd = psdiff();
        cmd.env("PSDIFF_DB", &db).env("PSDIFF_CONFIG", "/dev/null");
        cmd
    };
    assert_eq!(run(baseline().arg("write")).0, 0);
    let title = "/aaa | injected=99;1;1 \u{202e}gnp.exe\u{200b}";
    let mut forged = as_nobody(&["bash", "-c", &format!("exec -a '{title}' sleep 600")])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (_, out, err) = run(baseline().args(["show-extra", "--format", "nagios"]));
    forged.kill().unwrap();
    forged.wait().unwrap();
    assert!(
        out.contains("/aaa"),
        "the forged process is shown: {out}{err}"
    );
    assert_eq!(out.matches('|').count(), 1, "perfdata injected: {out}");
    assert!(
        out.contains("/aaa / injected=99"),
        "the bar is shown as a slash: {out}"
    );
    assert!(
        !out.contains('\u{202e}') && !out.contains('\u{200b}'),
        "{out:?}"
    );
}

/// A baseline path that is a FIFO or a device is an error at once, not a
/// hang or memory run out; a strict umask leaves the baseline readable by
/// the agents (issue 16, item 8).
fn baselines_are_regular_files_with_a_kept_mode() {
    let dir = TempDir::new("not-a-file");
    let proc = fixtures().join("defaults/proc");
    let fifo = dir.path().join("fifo.db");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for db in [fifo.as_path(), Path::new("/dev/zero")] {
        for verb in ["show", "write"] {
            let begun = Instant::now();
            let mut cmd = on_tree(&proc, db);
            cmd.arg(verb).stdin(Stdio::null());
            let (code, _, err) = run(&mut cmd);
            assert!(
                begun.elapsed() < Duration::from_secs(5),
                "{verb} {}: hung",
                db.display()
            );
            assert_eq!(code, 3, "{verb} {}: {err}", db.display());
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    let db = dir.path().join("psdiff.db");
    let strict = |verb: &str| {
        use std::os::unix::process::CommandExt;
        let mut cmd = on_tree(&proc, &db);
        cmd.arg(verb);
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o027);
                Ok(())
            });
        }
        cmd.status().unwrap()
    };
    assert!(strict("write").success());
    assert_eq!(std::fs::metadata(&db).unwrap().mode() & 0o777, 0o644);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(strict("write").success());
    assert_eq!(
        std::fs::metadata(&db).unwrap().mode() & 0o777,
        0o640,
        "the operator's mode is kept"
    );
}

/// A rewrite whose replacement would break the baseline's line format is
/// refused by `config check`, before any baseline is written.
fn a_replacement_with_a_newline_is_refused() {
    let dir = TempDir::new("newline");
    let config = dir.path().join("psdiff.toml");
    std::fs::write(
        &config,
        "[[rule]]\nname = \"split\"\nmatch = { comm = \"sleep\" }\naction = \"rewrite\"\npattern = '$'\nreplacement = \"\\n+ fake line\"\n",
    )
    .unwrap();
    let (code, _, err) = run(psdiff()
        .env("PSDIFF_CONFIG", &config)
        .args(["config", "check"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("psdiff.toml:1:1: rule \"split\": `replacement` holds '\\n'"),
        "{err}"
    );
}

crate::tests![
    sudo_runs_only_the_agent_commands,
    planted_links_get_no_root_write,
    config_others_can_change_is_refused,
    a_disguise_passes_no_check_and_kills_nothing,
    titles_cannot_forge_the_output,
    baselines_are_regular_files_with_a_kept_mode,
    a_replacement_with_a_newline_is_refused,
];
