//! The integration tests: one binary (so the shared helpers build once),
//! one module per area, each test running the real psdiff binary.
//!
//! The harness is libtest-mimic's, so that a test whose prerequisite
//! (root, a Debian package, a namespace) is missing can say so and be
//! counted: outside CI it is skipped, and the run ends with the count
//! and the reasons; in CI (`CI` set) it fails, naming what is missing.
//! Each module lists its tests with `tests![...]`; one left out is dead
//! code, which the lints refuse.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Mutex;

use libtest_mimic::{Arguments, Trial};

mod common;

mod agents;
mod attacks;
mod baseline;
mod check;
mod containers;
mod crash;
mod debian;
mod docs;
mod dump;
mod errors;
mod evasions;
mod explain;
mod files;
mod hostile;
mod live;
mod package;
mod readme;
mod serve;
mod watch;
mod zabbix;

/// `pub fn tests()` of a module: its test functions, named as libtest
/// names them (`module::function`).
#[macro_export]
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        pub fn tests() -> Vec<libtest_mimic::Trial> {
            vec![$($crate::trial(
                concat!(module_path!(), "::", stringify!($name)),
                $name,
            )),*]
        }
    };
}

/// Tests skipped for a missing prerequisite, with why.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

pub fn trial(path: &str, test: fn()) -> Trial {
    let name = path.strip_prefix("it::").unwrap_or(path).to_string();
    let recorded = name.clone();
    Trial::test(name, move || match catch_unwind(AssertUnwindSafe(test)) {
        Ok(()) => Ok(()),
        Err(payload) => match payload.downcast::<common::Skip>() {
            Ok(skip) => {
                let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
                skipped.push((recorded, skip.0));
                Ok(())
            }
            Err(payload) => resume_unwind(payload),
        },
    })
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    // A skip is a panic with a `Skip` payload: say nothing of it there.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<common::Skip>() {
            report(info);
        }
    }));
    let tests: Vec<Trial> = [
        agents::tests(),
        attacks::tests(),
        baseline::tests(),
        check::tests(),
        containers::tests(),
        crash::tests(),
        debian::tests(),
        docs::tests(),
        dump::tests(),
        errors::tests(),
        evasions::tests(),
        explain::tests(),
        files::tests(),
        hostile::tests(),
        live::tests(),
        package::tests(),
        readme::tests(),
        serve::tests(),
        watch::tests(),
        zabbix::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let conclusion = libtest_mimic::run(&args, tests);
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if !skipped.is_empty() {
        println!(
            "{} of the passed tests were skipped for a missing prerequisite (in CI they fail):",
            skipped.len()
        );
        for (name, why) in skipped.iter() {
            println!("  {name}: {why}");
        }
    }
    conclusion.exit_code()
}
