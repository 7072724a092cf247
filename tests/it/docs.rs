//! The man page and `--help`, generated from the same definitions.

use crate::common::*;
use std::process::Command;

fn man_page_has_every_command_and_option() {
    let page = stdout(&psdiff().arg("man").output().unwrap());
    // Every command and each of its options, by the names --help gives.
    let help = stdout(&psdiff().arg("--help").output().unwrap());
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 15, "{help}");
    for command in commands {
        assert!(
            page.contains(&format!(".SS \"psdiff {}\"", command.replace('-', "\\-"))),
            "no section for {command}"
        );
        let help = stdout(&psdiff().args([command, "--help"]).output().unwrap());
        for long in help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.trim_end_matches([',', '.']))
        {
            let roff = long.replace('-', "\\-");
            assert!(
                page.contains(&roff),
                "{command} {long} is not in the man page"
            );
        }
    }
    for section in [
        ".SH \"GLOBAL OPTIONS\"",
        ".SH CONFIGURATION",
        ".SS \"The match language\"",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        "PSDIFF_TOKENS",
        ".SH FILES",
        ".SH EXAMPLES",
    ] {
        assert!(page.contains(section), "{section} missing");
    }
    // No page it names is missing: it names none of its own but itself.
    assert!(!page.contains("psdiff\\-show(1)") && !page.contains("psdiff-show(1)"));
    // man itself reads it without a warning.
    if Command::new("man").arg("--version").output().is_ok() {
        let dir = TempDir::new("man");
        let file = dir.path().join("psdiff.1");
        std::fs::write(&file, &page).unwrap();
        let out = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_STDERR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    }
}

/// Every environment variable psdiff reads is in `--help` and the man
/// page, and the exit codes read the same in README.md, the man page and
/// `--help` as in their one source, `exit::CODES`.
fn environment_and_exit_codes_never_drift() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut read = std::collections::BTreeSet::new();
    let mut sources = vec![root.join("src")];
    while let Some(dir) = sources.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for opener in ["env = \"", "var(\"", "var_os(\""] {
                    for (at, _) in text.match_indices(opener) {
                        let rest = &text[at + opener.len()..];
                        if let Some(name) = rest.split('"').next()
                            && name.starts_with("PSDIFF_")
                        {
                            read.insert(name.to_string());
                        }
                    }
                }
            }
        }
    }
    assert!(read.len() >= 6 && read.contains("PSDIFF_HOST"), "{read:?}");
    let help = stdout(&psdiff().arg("--help").output().unwrap());
    let page = stdout(&psdiff().arg("man").output().unwrap());
    for name in &read {
        assert!(help.contains(name.as_str()), "{name} is not in --help");
        assert!(
            page.contains(&format!("\\fB{name}\\fR")),
            "{name} is not in the man page"
        );
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table: Vec<String> = readme
        .lines()
        .skip_while(|l| *l != "### Exit codes")
        .filter(|l| l.starts_with("| ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_digit))
        .take_while(|l| !l.is_empty())
        .map(|l| l.replace('`', ""))
        .collect();
    let codes = psdiff::exit::CODES;
    assert_eq!(table.len(), codes.len(), "{table:?}");
    for ((code, meaning), row) in codes.iter().zip(&table) {
        assert_eq!(*row, format!("| {code} | {meaning} |"));
        assert!(page.contains(&meaning.replace('-', "\\-")), "{meaning}");
        let short = meaning.split([':', '(']).next().unwrap().trim();
        assert!(
            help.contains(&format!("{code} {short}")),
            "{code} {short}: {help}"
        );
    }
}

fn help_tells_global_options_apart_and_describes_positionals() {
    let help = stdout(&psdiff().args(["manual", "add", "--help"]).output().unwrap());
    let (own, global) = help
        .split_once("Global options:")
        .expect("a section of its own");
    assert!(
        global.contains("--proc-root") && !own.contains("--proc-root"),
        "{help}"
    );
    assert!(
        own.contains("<USER>") && own.contains("The user it runs as"),
        "{help}"
    );
    assert!(
        own.contains("<CMDLINE>") && own.contains("quoted as one argument"),
        "{help}"
    );
}

crate::tests![
    environment_and_exit_codes_never_drift,
    man_page_has_every_command_and_option,
    help_tells_global_options_apart_and_describes_positionals,
];
