//! The live Debian suite (tests/debian/suite.sh): a Debian 12 and a
//! Debian 13 server booted with systemd, and a Debian 12 server booted
//! with sysvinit and no systemd, by systemd-nspawn, one after the other
//! (the machine has one name), their daemons started by their units or
//! init scripts, every check asked through the real agents. This runs
//! the reduced set; the full one is
//! `tests/debian/suite.sh --full --release 12|13|sysv`.

use crate::common::*;
use std::process::Command;

fn a_booted_debian_server_is_quiet_and_nothing_hides() {
    let missing: Vec<&str> = [
        "debootstrap",
        "systemd-nspawn",
        "nsenter",
        "ssh",
        "curl",
        "nc",
        "python3",
    ]
    .into_iter()
    .filter(|tool| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .collect();
    let root = nix::unistd::geteuid().is_root();
    if !root || !missing.is_empty() {
        skip(format!(
            "root and debootstrap, systemd-container, util-linux, openssh-client, curl, netcat-openbsd, python3 (missing: {}{})",
            missing.join(", "),
            if root { "" } else { "; not root" }
        ));
    }
    for release in ["12", "13", "sysv"] {
        let out = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/debian/suite.sh"
        ))
        .args(["--release", release])
        .env("PSDIFF_BIN", env!("CARGO_BIN_EXE_psdiff"))
        .output()
        .unwrap();
        let log = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "Debian {release}:\n{log}");
        assert!(
            log.contains(" passed, 0 failed\n"),
            "Debian {release}:\n{log}"
        );
    }
}

crate::tests![a_booted_debian_server_is_quiet_and_nothing_hides,];
