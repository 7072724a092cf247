//! The routes: what each answers, who may ask, and the state they share.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body;
use super::control::{Control, Target};
use super::process::{self, CpuReading, FieldSet, System};
use super::reply::ApiError;
use super::shared::Shared;
use super::tokens::{Scope, Tokens};
use crate::check::output as check_output;
use crate::commands::{self, Context};
use crate::report::{self, Wanted};
use crate::snapshot::{Fields, Process, Snapshot};

/// How long one reading of /proc answers every request.
const SHARED_FOR: Duration = Duration::from_secs(1);
/// CPU use for `/api/check` is measured over this long.
const CHECK_INTERVAL: f64 = 1.0;

/// What the routes share.
pub struct AppState {
    pub context: Context,
    pub tokens: TokenSource,
    pub allow_control: bool,
    control: Control,
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
    async fn listing(self: &Arc<Self>, fields: FieldSet) -> Result<Arc<Listing>, ApiError> {
        let state = self.clone();
        self.listings
            .get(fields, move || {
                let snapshot = state.context.snapshot(Fields {
                    exe: fields.needs_exe(),
                    selinux: false,
                })?;
                Ok(Arc::new(state.records(snapshot.processes, fields)))
            })
            .await
    }

    /// Records of `processes`; updates the CPU reading when it is a second
    /// old, so `cpu_percent` covers at least that long.
    fn records(&self, processes: Vec<Process>, fields: FieldSet) -> Listing {
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

    async fn diff(self: &Arc<Self>) -> Result<Arc<DiffAnswer>, ApiError> {
        let state = self.clone();
        self.diffs
            .get((), move || {
                DiffAnswer::compute(&state.context).map(Arc::new)
            })
            .await
    }

    async fn check(self: &Arc<Self>) -> Result<Arc<CheckAnswer>, ApiError> {
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
struct Listing {
    entries: Vec<(Process, Option<Value>)>,
}

impl Listing {
    fn records<'a>(&'a self, keep: impl Fn(&Process) -> bool + 'a) -> Vec<&'a Value> {
        self.entries
            .iter()
            .filter(|(p, _)| keep(p))
            .filter_map(|(_, r)| r.as_ref())
            .collect()
    }

    /// How many processes each user runs, by user name.
    fn per_user(&self) -> BTreeMap<&str, u64> {
        let mut running = BTreeMap::new();
        for (p, _) in &self.entries {
            *running.entry(&*p.user).or_default() += 1;
        }
        running
    }
}

/// The baseline diff, rendered once for every request it answers: as
/// JSON, and as `show --format prometheus` writes it.
struct DiffAnswer {
    body: String,
    prometheus: String,
}

impl DiffAnswer {
    fn compute(context: &Context) -> Result<DiffAnswer, ApiError> {
        let wanted = Wanted {
            missing: true,
            extra: true,
        };
        let texts = commands::show::settled_texts(context, wanted, false)?;
        let changes = report::changes(&texts.old, &texts.new, wanted);
        let mut body = serde_json::to_value(report::json_report(&changes)).expect("serializes");
        body["baseline"] = json!(texts.baseline);
        Ok(DiffAnswer {
            body: body.to_string(),
            prometheus: report::prometheus(&changes, wanted, texts.baseline),
        })
    }
}

/// The configured checks' report, as JSON and as Prometheus samples.
struct CheckAnswer {
    json: String,
    prometheus: Option<String>,
}

impl CheckAnswer {
    fn compute(context: &Context) -> Result<CheckAnswer, ApiError> {
        let checks = commands::check::configured(context)?;
        if checks.is_empty() {
            return Ok(CheckAnswer {
                json: "{\"checks\":[]}".into(),
                prometheus: None,
            });
        }
        let (outcomes, _) =
            commands::check::evaluate_settled(context, &checks, false, CHECK_INTERVAL)?;
        Ok(CheckAnswer {
            json: check_output::json(&checks, &outcomes),
            prometheus: Some(check_output::prometheus(&checks, &outcomes)),
        })
    }
}

/// The token file, read again whenever it changes, so `psdiff token
/// revoke` takes effect on the next request.
pub struct TokenSource {
    path: PathBuf,
    current: Mutex<(Option<FileStamp>, Result<Tokens, String>)>,
}

/// What tells that a file changed.
type FileStamp = (u64, u64, i64, i64, i64, i64, u64);

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.size(),
    ))
}

impl TokenSource {
    /// Reads `path` now; a missing, unsafe or malformed file is an error.
    pub fn open(path: PathBuf) -> Result<TokenSource, super::tokens::TokenError> {
        let at = stamp(&path);
        let tokens = Tokens::load(&path)?;
        Ok(TokenSource {
            path,
            current: Mutex::new((at, Ok(tokens))),
        })
    }

    pub fn count(&self) -> usize {
        let current = self.current.lock().expect("no panic holds this lock");
        current.1.as_ref().map_or(0, |t| t.entries.len())
    }

