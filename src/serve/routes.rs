//! The routes: what each answers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Extension, FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ControlAccess, authenticate, log_control};
use super::body;
use super::control::Target;
use super::process::{FieldSet, Shown};
use super::reply::ApiError;
use super::state::AppState;
use super::token_source::Identity;
use crate::report::prometheus;
use crate::snapshot::Snapshot;

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
        .route("/api/history", get(history))
        .route("/api/events", get(super::events::follow))
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

/// What one request is shown: the fields it asked for, and of those the
/// ones its token may not see (null in the answer).
#[derive(Clone, Copy)]
struct View {
    asked: FieldSet,
    hidden: FieldSet,
}

impl View {
    fn show<'a>(&self, record: &'a Value) -> Shown<'a> {
        Shown {
            record,
            asked: self.asked,
            hidden: self.hidden,
        }
    }
}

impl FieldsQuery {
    /// The view for `who`: a field it may not see is null in the default
    /// set, and refused when asked for by name.
    fn view(&self, who: &Identity) -> Result<View, ApiError> {
        let asked = match &self.fields {
            None => FieldSet::default_fields(),
            Some(list) => FieldSet::parse(list).map_err(ApiError::bad_request)?,
        };
        let hidden = if who.scope.inspects() {
            FieldSet::none()
        } else {
            asked.and(FieldSet::sensitive())
        };
        if self.fields.is_some() && !hidden.is_empty() {
            return Err(ApiError::forbidden(format!(
                "{} of other users' processes are shown only to tokens made with `psdiff token add NAME --inspect` (or --control); this token may ask for the other fields",
                hidden.names().join(", ")
            )));
        }
        Ok(View { asked, hidden })
    }
}

async fn status() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn list_processes(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Query(query): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let view = query.view(&who)?;
    let listing = state.listing(view.asked.shared_superset()).await?;
    let shown: Vec<Shown> = listing
        .records(|_| true)
        .into_iter()
        .map(|r| view.show(r))
        .collect();
    Ok(Json(shown).into_response())
}

async fn one_process(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(pid): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let view = query.view(&who)?;
    let fields = view.asked;
    let pid: u32 = pid
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{pid}` is not a process id")))?;
    let found = blocking(move || {
        let fields_read = fields.snapshot_fields();
        let process = Snapshot::take_one(
            &state.context.proc_root,
            &mut state.context.users()?,
            fields_read,
            pid,
        )
        .map_err(crate::app::Error::from)?;
        Ok(process.and_then(|p| state.records(vec![p], fields).entries.pop()?.1))
    })
    .await?;
    let record = found.ok_or_else(|| ApiError::not_found(format!("no process with pid {pid}")))?;
    Ok(Json(view.show(&record)).into_response())
}

async fn list_users(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let listing = state.listing(FieldSet::default_fields()).await?;
    let users: Vec<Value> = listing
        .per_user()
        .into_iter()
        .map(|(username, running)| json!({"username": username, "running": running}))
        .collect();
    Ok(Json(json!(users)))
}

async fn user_processes(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Response, ApiError> {
    let view = query.view(&who)?;
    let listing = state.listing(view.asked.shared_superset()).await?;
    let records: Vec<Shown> = listing
        .records(|p| *p.user == *name)
        .into_iter()
        .map(|r| view.show(r))
        .collect();
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

/// `GET /api/history?since=1h&until=&unit=&user=&match=&all=`: what
/// `psdiff history --format json` prints, the newest
/// `HISTORY_EVENTS` events at most.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    since: Option<String>,
    until: Option<String>,
    unit: Option<String>,
    user: Option<String>,
    #[serde(rename = "match")]
    matching: Option<String>,
    #[serde(default)]
    all: bool,
}

/// At most this many events in one answer, so a week of a busy host's
/// journal cannot fill the server's memory; `truncated` says so.
const HISTORY_EVENTS: usize = 10_000;

async fn history(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let request = crate::app::history::Request {
        since: query.since.unwrap_or_else(|| "1h".to_string()),
        until: query.until,
        unit: query.unit,
        user: query.user,
        matching: query.matching,
        all: query.all,
    };
    blocking(move || {
        let history =
            crate::app::history::History::read(&state.context, &request, |name| name.to_string())
                .map_err(|e| match e {
                crate::app::Error::Usage(message) => ApiError::bad_request(message),
                other => other.into(),
            })?;
        Ok(json_text(history.json(Some(HISTORY_EVENTS)).to_string()))
    })
    .await
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let (diff, check, listing) = tokio::join!(
        state.diff(),
        state.check(),
        state.listing(FieldSet::default_fields())
    );
    let mut out = String::new();
    match diff {
        Ok(d) => out.push_str(&d.prometheus),
        Err(e) => {
            eprintln!("psdiff serve: /metrics: {}", e.message);
            out.push_str(&prometheus::down("psdiff"));
        }
    }
    match check {
        Ok(c) => out.push_str(c.prometheus.as_deref().unwrap_or("")),
        Err(e) => {
            eprintln!("psdiff serve: /metrics: {}", e.message);
            out.push_str(&prometheus::down("psdiff_check"));
        }
    }
    if let Ok(listing) = listing {
        let labels: Vec<(String, f64)> = listing
            .per_user()
            .into_iter()
            .map(|(user, n)| {
                (
                    format!("{{user=\"{}\"}}", prometheus::label_value(user)),
                    n as f64,
                )
            })
            .collect();
        let samples: Vec<(&str, f64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        prometheus::metric(
            &mut out,
            "psdiff_processes",
            "Processes per user.",
            &samples,
        );
    }
    let help = "How long this scrape took, in seconds.";
    let took = started.elapsed().as_secs_f64();
    prometheus::metric(
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
    let run_allow = blocking(move || Ok(context_state.context.config()?.run_allow)).await?;
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
