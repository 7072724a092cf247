//! README.md is the operator's guide: every `toml` block must be a valid
//! config, and every `sh` block runs, in order, in a sandbox: a PID and
//! mount namespace with its own copy of /etc, an empty /var/lib and
//! /usr/lib/mon, and a `sudo` that just runs the command. A command may
//! exit 0 or 1 (something to report); 2 or 3 fails the block.

use crate::common::*;
use std::path::Path;

/// The fenced blocks of README.md in `lang`, with the line they start on.
fn blocks(lang: &str) -> Vec<(usize, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut found = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        match &mut current {
            None if line.trim_start().strip_prefix("```") == Some(lang) => {
                current = Some((n + 1, String::new()))
            }
            Some(_) if line.trim_start() == "```" => found.push(current.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(
        current.is_none(),
        "an unclosed ```{lang} block in README.md"
    );
    found
}

fn every_toml_block_is_a_valid_config() {
    let blocks = blocks("toml");
    assert!(
        blocks.len() >= 6,
        "expected the README's config examples, found {}",
        blocks.len()
    );
    let dir = TempDir::new("readme-toml");
    for (line, text) in blocks {
        let file = dir.path().join(format!("readme-{line}.toml"));
        std::fs::write(&file, &text).unwrap();
        let (code, out, err) = run(psdiff()
            .arg("--config")
            .arg(&file)
            .args(["config", "check"]));
        assert_eq!(code, 0, "README.md:{line}: {err}\n{text}");
        assert!(out.starts_with("OK: "), "README.md:{line}: {out}");
    }
}

const SANDBOX: &str = r#"
set -u
cp -a /etc "$WORK/etc" && mount --bind "$WORK/etc" /etc
mkdir -p "$WORK/var-lib" && mount --bind "$WORK/var-lib" /var/lib
mkdir -p /usr/lib/mon && mount -t tmpfs tmpfs /usr/lib/mon
mkdir -p "$WORK/shim"
ln -sf "$PSDIFF" "$WORK/shim/psdiff"
printf '#!/bin/sh\nexec "$@"\n' > "$WORK/shim/sudo" && chmod 755 "$WORK/shim/sudo"
export PATH="$WORK/shim:$PATH"
unset PSDIFF_CONFIG
cd "$WORK"
for block in "$WORK"/blocks/*.sh; do
    # Markers are built at run time: the script's own text (INIT's line
    # in a dump) must not contain them.
    printf '@@%s %s@@\n' block "$(basename "$block" .sh)"
    (
        set -E -o pipefail
        trap 'rc=$?; if [ $rc -gt 1 ]; then echo "exit $rc from: $BASH_COMMAND" >&2; exit 99; fi' ERR
        source "$block"
    ) 2>&1
    printf '@@%s %s@@\n' status "$?"
done
"#;

fn every_sh_block_runs() {
    need_live();
    let blocks = blocks("sh");
    assert!(
        blocks.len() >= 8,
        "expected the README's commands, found {}",
        blocks.len()
    );
    let work = TempDir::new("readme-sh");
    let sleeper = build_sleeper(work.path());
    std::fs::create_dir(work.path().join("blocks")).unwrap();
    for (line, text) in &blocks {
        std::fs::write(work.path().join(format!("blocks/{line:05}.sh")), text).unwrap();
    }
    let out = run_in_pid_namespace(SANDBOX, work.path(), &sleeper);
    let text = stdout(&out);
    for (line, block) in &blocks {
        let marker = format!("@@block {line:05}@@\n");
        let start = text
            .find(&marker)
            .unwrap_or_else(|| panic!("README.md:{line} did not run:\n{text}\n{}", stderr(&out)));
        let rest = &text[start + marker.len()..];
        let end = rest.find("@@status ").unwrap();
        let status = &rest[end..rest[end..].find('\n').map_or(rest.len(), |e| end + e)];
        assert_eq!(
            status,
            "@@status 0@@",
            "README.md:{line} failed:\n{block}\n--- output\n{}",
            &rest[..end]
        );
    }
    // The commands ran against the sandbox, not this machine.
    assert!(!Path::new("/etc/psdiff.d/50-local.toml").exists());
}

crate::tests![every_toml_block_is_a_valid_config, every_sh_block_runs,];