    fn verify(&self, presented: &str) -> Option<Identity> {
        let at = stamp(&self.path);
        let mut current = self.current.lock().expect("no panic holds this lock");
        if current.0 != at {
            let reloaded = Tokens::load(&self.path).map_err(|e| e.to_string());
            match &reloaded {
                Ok(t) => eprintln!("psdiff serve: tokens reloaded: {} tokens", t.entries.len()),
                // Fail closed: a file we cannot trust admits nobody.
                Err(e) => {
                    eprintln!("psdiff serve: {e}; every request is refused until it is fixed")
                }
            }
            *current = (at, reloaded);
        }
        let token = current.1.as_ref().ok()?.verify(presented)?;
        Some(Identity {
            name: token.name.clone(),
            scope: token.scope,
        })
    }
}

/// Who asked: the token's name and scope.
#[derive(Debug, Clone)]
struct Identity {
    name: String,
    scope: Scope,
}

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(
            "/api/ps",
            get(list_processes)
                .delete(signal_process)
                .patch(renice_process)
                .post(run_command),
        )
        .route("/api/ps/{pid}", get(one_process))
        .route("/api/ps/output/{id}", get(command_output))
        .route("/api/users", get(list_users))
        .route("/api/users/{name}/ps", get(user_processes))
        .route("/api/diff", get(diff))
        .route("/api/check", get(check))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such route; see README.md for the API") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    Router::new()
        .route("/", get(status))
        .merge(api)
        .with_state(state)
}

/// `Authorization: Bearer TOKEN`, or 401.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(presented) = presented else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer TOKEN`; make a token with `psdiff token add NAME`",
        )
        .into_response();
    };
    let verified = {
        let state = state.clone();
        let presented = presented.to_string();
        tokio::task::spawn_blocking(move || state.tokens.verify(&presented))
            .await
            .ok()
            .flatten()
    };
    match verified {
        Some(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None => ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid").into_response(),
    }
}

/// A request allowed to use the control routes: `--allow-control` and a
/// control token. Refusals are logged.
struct ControlAccess(Identity);

impl FromRequestParts<Arc<AppState>> for ControlAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let identity = parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid"))?;
        let refusal = if !state.allow_control {
            Some("the control routes are off; start psdiff serve with --allow-control")
        } else if identity.scope != Scope::Control {
            Some(
                "this token may only read; make a control token with `psdiff token add NAME --control`",
            )
        } else {
            None
        };
        if let Some(why) = refusal {
            log_control(
                &identity,
                &format!("{} {}", parts.method, parts.uri.path()),
                "-",
                "refused",
            );
            return Err(ApiError::forbidden(why));
        }
        Ok(ControlAccess(identity))
    }
}

/// A request body that says it is JSON, as bytes for `body` to decode.
/// Its problems are JSON errors too: 413 over the size limit, 415
/// without a JSON content type.
struct JsonBody(axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON, with `Content-Type: application/json`",
            ));
        }
        axum::body::Bytes::from_request(request, state)
            .await
            .map(JsonBody)
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))
    }
}

#[derive(Deserialize)]
struct FieldsQuery {
    fields: Option<String>,
}

impl FieldsQuery {
    fn parse(&self) -> Result<FieldSet, ApiError> {
        match &self.fields {
            None => Ok(FieldSet::default_fields()),
            Some(list) => FieldSet::parse(list).map_err(ApiError::bad_request),
        }
    }
}

fn log_control(who: &Identity, action: &str, target: &str, result: &str) {
    eprintln!(
        "psdiff serve: control: token={} action={action} target={target} result={result}",
        who.name
    );
}

async fn status() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn list_processes(
    State(state): State<Arc<AppState>>,
    Query(query): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let listing = state.listing(query.parse()?).await?;
    Ok(Json(listing.records(|_| true)).into_response())
}

