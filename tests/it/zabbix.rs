//! The shipped UserParameter file, run by the real Zabbix agent
//! (`zabbix_agentd -t KEY` runs an item as the agent does).

use crate::common::*;

fn zabbix_items_report_missing_and_extra() {
    let agent = ZabbixAgent::new();
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
