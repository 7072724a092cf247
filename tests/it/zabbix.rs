//! The shipped UserParameter file, run by the real Zabbix agent
//! (`zabbix_agentd -t KEY` runs an item as the agent does).

use crate::common::*;
use std::path::Path;
use std::process::Command;

struct Agent {
    dir: TempDir,
}

impl Agent {
    fn new() -> Option<Agent> {
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
        Some(Agent { dir })
    }

    /// The item's value as the agent reports it: `KEY [t|VALUE]`.
    fn item(&self, key: &str, proc: &Path) -> String {
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
            .env("PSDIFF_PROC_ROOT", proc)
            .env("PSDIFF_PASSWD", fixtures().join("passwd"))
            .output()
            .unwrap();
        let text = stdout(&out);
        let value = text
            .split_once("[t|")
            .unwrap_or_else(|| panic!("no value for {key}: {text} {}", stderr(&out)))
            .1;
        value.trim_end().strip_suffix(']').unwrap().to_string()
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("psdiff.db")
    }
}

fn zabbix_items_report_missing_and_extra() {
    let Some(agent) = Agent::new() else { return };
    let tree = fixtures().join("defaults/proc");

    // No baseline yet: the missing item is not empty, so the trigger fires.
    assert!(
        agent
            .item("psdiff.missing", &tree)
            .starts_with("psdiff: no baseline at")
    );

    assert!(
        on_tree(&tree, &agent.db())
            .arg("write")
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(agent.item("psdiff.missing", &tree), "");
    assert_eq!(agent.item("psdiff.extra", &tree), "");

    // rsyslogd died: missing; and the JSON item says so too.
    let work = TempDir::new("zabbix-tree");
    let changed = copy_fixture("defaults", work.path());
    std::fs::remove_dir_all(changed.join("540")).unwrap();
    assert_eq!(
        agent.item("psdiff.missing", &changed),
        "-     /usr/sbin/rsyslogd -n -iNONE  {user=root}"
    );
    assert_eq!(agent.item("psdiff.extra", &changed), "");
    let json: serde_json::Value =
        serde_json::from_str(&agent.item("psdiff.json", &changed)).unwrap();
    assert_eq!(
        json["missing"][0]["cmdline"],
        "/usr/sbin/rsyslogd -n -iNONE"
    );
    assert_eq!(json["extra"].as_array().unwrap().len(), 0);

    // A broken check is never quiet: the error is the item's value.
    std::fs::write(agent.db(), b"\xff\xfe damaged\n").unwrap();
    assert!(agent.item("psdiff.missing", &tree).starts_with("psdiff: "));
}

fn template_has_the_items_and_triggers() {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/etc/zabbix/psdiff_template.yaml"
    ))
    .unwrap();
    assert!(template.contains("version: '6.0'"));
    for key in ["psdiff.missing", "psdiff.extra", "psdiff.json"] {
        assert!(template.contains(&format!("key: {key}\n")), "{key}");
    }
    for key in ["psdiff.missing", "psdiff.extra"] {
        assert!(
            template.contains(&format!(
                "'length(last(/psdiff/{key}))<>0 or nodata(/psdiff/{key},30m)=1'"
            )),
            "trigger of {key}"
        );
    }
}

crate::tests![
    zabbix_items_report_missing_and_extra,
    template_has_the_items_and_triggers,
];
