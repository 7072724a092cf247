//! `psdiff serve`: the HTTP server around the routes of `api`. It owns the
//! limits that keep a slow or hostile client from tying it up: a cap on
//! connections, header and body sizes, and timeouts for sending them.

mod auth;
pub(crate) mod body;
mod connections;
mod control;
mod events;
mod memory;
pub(crate) mod process;
mod reply;
mod routes;
mod shared;
mod state;
mod token_source;
pub mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::app::context::Context;
pub use tokens::{Scope, TokenError};

/// Request bodies above this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Request line and headers above this are refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Threads reading /proc (or checking a token) at once.
const MAX_BLOCKING_THREADS: usize = 16;
/// How long open connections get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Settings {
    pub listen: SocketAddr,
    pub tokens: PathBuf,
    pub allow_control: bool,
    pub max_connections: usize,
    pub client_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("no tokens in {}: nobody could use the API; add one with `psdiff token add NAME`", .0.display())]
    NoTokens(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the server: {0}")]
    Runtime(std::io::Error),
}

impl ServeError {
    /// Whether what the operator gave is wrong (exit 2), rather than the
    /// machine failing (exit 3).
    pub fn is_usage(&self) -> bool {
        match self {
            ServeError::Tokens(e) => !matches!(e, TokenError::Unwritable { .. }),
            ServeError::NoTokens(_) => true,
            ServeError::Listen { .. } | ServeError::Runtime(_) => false,
        }
    }
}

/// Serves until SIGTERM or SIGINT, then lets open requests finish.
pub fn run(context: Context, settings: Settings) -> Result<(), ServeError> {
    let tokens = token_source::TokenSource::open(settings.tokens.clone())?;
    if tokens.count() == 0 {
        return Err(ServeError::NoTokens(settings.tokens.clone()));
    }
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // /proc is read on blocking threads; a burst of requests queues
        // for these rather than growing hundreds of threads.
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(ServeError::Runtime)?;
        let state = Arc::new(state::AppState::new(
            context,
            tokens,
            settings.allow_control,
        ));
        let router = routes::router(state)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                settings.client_timeout,
            ))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                |_: Box<dyn std::any::Any + Send>| {
                    use axum::response::IntoResponse;
                    reply::ApiError::internal("the server failed on this request; see its log")
                        .into_response()
                },
            ))
            .layer(axum::middleware::map_response(reply::json_errors));
        eprintln!(
            "psdiff serve: listening on http://{addr} (control routes {})",
            if settings.allow_control { "on" } else { "off" }
        );
        accept_loop(listener, router, &settings).await;
        eprintln!("psdiff serve: stopped");
        Ok(())
    })
}

async fn accept_loop(listener: TcpListener, router: axum::Router, settings: &Settings) {
    let connections = connections::Connections::new(settings.max_connections);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.client_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(64);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        // Always accept: at the cap a stranger makes room (`connections`),
        // rather than everyone waiting in the kernel's queue behind them.
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    eprintln!("psdiff serve: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = connections.admit() else {
            continue; // every place is held by a token holder
        };
        let _ = stream.set_nodelay(true);
        let connection = admitted.connection.clone();
        let tagged = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(connection.clone());
                request
            },
        );
        let served = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(tagged));
        let served = graceful.watch(served);
        let stranger_limit = settings.client_timeout;
        tokio::spawn(async move {
            let connection = admitted.connection.clone();
            // A connection that has shown no token by then is closed.
            let strangers_leave = async {
                tokio::time::sleep(stranger_limit).await;
                if connection.is_trusted() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = served => {}
                () = connection.evicted() => {}
                () = strangers_leave => {}
            }
            drop(admitted);
        });
    }
    drop(listener);
    events::stop_following();
    eprintln!("psdiff serve: shutting down; letting open requests finish");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "psdiff serve: connections still open after {}s; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

/// The soft limit on open files up to the hard one: at 1024 a crowd of
/// strangers leaves no descriptor to accept a token holder with.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM can be caught");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT can be caught");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
