//! The baseline is never lost: SIGKILL at random moments of `write`,
//! concurrent writers, a full disk, a read-only mount, no permission.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn dump_of(tree: &str) -> String {
    std::fs::read_to_string(fixtures().join(format!("{tree}.expected"))).unwrap()
}

fn writer(tree: &str, db: &Path) -> Command {
    let mut cmd = on_tree(&fixtures().join(tree).join("proc"), db);
    cmd.arg("write");
    cmd
}

/// A small deterministic-per-run pseudo-random sequence (xorshift).
struct Rng(u64);

impl Rng {
    /// Seeded from the clock (never 0, which xorshift cannot leave).
    fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Rng(nanos as u64 | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn sigkill_at_random_moments_leaves_a_whole_baseline() {
    let dir = TempDir::new("sigkill");
    let db = dir.path().join("psdiff.db");
    let old = dir.path().join("psdiff.old");
    let whole = [dump_of("defaults"), dump_of("edge")];
    assert!(writer("defaults", &db).status().unwrap().success());
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    // Spread the kills over a whole write: 0 to 1.2 times its duration.
    let mut durations: Vec<Duration> = (0..5)
        .map(|i| {
            let started = std::time::Instant::now();
            let tree = if i % 2 == 0 { "edge" } else { "defaults" };
            assert!(writer(tree, &db).output().unwrap().status.success());
            started.elapsed()
        })
        .collect();
    durations.sort();
    let span = durations[2].as_micros() as u64 * 6 / 5;
    let (mut killed, mut finished) = (0, 0);
    for i in 0..500 {
        let tree = if i % 2 == 0 { "edge" } else { "defaults" };
        let mut child = writer(tree, &db)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(span)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        } else {
            killed += 1;
        }
        let now = std::fs::read_to_string(&db).expect("the baseline path never goes missing");
        assert!(
            whole.contains(&now),
            "iteration {i} (seed {seed}): the baseline is not whole:\n{now}"
        );
        if let Ok(kept) = std::fs::read_to_string(&old) {
            assert!(
                whole.contains(&kept),
                "iteration {i} (seed {seed}): .old is not whole"
            );
        }
    }
    eprintln!("{killed} writes killed, {finished} finished (seed {seed}, kills within {span} µs)");
    assert!(
        killed > 20,
        "the kills must land inside writes: only {killed} did"
    );
    assert!(
        finished > 5,
        "some writes must get through: only {finished} did"
    );
    // The next write cleans up what killed writers left behind, also when
    // it has nothing to change.
    assert!(writer("edge", &db).status().unwrap().success());
    std::fs::write(
        dir.path().join(".psdiff.db.new.00c0ffee4194301a"),
        "half a baseline",
    )
    .unwrap();
    std::fs::write(dir.path().join(".psdiff.db.old.00c0ffee4194302b"), "").unwrap();
    std::fs::write(dir.path().join(".psdiff.db.new.4194303"), "from psdiff 0.1").unwrap();
    let out = writer("edge", &db).output().unwrap();
    assert!(
        stdout(&out).starts_with("No changes to "),
        "{}",
        stdout(&out)
    );
    let temps: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".psdiff.db."))
        .collect();
    assert!(temps.is_empty(), "stale temporary files: {temps:?}");
}

fn sigkill_during_manual_edits_leaves_a_whole_baseline() {
    let dir = TempDir::new("sigkill-manual");
    let db = dir.path().join("psdiff.db");
    let proc = fixtures().join("defaults/proc");
    let edit = |verb: &str| {
        let mut cmd = on_tree(&proc, &db);
        cmd.args(["manual", verb, "www-data", "/usr/sbin/nginx -g daemon off;"]);
        cmd
    };
    assert!(writer("defaults", &db).status().unwrap().success());
    let without = std::fs::read_to_string(&db).unwrap();
    // Whole means: the original baseline plus any number of copies of
    // the edited line (two adds make two copies, as two daemons would).
    let line = "    /usr/sbin/nginx -g daemon off;  {user=www-data}";
    let whole = |text: &str| {
        let rest: String = text
            .lines()
            .filter(|l| *l != line)
            .map(|l| format!("{l}\n"))
            .collect();
        rest == without && text.ends_with('\n')
    };
    assert!(edit("add").status().unwrap().success());
    let started = std::time::Instant::now();
    assert!(edit("remove").status().unwrap().success());
    let span = started.elapsed().as_micros() as u64 * 6 / 5;
    let mut rng = Rng::from_clock();
    let seed = rng.0;
    let (mut killed, mut finished) = (0, 0);
    for i in 0..500 {
        let verb = if rng.below(2) == 0 { "add" } else { "remove" };
        let mut child = edit(verb)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(span)));
        let _ = child.kill();
        if child.wait().unwrap().code().is_some() {
            finished += 1;
        } else {
            killed += 1;
        }
        let now = std::fs::read_to_string(&db).expect("the baseline path never goes missing");
        assert!(
            whole(&now),
            "iteration {i} (seed {seed}): the baseline is not whole:\n{now}"
        );
        if let Ok(kept) = std::fs::read_to_string(dir.path().join("psdiff.old")) {
            assert!(
                whole(&kept),
                "iteration {i} (seed {seed}): .old is not whole:\n{kept}"
            );
        }
    }
    eprintln!("manual: {killed} killed, {finished} finished (seed {seed}, kills within {span} µs)");
    assert!(
        killed > 20 && finished > 20,
        "kills must land inside and after edits: {killed} killed, {finished} finished"
    );
}

