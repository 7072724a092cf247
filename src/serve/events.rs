//! `GET /api/events`: the watcher's journal as it grows, as server-sent
//! events (`event: start|exit|restart|exec|lost`, `data:` the event as
//! `/api/history` gives it). Each follower holds only its place in the
//! journal and one poll's events; at most `FOLLOWERS` follow at once.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::reply::ApiError;
use super::state::AppState;
use crate::app::history::{Request, Scope};
use crate::journal::{Journal, Mark, timeline};

/// Followers at once: each holds a database connection.
const FOLLOWERS: usize = 16;
/// How often the journal is read (the watcher commits every second).
const POLL: Duration = Duration::from_secs(1);
/// Images read per poll at most; a burst past it is read by the next.
const PER_POLL: usize = 2_000;

static FOLLOWING: AtomicUsize = AtomicUsize::new(0);
/// Set when the server shuts down: a feed never ends by itself, and the
/// shutdown waits for open answers.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Ends every feed within a poll.
pub fn stop_following() {
    STOPPING.store(true, Ordering::SeqCst);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    unit: Option<String>,
    user: Option<String>,
    #[serde(rename = "match")]
    matching: Option<String>,
    #[serde(default)]
    all: bool,
}

/// One follower's place; its slot is given back when the stream ends.
struct Follower {
    journal: Option<Journal>,
    mark: Mark,
    scope: Arc<Scope>,
    pending: VecDeque<Event>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        FOLLOWING.fetch_sub(1, Ordering::SeqCst);
    }
}

pub async fn follow(
    State(state): State<Arc<AppState>>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let request = Request {
        unit: query.unit,
        user: query.user,
        matching: query.matching,
        all: query.all,
        ..Request::default()
    };
    let scope = request
        .scope(&|name| name.to_string())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if FOLLOWING.fetch_add(1, Ordering::SeqCst) >= FOLLOWERS {
        FOLLOWING.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{FOLLOWERS} clients follow the events already; try again later"),
        ));
    }
    let mut follower = Follower {
        journal: None,
        mark: Mark::default(),
        scope: Arc::new(scope),
        pending: VecDeque::new(),
    };
    let path = state.context.journal.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let journal = Journal::open_to_read(&path)?;
        let mark = journal.as_ref().map(Journal::mark).transpose()?;
        Ok::<_, crate::journal::JournalError>((journal, mark))
    })
    .await
    .map_err(|_| ApiError::internal("the request's work failed unexpectedly"))?;
    match opened {
        Ok((Some(journal), Some(mark))) => {
            follower.journal = Some(journal);
            follower.mark = mark;
        }
        Ok(_) => {
            return Err(ApiError::bad_request(format!(
                "no journal at {}: start the watcher (`systemctl enable --now psdiff-watch`)",
                state.context.journal.display()
            )));
        }
        Err(e) => {
            eprintln!("psdiff serve: /api/events: {e}");
            return Err(ApiError::internal(
                "the journal could not be read; see the server's log",
            ));
        }
    }
    Ok(Sse::new(events(follower))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The follower's events, read from the journal every `POLL`.
fn events(follower: Follower) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(follower, |mut follower| async move {
        loop {
            if let Some(event) = follower.pending.pop_front() {
                return Some((Ok(event), follower));
            }
            tokio::time::sleep(POLL).await;
            if STOPPING.load(Ordering::SeqCst) {
                return None;
            }
            let journal = follower.journal.take()?;
            let (mark, scope) = (follower.mark, follower.scope.clone());
            let read = tokio::task::spawn_blocking(move || {
                let changes = journal.changes(mark, PER_POLL);
                (journal, changes)
            })
            .await
            .ok()?;
            let (journal, changes) = read;
            follower.journal = Some(journal);
            match changes {
                Ok((rows, next)) => {
                    follower.mark = next;
                    let admitted: Vec<_> = rows.into_iter().filter(|r| scope.admits(r)).collect();
                    for event in timeline::between(&admitted, mark, next) {
                        let kind = serde_json::to_value(event.kind).unwrap_or_default();
                        let data = serde_json::to_string(&event).unwrap_or_default();
                        follower.pending.push_back(
                            Event::default()
                                .event(kind.as_str().unwrap_or("event"))
                                .data(data),
                        );
                    }
                }
                // The journal set aside, or the disk unreadable: end the
                // stream, and the client follows again.
                Err(e) => {
                    eprintln!("psdiff serve: /api/events: {e}");
                    return None;
                }
            }
        }
    })
}