async fn one_process(
    State(state): State<Arc<AppState>>,
    Path(pid): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let fields = query.parse()?;
    let pid: u32 = pid
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{pid}` is not a process id")))?;
    let found = blocking(move || {
        let fields_read = Fields {
            exe: fields.needs_exe(),
            selinux: false,
        };
        let process = Snapshot::take_one(
            &state.context.proc_root,
            &mut state.context.users()?,
            fields_read,
            pid,
        )
        .map_err(crate::error::Error::from)?;
        Ok(process.and_then(|p| state.records(vec![p], fields).entries.pop()?.1))
    })
    .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no process with pid {pid}")))
}

async fn list_users(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let listing = state
        .listing(FieldSet::parse("pid").expect("a field"))
        .await?;
    let users: Vec<Value> = listing
        .per_user()
        .into_iter()
        .map(|(username, running)| json!({"username": username, "running": running}))
        .collect();
    Ok(Json(json!(users)))
}

async fn user_processes(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let listing = state.listing(query.parse()?).await?;
    let records = listing.records(|p| *p.user == *name);
    if records.is_empty() {
        let context_state = state.clone();
        let lookup = name.clone();
        let known = blocking(move || Ok(context_state.context.users()?.exists(&lookup))).await?;
        if !known {
            return Err(ApiError::not_found(format!("no user named `{name}`")));
        }
    }
    Ok(Json(records).into_response())
}

async fn diff(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let answer = state.diff().await?;
    Ok(json_text(answer.body.clone()))
}

async fn check(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let answer = state.check().await?;
    Ok(json_text(answer.json.clone()))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let (diff, check, listing) = tokio::join!(
        state.diff(),
        state.check(),
        state.listing(FieldSet::parse("pid").expect("a field"))
    );
    let mut out = String::new();
    match diff {
        Ok(d) => out.push_str(&d.prometheus),
        Err(e) => {
            eprintln!("psdiff serve: /metrics: {}", e.message);
            out.push_str(&report::prometheus_down("psdiff"));
        }
    }
    match check {
        Ok(c) => out.push_str(c.prometheus.as_deref().unwrap_or("")),
        Err(e) => {
            eprintln!("psdiff serve: /metrics: {}", e.message);
            out.push_str(&report::prometheus_down("psdiff_check"));
        }
    }
    if let Ok(listing) = listing {
        let labels: Vec<(String, f64)> = listing
            .per_user()
            .into_iter()
            .map(|(user, n)| {
                (
                    format!("{{user=\"{}\"}}", report::label_value(user)),
                    n as f64,
                )
            })
            .collect();
        let samples: Vec<(&str, f64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        report::metric(
            &mut out,
            "psdiff_processes",
            "Processes per user.",
            &samples,
        );
    }
    let help = "How long this scrape took, in seconds.";
    let took = started.elapsed().as_secs_f64();
    report::metric(
        &mut out,
        "psdiff_scrape_duration_seconds",
        help,
        &[("", took)],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn signal_process(
    State(state): State<Arc<AppState>>,
    ControlAccess(who): ControlAccess,
    JsonBody(bytes): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let asked = body::signal_request(&bytes)?;
    let action = format!("signal {}", asked.signal.as_str());
    on_process(&state, &who, &action, asked.pid, |target| {
        state.control.signal(target, asked.signal)
    })
}

async fn renice_process(
    State(state): State<Arc<AppState>>,
    ControlAccess(who): ControlAccess,
    JsonBody(bytes): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let asked = body::renice_request(&bytes)?;
    let action = format!("renice {}", asked.priority);
    on_process(&state, &who, &action, asked.pid, |target| {
        state.control.renice(target, asked.priority)
    })
}

async fn run_command(
    State(state): State<Arc<AppState>>,
    ControlAccess(who): ControlAccess,
    JsonBody(bytes): JsonBody,
) -> Result<Response, ApiError> {
    let asked = body::run_request(&bytes)?;
    let shown = format!("{:?}", asked.cmd);
    let context_state = state.clone();
    let run_allow = blocking(move || Ok(context_state.context.rules()?.run_allow)).await?;
    let ended_who = who.clone();
    let ended_cmd = shown.clone();
    let started = controlled(&who, "run", &shown, || {
        let log = move |how: String| log_control(&ended_who, "run-ended", &ended_cmd, &how);
        let started = state.control.run(&run_allow, asked.cmd, log)?;
        Ok((shown.clone(), started))
    })?;
    Ok((StatusCode::ACCEPTED, started).into_response())
}

async fn command_output(
    State(state): State<Arc<AppState>>,
    ControlAccess(_): ControlAccess,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.control.output(&id).map(Json)
}

/// A control action on process `pid`, once `Control::target` has found
/// it one that may be acted on; logged as `controlled` does.
fn on_process(
    state: &AppState,
    who: &Identity,
    action: &str,
    pid: i64,
    act: impl FnOnce(&Target) -> Result<Value, ApiError>,
) -> Result<Json<Value>, ApiError> {
    controlled(who, action, &format!("pid {pid}"), || {
        let target = state.control.target(&state.context, pid)?;
        Ok((target.to_string(), act(&target)?))
    })
}

/// Runs a control action and logs who did what to which process, and how
/// it went.
fn controlled(
    who: &Identity,
    action: &str,
    asked: &str,
    act: impl FnOnce() -> Result<(String, Value), ApiError>,
) -> Result<Json<Value>, ApiError> {
    match act() {
        Ok((target, answer)) => {
            log_control(who, action, &target, &format!("ok {answer}"));
            Ok(Json(answer))
        }
        Err(e) => {
            log_control(
                who,
                action,
                asked,
                &format!("{} {}", e.status.as_u16(), e.message),
            );
            Err(e)
        }
    }
}

/// Runs `work` (which reads /proc or files) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::internal("the request's work failed unexpectedly"))?
}

fn json_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
