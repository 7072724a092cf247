//! Containers of a real runtime (Debian's docker.io; the image is made
//! locally with `docker import` of busybox, as no registry is reachable):
//! each process is attributed to its container, the shim's line carries
//! the container's name, a container made anew under its name raises
//! nothing, one removed is missing and a new one extra.

use crate::common::*;
use std::process::Command;

pub const IMAGE: &str = "psdiff-test/busybox:1";

pub fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output();
    match out {
        Ok(out) => (
            out.status.success(),
            format!("{}{}", stdout(&out), stderr(&out)),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// A container running `sleep SECONDS` (a number no other test uses, so
/// its lines are told apart from the host's other processes).
fn run(name: &str, seconds: &str) {
    let _ = docker(&["rm", "-f", name]);
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        IMAGE,
        "/bin/sleep",
        seconds,
    ]);
    assert!(ok, "docker run {name}: {out}");
}

/// The image: busybox (Debian's busybox-static) and its applets.
pub fn import_image(dir: &std::path::Path) -> Result<(), String> {
    if docker(&["image", "inspect", IMAGE]).0 {
        return Ok(());
    }
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::fs::copy("/bin/busybox", bin.join("busybox")).map_err(|e| e.to_string())?;
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(|e| e.to_string())?;
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import - {IMAGE} >/dev/null",
            dir.join("rootfs").display()
        ))
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "docker import failed".into())
}

/// The lines of `show` that are about the test's containers.
fn ours(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("psdiff-it-") || l.contains("/bin/sleep 36"))
        .map(str::to_string)
        .collect()
}

fn containers_are_named_and_followed_across_re_creation() {
    let root = nix::unistd::geteuid().is_root();
    let daemon = docker(&["info"]);
    if !root || !daemon.0 || !std::path::Path::new("/bin/busybox").exists() {
        skip("root, a running dockerd (Debian's docker.io) and /bin/busybox (busybox-static)");
    }
    let dir = TempDir::new("containers");
    import_image(dir.path()).unwrap();
    let names = ["psdiff-it-web", "psdiff-it-db", "psdiff-it-new"];
    let cleanup = || {
        for name in names {
            let _ = docker(&["rm", "-f", name]);
        }
    };
    cleanup();
    run("psdiff-it-web", "3601");
    run("psdiff-it-db", "3602");
    let db = dir.path().join("psdiff.db");
    let psdiff_on_host = |args: &[&str]| {
        let out = psdiff().env("PSDIFF_DB", &db).args(args).output().unwrap();
        stdout(&out)
    };
    let dump = psdiff_on_host(&["dump", "--format", "json"]);
    let lines: Vec<serde_json::Value> = serde_json::from_str(&dump).unwrap();
    let sleeper = lines
        .iter()
        .find(|l| l["cmdline"] == "/bin/sleep 3601")
        .unwrap_or_else(|| panic!("no container process in {dump}"));
    assert_eq!(sleeper["container"]["runtime"], "docker", "{sleeper}");
    assert_eq!(sleeper["container"]["name"], "psdiff-it-web", "{sleeper}");
    let text = psdiff_on_host(&["dump"]);
    assert!(
        text.contains(" -id psdiff-it-web -address "),
        "the shim is named by its container:\n{text}"
    );
    psdiff_on_host(&["write"]);

    // Made anew under its name, with a new id: nothing to report.
    run("psdiff-it-web", "3601");
    let shown = psdiff_on_host(&["show", "--retry"]);
    assert_eq!(ours(&shown), Vec::<String>::new(), "{shown}");

    // Removed: missing. A new one: extra.
    let _ = docker(&["rm", "-f", "psdiff-it-db"]);
    run("psdiff-it-new", "3603");
    let missing = ours(&psdiff_on_host(&["show-missing", "--retry"]));
    let extra = ours(&psdiff_on_host(&["show-extra", "--retry"]));
    cleanup();
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(
        missing[0].starts_with(
            "-     /usr/bin/containerd-shim-runc-v2 -namespace moby -id psdiff-it-db "
        ),
        "{missing:?}"
    );
    assert_eq!(missing[1], "-       /bin/sleep 3602  {user=root}");
    assert_eq!(extra.len(), 2, "{extra:?}");
    assert!(
        extra[0].starts_with(
            "+     /usr/bin/containerd-shim-runc-v2 -namespace moby -id psdiff-it-new "
        ),
        "{extra:?}"
    );
    assert_eq!(extra[1], "+       /bin/sleep 3603  {user=root}");
}

crate::tests![containers_are_named_and_followed_across_re_creation,];