fn concurrent_writers_leave_one_whole_baseline() {
    let dir = TempDir::new("concurrent");
    let db = dir.path().join("psdiff.db");
    let whole = [dump_of("defaults"), dump_of("edge")];
    for round in 0..5 {
        let children: Vec<_> = (0..12)
            .map(|i| {
                let tree = if (i + round) % 2 == 0 {
                    "edge"
                } else {
                    "defaults"
                };
                writer(tree, &db)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(
                child.wait().unwrap().success(),
                "every writer gets its turn"
            );
        }
        assert!(whole.contains(&std::fs::read_to_string(&db).unwrap()));
        assert!(whole.contains(&std::fs::read_to_string(dir.path().join("psdiff.old")).unwrap()));
    }
}

/// Full disk, read-only mount and no permission, on a tmpfs of our own in
/// a mount namespace.
const DISK_SCRIPT: &str = r#"
set -u
D="$WORK/mnt"
mkdir -p "$D"
mount -t tmpfs -o size=256k tmpfs "$D" || exit 90
export PSDIFF_DB="$D/psdiff.db"
PSDIFF_PROC_ROOT="$TREE_A" "$PSDIFF" write >/dev/null || exit 91
cp "$D/psdiff.db" "$WORK/a"

dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null
PSDIFF_PROC_ROOT="$TREE_B" "$PSDIFF" write 2>"$WORK/full.err"; echo "full disk: $?"
cmp -s "$D/psdiff.db" "$WORK/a" && echo "full disk: baseline intact"
rm -f "$D/fill"

chmod 755 "$D"
PSDIFF_PROC_ROOT="$TREE_B" setpriv --reuid=65534 --regid=65534 --clear-groups "$PSDIFF" write 2>"$WORK/perm.err"; echo "no permission: $?"
cmp -s "$D/psdiff.db" "$WORK/a" && echo "no permission: baseline intact"

mount -o remount,ro "$D"
PSDIFF_PROC_ROOT="$TREE_B" "$PSDIFF" write 2>"$WORK/ro.err"; echo "read-only: $?"
cmp -s "$D/psdiff.db" "$WORK/a" && echo "read-only: baseline intact"
PSDIFF_PROC_ROOT="$TREE_A" "$PSDIFF" show; echo "show on read-only: $?"
"#;

fn full_disk_read_only_and_no_permission_leave_the_baseline_untouched() {
    let probe = Command::new("unshare").args(["--mount", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip("unshare --mount (root, util-linux)");
    }
    let work = TempDir::new("disk");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            DISK_SCRIPT,
        ])
        .env("WORK", work.path())
        .env("PSDIFF", env!("CARGO_BIN_EXE_psdiff"))
        .env("PSDIFF_CONFIG", "/dev/null")
        .env("PSDIFF_PASSWD", fixtures().join("passwd"))
        .env("TREE_A", fixtures().join("defaults/proc"))
        .env("TREE_B", fixtures().join("edge/proc"))
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "full disk: 3\nfull disk: baseline intact\n\
         no permission: 3\nno permission: baseline intact\n\
         read-only: 3\nread-only: baseline intact\n\
         show on read-only: 0\n",
        "stderr: {}",
        stderr(&out)
    );
    let err = |name: &str| std::fs::read_to_string(work.path().join(name)).unwrap();
    for (file, cause) in [
        ("full.err", "No space left on device"),
        ("perm.err", "Permission denied"),
        ("ro.err", "Read-only file system"),
    ] {
        let text = err(file);
        assert_eq!(text.lines().count(), 1, "{file}: {text}");
        assert!(
            text.starts_with("psdiff: cannot write the baseline "),
            "{file}: {text}"
        );
        assert!(
            text.contains(cause) && text.contains("the old baseline is untouched"),
            "{file}: {text}"
        );
    }
}

crate::tests![
    sigkill_at_random_moments_leaves_a_whole_baseline,
    sigkill_during_manual_edits_leaves_a_whole_baseline,
    concurrent_writers_leave_one_whole_baseline,
    full_disk_read_only_and_no_permission_leave_the_baseline_untouched,
];
