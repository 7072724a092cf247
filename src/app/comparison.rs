//! The baseline against a fresh dump: the texts `show`, `/api/diff` and
//! `/metrics` compare, looked at again (with `--retry`) until the kinds
//! of change asked for are gone.
//!
//! The dump is made with the rules the baseline was written with (its
//! `record`), so a new psdiff or an edited rule does not turn every line
//! it prints differently into an alarm; a `RulesNote` says so instead.

use std::fmt;

use crate::app::Error;
use crate::app::context::Context;
use crate::app::settle::settle;
use crate::baseline;
use crate::config::Config;
use crate::identity;
use crate::record;
use crate::report::{self, Wanted};
use crate::rules::RuleSet;

/// What to compare: the baseline's text (empty without one) and a dump.
pub struct Comparison {
    pub baseline: Presence,
    pub old: String,
    pub new: String,
    /// Set when the rules in force are not those of the baseline.
    pub note: Option<RulesNote>,
    /// Who each baseline line was.
    pub recorded: identity::Recorded,
    /// Extras that came and went since the consumer's previous look, as
    /// the watcher journaled them, marked (`app::transients`).
    pub transients: Vec<String>,
}

impl Comparison {
    /// The changes of the wanted kinds, the transient extras after the
    /// extras that run.
    pub fn changes(&self, wanted: Wanted) -> Vec<report::Change<'_>> {
        let mut changes = report::changes(&self.old, &self.new, wanted);
        if wanted.extra {
            changes.extend(self.transients.iter().map(|line| report::Change {
                kind: crate::line_diff::Kind::Extra,
                line,
            }));
        }
        changes
    }
}

/// Whether there was a baseline to compare with. Without one (or with an
/// empty one) nothing can be missing: a check that cannot see must say
/// so, never report all is well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    Absent,
    /// A file of 0 bytes: truncated, or made by hand.
    Empty,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Present => "present",
            Presence::Absent => "absent",
            Presence::Empty => "empty",
        }
    }

    /// Whether the comparison can tell what is missing.
    pub fn sees(self) -> bool {
        self == Presence::Present
    }
}

/// How the rules in force stand to those the baseline was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesNote {
    /// The rules changed since `psdiff write`: with them, `lines` lines
    /// of the current processes would read differently. The comparison
    /// used the recorded rules.
    Changed { lines: usize },
    /// The baseline has no record of its rules (the Python psdiff wrote
    /// it, or an older psdiff), and it differs from the dump: some of
    /// that may be the rules.
    Unrecorded,
    /// The recorded rules no longer load; the rules in force were used.
    Unloadable(String),
}

impl fmt::Display for RulesNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RulesNote::Changed { lines } => write!(
                f,
                "the rules changed since the baseline was written: {lines} line(s) would read differently; compared with the baseline's own rules; run `psdiff write -v` to review and take the new ones"
            ),
            RulesNote::Unrecorded => write!(
                f,
                "the baseline has no record of the rules it was written with (written by the Python psdiff or an older psdiff), so some differences may come from the rules; run `psdiff write -v` to review and record them"
            ),
            RulesNote::Unloadable(why) => write!(
                f,
                "the rules recorded with the baseline no longer load ({why}); compared with the rules in force; run `psdiff write -v` to review"
            ),
        }
    }
}

/// What a dump is compared with: the baseline's text and who its lines
/// were, and the rules to dump with. `show` and the watcher read it.
pub struct Reference {
    pub presence: Presence,
    /// The baseline's text; empty without one.
    pub old: String,
    /// Who each line was; a line is kept only by a process of that identity.
    pub recorded: identity::Recorded,
    rules: Rules,
    note: Option<RulesNote>,
    /// The lines of `old`, to look one up at once: the watcher asks for
    /// every process it classifies (made when first asked; show never is).
    lines: std::cell::OnceCell<std::collections::HashSet<String>>,
}

impl Reference {
    /// Reads the rules and the baseline as `context` says.
    pub fn read(context: &Context) -> Result<Reference, Error> {
        let config = context.config()?;
        let in_force = context.rules_of(&config)?;
        let baseline = baseline::read(&context.db)?;
        let presence = match &baseline {
            None => Presence::Absent,
            Some(b) if b.text.is_empty() => Presence::Empty,
            Some(_) => Presence::Present,
        };
        let present = presence.sees();
        let old = baseline.map_or(String::new(), |b| b.text);
        let (rules, note) = if present {
            baseline_rules(context, &config, in_force)?
        } else {
            (Rules::InForce(in_force), None)
        };
        let recorded = if present {
            identity::read(&context.db)?
        } else {
            identity::Recorded::default()
        };
        Ok(Reference {
            presence,
            lines: std::cell::OnceCell::new(),
            old,
            recorded,
            rules,
            note,
        })
    }

