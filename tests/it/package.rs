//! The Debian package that packaging/build-deb.sh builds (.ci/run does,
//! before the tests): its contents, its conffiles, and psdiff run from it
//! in a scratch root.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn package() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    debs.pop()
}

fn the_package_installs_what_operators_need() {
    let Some(deb) = package() else {
        skip("target/debian/*.deb, which packaging/build-deb.sh builds (.ci/run does)");
    };
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb)).1;
    for path in [
        "./usr/bin/psdiff",
        "./etc/psdiff.toml",
        "./etc/psdiff.d/",
        "./etc/zabbix/zabbix_agentd.conf.d/userparameter_psdiff.conf",
        "./usr/share/psdiff/zabbix/psdiff_template.yaml",
        "./usr/share/psdiff/nagios/nrpe_psdiff.cfg",
        "./usr/share/psdiff/icinga2/psdiff.conf",
        "./lib/systemd/system/psdiff-textfile.service",
        "./lib/systemd/system/psdiff-textfile.timer",
        "./lib/systemd/system/psdiff-serve.service",
        "./lib/systemd/system/psdiff-watch.service",
        "./usr/share/man/man1/psdiff.1.gz",
        "./usr/share/bash-completion/completions/psdiff",
        "./usr/share/zsh/vendor-completions/_psdiff",
        "./usr/share/fish/vendor_completions.d/psdiff.fish",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "{path} missing from the package:\n{listing}"
        );
    }
    let root = TempDir::new("deb-root");
    let control = root.path().join("DEBIAN");
    assert!(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(root.path())
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(&control)
            .status()
            .unwrap()
            .success()
    );
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/psdiff.toml"),
        "{conffiles}"
    );

    let bin = root.path().join("usr/bin/psdiff");
    let (code, out, _) = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        (code, out.trim()),
        (0, concat!("psdiff ", env!("CARGO_PKG_VERSION")))
    );
    // The shipped /etc/psdiff.toml is the defaults, commented: it parses,
    // and the dump is the built-in rules' dump.
    let (code, out, err) = run(Command::new(&bin)
        .arg("--config")
        .arg(root.path().join("etc/psdiff.toml"))
        .arg("--proc-root")
        .arg(fixtures().join("defaults/proc"))
        .arg("--passwd")
        .arg(fixtures().join("passwd"))
        .arg("dump"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        std::fs::read_to_string(fixtures().join("defaults.expected")).unwrap()
    );
    let man = run(Command::new("gzip")
        .arg("-dc")
        .arg(root.path().join("usr/share/man/man1/psdiff.1.gz")))
    .1;
    assert!(man.contains(".TH psdiff 1"), "{man}");
}

crate::tests![the_package_installs_what_operators_need,];
