//! Looking again before calling something an alarm: a daemon restarting
//! during a check, or a short-lived process, is gone a moment later. One
//! loop serves `show`, `check` and the API.

use std::time::Duration;

/// The pauses of `--retry`, as the Python psdiff: at most 2 s in all.
pub const RETRY_SLEEPS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(600),
    Duration::from_millis(1000),
];

/// Looks once; with `retry`, while `unsettled` holds of what was seen and
/// a pause is left, sleeps and looks again. `look` is given the previous
/// look, to refine it (no pause at all when the first look is settled).
pub fn settle<T, E>(
    retry: bool,
    mut look: impl FnMut(Option<T>) -> Result<T, E>,
    unsettled: impl Fn(&T) -> bool,
) -> Result<T, E> {
    let mut seen = look(None)?;
    for pause in RETRY_SLEEPS.iter().filter(|_| retry) {
        if !unsettled(&seen) {
            break;
        }
        std::thread::sleep(*pause);
        seen = look(Some(seen))?;
    }
    Ok(seen)
}