    /// The rules a dump is made with to be compared.
    pub fn rules(&self) -> &RuleSet {
        self.rules.compared()
    }

    /// What a snapshot must read for the comparison.
    pub fn needs(&self) -> crate::snapshot::Fields {
        self.rules.needs().union(identity::FIELDS)
    }

    /// Whether `line`, printed by a process of `identity`, is one of the
    /// baseline's: its text is there, and no identity recorded for it
    /// differs.
    pub fn keeps(&self, line: &str, identity: &identity::Identity) -> bool {
        self.presence.sees()
            && self
                .lines
                .get_or_init(|| self.old.lines().map(str::to_string).collect())
                .contains(line)
            && self.recorded.admits(line, identity)
    }
}

/// Reads the rules and the baseline, and dumps until the wanted kinds of
/// change are gone or the retries are used up. Without a baseline there
/// is nothing to settle, so no retry.
pub fn settled(context: &Context, wanted: Wanted, retry: bool) -> Result<Comparison, Error> {
    let reference = Reference::read(context)?;
    let fields = reference.needs();
    let Reference {
        presence,
        old,
        recorded,
        rules,
        note,
        ..
    } = reference;
    let present = presence.sees();
    let (new, unmarked, processes) = settle(
        retry && present,
        |_| {
            let processes = context.snapshot(fields)?.processes;
            // The view keeps every process (pruning only unlinks them):
            // taken back for a second shaping, not copied beforehand.
            let view = context.shape(processes, rules.compared());
            let lives = identity::of_view(&view, &context.proc_root);
            let text = view.text();
            let marked = recorded.mark(&old, &text, &lives);
            Ok::<_, Error>((marked, text, view.tree.processes))
        },
        |(new, _, _)| !report::changes(&old, new, wanted).is_empty(),
    )?;
    let note = match (&rules, note) {
        (Rules::Recorded { in_force, .. }, _) => {
            // What the rules change, apart from who prints each line.
            let by_rules_in_force = context.shape(processes, in_force).text();
            let lines = report::changes(&unmarked, &by_rules_in_force, Wanted::BOTH).len();
            (lines > 0).then_some(RulesNote::Changed { lines })
        }
        (_, Some(RulesNote::Unrecorded)) if old == new => None,
        (_, note) => note,
    };
    Ok(Comparison {
        baseline: presence,
        old,
        new,
        note,
        recorded,
        transients: Vec::new(),
    })
}

/// The rules to dump with: those in force, or those recorded with the
/// baseline when they differ (with those in force kept to tell what
/// they change).
enum Rules {
    InForce(RuleSet),
    Recorded {
        recorded: RuleSet,
        in_force: RuleSet,
    },
}

impl Rules {
    fn compared(&self) -> &RuleSet {
        match self {
            Rules::InForce(rules)
            | Rules::Recorded {
                recorded: rules, ..
            } => rules,
        }
    }

    fn needs(&self) -> crate::snapshot::Fields {
        match self {
            Rules::InForce(rules) => rules.needs(),
            Rules::Recorded { recorded, in_force } => recorded.needs().union(in_force.needs()),
        }
    }
}

fn baseline_rules(
    context: &Context,
    config: &Config,
    in_force: RuleSet,
) -> Result<(Rules, Option<RulesNote>), Error> {
    let Some(record) = record::read(&context.db)? else {
        return Ok((Rules::InForce(in_force), Some(RulesNote::Unrecorded)));
    };
    if record.sources == config.sources {
        return Ok((Rules::InForce(in_force), None));
    }
    let recorded = Config::from_sources(&record.sources)
        .and_then(|c| c.for_host(&context.host_name))
        .map_err(Error::from)
        .and_then(|c| context.rules_of(&c));
    Ok(match recorded {
        Ok(recorded) => (Rules::Recorded { recorded, in_force }, None),
        Err(e) => (
            Rules::InForce(in_force),
            Some(RulesNote::Unloadable(e.to_string())),
        ),
    })
}
