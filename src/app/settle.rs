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

/// How long `--retry` may take in all: within the Zabbix agent's default
/// Timeout (3 s), whatever a look costs (a machine under load, a flood of
/// cgroups). A pause is taken only when it and one more look of the
/// slowest kind seen so far end before this.
pub const RETRY_DEADLINE: Duration = Duration::from_millis(2500);

/// Looks once; with `retry`, while `unsettled` holds of what was seen and
/// a pause is left before `RETRY_DEADLINE`, sleeps and looks again.
/// `look` is given the previous look, to refine it (no pause at all when
/// the first look is settled).
pub fn settle<T, E>(
    retry: bool,
    mut look: impl FnMut(Option<T>) -> Result<T, E>,
    unsettled: impl Fn(&T) -> bool,
) -> Result<T, E> {
    let begun = std::time::Instant::now();
    let mut seen = look(None)?;
    let mut slowest = begun.elapsed();
    for pause in RETRY_SLEEPS.iter().filter(|_| retry) {
        if !unsettled(&seen) || begun.elapsed() + *pause + slowest > RETRY_DEADLINE {
            break;
        }
        std::thread::sleep(*pause);
        let looking = std::time::Instant::now();
        seen = look(Some(seen))?;
        slowest = slowest.max(looking.elapsed());
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow looks leave out the pauses that would end past the deadline:
    /// looks of 600 ms get the first two pauses, not the 600 ms one.
    #[test]
    fn retries_stop_before_the_deadline() {
        let mut looks = 0;
        let seen: Result<u32, ()> = settle(
            true,
            |_| {
                looks += 1;
                std::thread::sleep(Duration::from_millis(600));
                Ok(looks)
            },
            |_| true,
        );
        assert_eq!(seen, Ok(3));
        let mut quick = 0;
        let _: Result<(), ()> = settle(
            true,
            |_| {
                quick += 1;
                Ok(())
            },
            |_| true,
        );
        assert_eq!(quick, 5, "quick looks take every pause");
    }
}
