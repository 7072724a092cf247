//! `psdiff watch`.

use super::Error;
use crate::app::context::Context;
use crate::cli::WatchArgs;
use crate::exit::Exit;
use crate::journal::Retention;
use crate::watch::{self, Settings};

pub fn run(context: &Context, args: &WatchArgs) -> Result<Exit, Error> {
    let seconds = |s: f64, what: &str| {
        if s.is_finite() && s > 0.0 {
            Ok(std::time::Duration::from_secs_f64(s))
        } else {
            Err(crate::app::Error::Usage(format!(
                "--{what} takes a number of seconds above 0, not {s}"
            )))
        }
    };
    watch::run(
        context,
        &Settings {
            journal: context.journal.clone(),
            tick: seconds(args.tick, "tick")?,
            rescan_every: seconds(args.rescan, "rescan")?,
            backend: args.backend,
            receive_buffer: args.socket_buffer,
            ring_bytes: args.ring_buffer << 10,
            retention: Retention {
                max_age: *args.keep,
                max_bytes: args.max_size << 20,
            },
            run_for: args.run_for.map(|d| *d),
        },
    )?;
    Ok(Exit::Clean)
}
