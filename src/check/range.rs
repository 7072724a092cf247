//! The two bound syntaxes sysadmins already write: ps.monitor's `MIN-MAX`
//! and the Nagios plugin ranges (`10`, `10:`, `~:10`, `10:20`, `@10:20`).

use std::fmt;

/// ps.monitor's `MIN-MAX`: inclusive, an empty side is open, and `0` is a
/// real bound (ps.monitor itself treats 0 as open, so `crack:0-0` never
/// fired there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl Bounds {
    pub fn parse(text: &str) -> Result<Bounds, String> {
        let (min, max) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not MIN-MAX (e.g. 1-1, 1-, -5, 0-0)"))?;
        let side = |s: &str, which: &str| -> Result<Option<u64>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("{which} {s:?} in {text:?} is not a whole number"))
            }
        };
        let bounds = Bounds {
            min: side(min, "the minimum")?,
            max: side(max, "the maximum")?,
        };
        if let (Some(lo), Some(hi)) = (bounds.min, bounds.max)
            && lo > hi
        {
            return Err(format!(
                "{text:?}: the minimum {lo} is above the maximum {hi}"
            ));
        }
        Ok(bounds)
    }

    /// `< min` or `> max` when `count` is outside, with the bound.
    pub fn violation(&self, count: u64) -> Option<(char, u64)> {
        match (self.min, self.max) {
            (Some(lo), _) if count < lo => Some(('<', lo)),
            (_, Some(hi)) if count > hi => Some(('>', hi)),
            _ => None,
        }
    }

    /// The same bounds as a Nagios range, for perfdata.
    pub fn as_nagios(&self) -> String {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("{lo}:{hi}"),
            (Some(lo), None) => format!("{lo}:"),
            (None, Some(hi)) => format!("~:{hi}"),
            (None, None) => String::new(),
        }
    }
}

impl fmt::Display for Bounds {
    /// `(1-2)`, `(2-)`, `(-5)` as ps.monitor's details show them, but with
    /// an open side left empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |b: Option<u64>| b.map_or(String::new(), |v| v.to_string());
        write!(f, "{}-{}", side(self.min), side(self.max))
    }
}

/// A Nagios plugin threshold range: alert when the value is outside
/// `start..=end` (or inside, with `@`).
#[derive(Debug, Clone, PartialEq)]
pub struct NagiosRange {
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub inside: bool,
    /// As the operator wrote it (with units, for resources).
    text: String,
    /// With plain numbers, as Nagios perfdata wants it.
    plain: String,
}

impl NagiosRange {
    pub fn parse(text: &str) -> Result<NagiosRange, String> {
        let bad = |why: &str| {
            format!("{text:?} is not a Nagios range ({why}); use 10, 10:, ~:10, 10:20 or @10:20")
        };
        let (inside, body) = match text.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
        let (start, end) = match body.split_once(':') {
            None => (
                Some(0.0),
                Some(number(body).ok_or_else(|| bad("not a number"))?),
            ),
            Some((lo, hi)) => {
                let start = match lo {
                    "~" => None,
                    "" => Some(0.0),
                    s => Some(number(s).ok_or_else(|| bad("the start is not a number"))?),
                };
                let end = match hi {
                    "" => None,
                    s => Some(number(s).ok_or_else(|| bad("the end is not a number"))?),
                };
                (start, end)
            }
        };
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return Err(bad("the start is above the end"));
        }
        Ok(NagiosRange {
            start,
            end,
            inside,
            text: text.to_string(),
            plain: text.to_string(),
        })
    }

    /// The same range, shown as `text` (the operator's units).
    pub fn shown_as(mut self, text: &str) -> NagiosRange {
        self.text = text.to_string();
        self
    }

    /// The range with plain numbers, for perfdata.
    pub fn plain(&self) -> &str {
        &self.plain
    }

    /// Whether `value` raises this alert.
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start.is_none_or(|s| value >= s) && self.end.is_none_or(|e| value <= e);
        within == self.inside
    }
}

impl fmt::Display for NagiosRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_monitor_bounds() {
        let b = Bounds::parse("1-2").unwrap();
        assert_eq!(
            (b.violation(0), b.violation(1), b.violation(3)),
            (Some(('<', 1)), None, Some(('>', 2)))
        );
        let open_max = Bounds::parse("1-").unwrap();
        assert_eq!(open_max.violation(1000), None);
        assert_eq!(open_max.to_string(), "1-");
        let zero = Bounds::parse("0-0").unwrap();
        assert_eq!(zero.violation(1), Some(('>', 0)), "0 is a real bound");
        assert_eq!(Bounds::parse("-5").unwrap().violation(6), Some(('>', 5)));
        assert_eq!(Bounds::parse("-").unwrap().violation(7), None);
        assert!(Bounds::parse("5").is_err());
        assert!(Bounds::parse("a-1").is_err());
        assert!(Bounds::parse("3-1").is_err());
        assert_eq!(Bounds::parse("2-").unwrap().as_nagios(), "2:");
    }

    #[test]
    fn nagios_ranges() {
        let r = |t: &str| NagiosRange::parse(t).unwrap();
        // "10": alert outside 0..10
        assert!(r("10").alerts(11.0) && r("10").alerts(-1.0) && !r("10").alerts(10.0));
        // "10:": alert below 10
        assert!(r("10:").alerts(9.0) && !r("10:").alerts(1e9));
        // "~:10": alert above 10
        assert!(r("~:10").alerts(10.5) && !r("~:10").alerts(-1e9));
        // "10:20": outside
        assert!(r("10:20").alerts(9.0) && r("10:20").alerts(21.0) && !r("10:20").alerts(15.0));
        // "@10:20": inside
        assert!(r("@10:20").alerts(15.0) && !r("@10:20").alerts(21.0));
        for bad in ["", "x", "5:1", "1:x", "@"] {
            assert!(NagiosRange::parse(bad).is_err(), "{bad}");
        }
    }
}
