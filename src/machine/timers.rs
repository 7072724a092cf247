//! The units that systemd timers start: the scheduled jobs of a systemd
//! host, as cron jobs are on others. Read from the timer unit files,
//! which only root can write.

use std::collections::HashSet;
use std::path::Path;

/// Where systemd looks for system units, under the system root.
const UNIT_DIRS: [&str; 8] = [
    "etc/systemd/system",
    "run/systemd/system",
    "run/systemd/transient",
    "run/systemd/generator",
    "run/systemd/generator.late",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// Every unit a `.timer` file starts: its `Unit=`, else the `.service` of
/// the same name. Timers enabled as instances of a template
/// (`*.wants/foo@bar.timer`) start `foo@bar.service`.
pub fn started_units(root: &Path) -> HashSet<String> {
    let mut units = HashSet::new();
    for dir in UNIT_DIRS.iter().map(|d| root.join(d)) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".wants") {
                for wanted in std::fs::read_dir(entry.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    add(
                        &mut units,
                        &wanted.file_name().to_string_lossy(),
                        &wanted.path(),
                    );
                }
            } else {
                add(&mut units, &name, &entry.path());
            }
        }
    }
    units
}

fn add(units: &mut HashSet<String>, name: &str, path: &Path) {
    let Some(stem) = name.strip_suffix(".timer") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut in_timer = false;
    let mut unit = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_timer = line == "[Timer]";
        } else if in_timer && let Some(value) = line.strip_prefix("Unit=") {
            unit = Some(value.trim().to_string());
        }
    }
    // A template's Unit= names no instance; the instance is this timer's.
    let unit = unit
        .filter(|u| !u.contains("%i") && !u.contains("@."))
        .unwrap_or_else(|| format!("{stem}.service"));
    units.insert(unit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_name_their_units() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let lib = root.join("lib/systemd/system");
        let etc = root.join("etc/systemd/system/timers.target.wants");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(lib.join("logrotate.timer"), "[Timer]\nOnCalendar=daily\n").unwrap();
        std::fs::write(
            lib.join("apt-daily.timer"),
            "[Unit]\nUnit=nothing.service\n[Timer]\nOnCalendar=*-*-* 6,18:00\nUnit=apt-daily.service\n",
        )
        .unwrap();
        std::fs::write(
            lib.join("backup.timer"),
            "[Timer]\nUnit=nightly-backup.service\n",
        )
        .unwrap();
        std::fs::write(lib.join("snap@.timer"), "[Timer]\nUnit=snap@%i.service\n").unwrap();
        std::os::unix::fs::symlink(lib.join("snap@.timer"), etc.join("snap@home.timer")).unwrap();
        std::fs::write(lib.join("nginx.service"), "[Service]\n").unwrap();
        let units = started_units(root);
        let mut units: Vec<_> = units.into_iter().collect();
        units.sort();
        assert_eq!(
            units,
            [
                "apt-daily.service",
                "logrotate.service",
                "nightly-backup.service",
                "snap@.service",
                "snap@home.service"
            ]
        );
    }
}
