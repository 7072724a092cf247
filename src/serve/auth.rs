//! Who may ask: a bearer token for every route but `/`, and for the
//! control routes a control token with `--allow-control`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::connections::Connection;
use super::reply::ApiError;
use super::state::AppState;
use super::token_source::Identity;
use super::tokens::Scope;

/// `Authorization: Bearer TOKEN`, or 401.
pub async fn authenticate(
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
            if let Some(connection) = request.extensions().get::<Arc<Connection>>() {
                connection.trust();
            }
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None => ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid").into_response(),
    }
}

/// A request allowed to use the control routes: `--allow-control` and a
/// control token. Refusals are logged.
pub struct ControlAccess(pub Identity);

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

/// One line in the log for each control action or refusal.
pub fn log_control(who: &Identity, action: &str, target: &str, result: &str) {
    eprintln!(
        "psdiff serve: control: token={} action={action} target={target} result={result}",
        who.name
    );
}
