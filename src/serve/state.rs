//! What the routes share: the context, the tokens, the control state, and
//! answers kept for a moment so that a burst of requests reads /proc once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::control::Control;
use super::process::{self, CpuReading, FieldSet, System};
use super::reply::ApiError;
use super::shared::Shared;
use super::token_source::TokenSource;
use crate::app::comparison;
use crate::app::context::Context;
use crate::check;
use crate::report::{Wanted, json as json_report, prometheus};
use crate::snapshot::{Fields, Process};

/// How long one reading of /proc answers every request.
const SHARED_FOR: Duration = Duration::from_secs(1);
/// CPU use for `/api/check` is measured over this long.
const CHECK_INTERVAL: f64 = 1.0;

/// What the routes share.
pub struct AppState {
    pub context: Context,
    pub tokens: TokenSource,
    pub allow_control: bool,
    pub control: Control,
    system: System,
    cpu: Mutex<CpuReading>,
    listings: Shared<FieldSet, Result<Arc<Listing>, ApiError>>,
    diffs: Shared<(), Result<Arc<DiffAnswer>, ApiError>>,
    checks: Shared<(), Result<Arc<CheckAnswer>, ApiError>>,
}

impl AppState {
    pub fn new(context: Context, tokens: TokenSource, allow_control: bool) -> AppState {
        let seed = context.snapshot(Fields::default()).map(|s| s.processes);
        AppState {
            control: Control::new(&context),
            system: System::read(&context.proc_root),
            cpu: Mutex::new(CpuReading::of(&seed.unwrap_or_default())),
            context,
            tokens,
            allow_control,
            listings: Shared::new(SHARED_FOR),
            diffs: Shared::new(SHARED_FOR),
            checks: Shared::new(SHARED_FOR),
        }
    }

    /// Every process with its record of `fields`.
    pub async fn listing(self: &Arc<Self>, fields: FieldSet) -> Result<Arc<Listing>, ApiError> {
        let state = self.clone();
        self.listings
            .get(fields, move || {
                let snapshot = state.context.snapshot(fields.snapshot_fields())?;
                Ok(Arc::new(state.records(snapshot.processes, fields)))
            })
            .await
    }

    /// Records of `processes`; updates the CPU reading when it is a second
    /// old, so `cpu_percent` covers at least that long.
    pub fn records(&self, processes: Vec<Process>, fields: FieldSet) -> Listing {
        let previous = self.cpu.lock().expect("no panic holds this lock").clone();
        let records = process::records(
            &self.context.proc_root,
            &processes,
            fields,
            &self.system,
            &previous,
        );
        let mut cpu = self.cpu.lock().expect("no panic holds this lock");
        if cpu.age() >= SHARED_FOR && processes.len() > 1 {
            *cpu = CpuReading::of(&processes);
        }
        Listing {
            entries: processes.into_iter().zip(records).collect(),
        }
    }

    pub async fn diff(self: &Arc<Self>) -> Result<Arc<DiffAnswer>, ApiError> {
        let state = self.clone();
        self.diffs
            .get((), move || {
                DiffAnswer::compute(&state.context).map(Arc::new)
            })
            .await
    }

    pub async fn check(self: &Arc<Self>) -> Result<Arc<CheckAnswer>, ApiError> {
        let state = self.clone();
        self.checks
            .get((), move || {
                CheckAnswer::compute(&state.context).map(Arc::new)
            })
            .await
    }
}

/// Processes paired with their records; a process that ended before its
/// record was read has none.
pub struct Listing {
    pub entries: Vec<(Process, Option<Value>)>,
}

impl Listing {
    pub fn records<'a>(&'a self, keep: impl Fn(&Process) -> bool + 'a) -> Vec<&'a Value> {
        self.entries
            .iter()
            .filter(|(p, _)| keep(p))
            .filter_map(|(_, r)| r.as_ref())
            .collect()
    }

    /// How many processes each user runs, by user name.
    pub fn per_user(&self) -> BTreeMap<&str, u64> {
        let mut running = BTreeMap::new();
        for (p, _) in &self.entries {
            *running.entry(&*p.user).or_default() += 1;
        }
        running
    }
}

/// The baseline diff, rendered once for every request it answers: as
/// JSON, and as `show --format prometheus` writes it.
pub struct DiffAnswer {
    pub body: String,
    pub prometheus: String,
}

impl DiffAnswer {
    fn compute(context: &Context) -> Result<DiffAnswer, ApiError> {
        let wanted = Wanted {
            missing: true,
            extra: true,
        };
        let compared = comparison::settled(context, wanted, false)?;
        let changes = compared.changes(wanted);
        let note = compared.note.as_ref().map(|n| n.to_string());
        let rules_changed = matches!(compared.note, Some(comparison::RulesNote::Changed { .. }));
        let body = json_report::comparison(&changes, compared.baseline.as_str(), note);
        Ok(DiffAnswer {
            body: body.to_string(),
            prometheus: prometheus::changes(
                &changes,
                wanted,
                compared.baseline.sees(),
                rules_changed,
            ),
        })
    }
}

/// The configured checks' report, as JSON and as Prometheus samples.
pub struct CheckAnswer {
    pub json: String,
    pub prometheus: Option<String>,
}

impl CheckAnswer {
    fn compute(context: &Context) -> Result<CheckAnswer, ApiError> {
        let checks = check::compile_all(&context.config()?, &context.users()?)
            .map_err(crate::app::Error::from)?;
        if checks.is_empty() {
            return Ok(CheckAnswer {
                json: "{\"checks\":[]}".into(),
                prometheus: None,
            });
        }
        // Restarts are counted by `psdiff check`'s runs, not per request.
        let (outcomes, _) =
            crate::app::measure::evaluate_settled(context, &checks, false, CHECK_INTERVAL, None)?;
        Ok(CheckAnswer {
            json: json_report::checks(&checks, &outcomes),
            prometheus: Some(prometheus::checks(&checks, &outcomes)),
        })
    }
}
