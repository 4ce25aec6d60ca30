//! The HTTP server's routes: health checks, metrics, and the `/api/v1` routers.
//!
//! Errors leave as JSON `{"code", "message", "field"?}` with a stable `code`, through
//! [`ApiError`]; a bad request is never answered with a 500.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pacer_config::Config;
use pacer_dialer::store::Store;
use serde::Serialize;

use crate::metrics::Metrics;

/// What every handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    pub config: Arc<Config>,
    /// The agents' and supervisors' sockets (absent when no dialer runs, as in API tests).
    pub cti: Option<Arc<crate::cti::Cti>>,
    pub dialer: Option<Arc<crate::dialing::Dialer>>,
    /// Signs recording links and webhooks.
    pub signing_key: Option<Arc<Vec<u8>>>,
}

/// An error answer: HTTP status plus a JSON body with a stable `code`.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every problem, when there are several (settings validation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<pacer_dialer::settings::SettingsProblem>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

pub fn router(state: AppState) -> Router {
    let metrics_path = state.config.metrics.path.clone();
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/cti/agent", get(crate::cti::agent_socket))
        .route("/cti/supervisor", get(crate::cti::supervisor::supervisor_socket))
        .route("/recordings/{id}", get(crate::recordings::get))
        .route("/login", axum::routing::post(crate::auth::login))
        .route("/logout", axum::routing::post(crate::auth::logout))
        .route("/login/agent", axum::routing::post(crate::auth::login_agent).get(crate::auth::agent_whoami))
        .route("/logout/agent", axum::routing::post(crate::auth::logout_agent))
        .merge(crate::api::router(&state))
        .merge(crate::web::router());
    if state.config.metrics.enabled {
        router = router.route(&metrics_path, get(metrics));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes as usize))
        .with_state(state)
}

/// The process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    database: String,
    pending_migrations: Vec<i64>,
}

/// Ready when the database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    let (database, pending) = match state.store.ping().await {
        Err(e) => (format!("unreachable: {e}"), Vec::new()),
        Ok(()) => match state.store.pending_migrations().await {
            Ok(p) => ("ok".to_string(), p),
            Err(e) => (format!("error: {e}"), Vec::new()),
        },
    };
    let ready = database == "ok" && pending.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, database, pending_migrations: pending })).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render()).into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("no route for {} {}", req.method(), req.uri().path()),
        field: None,
        problems: Vec::new(),
    }
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!("{} is not allowed on {}", req.method(), req.uri().path()),
        field: None,
        problems: Vec::new(),
    }
}

/// Count and time every request by its route template (bounded label values).
async fn plain_to_json(response: Response) -> Response {
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::BAD_REQUEST => "bad_request",
        _ => "refused",
    };
    let message = if text.trim().is_empty() { status.canonical_reason().unwrap_or("refused").to_string() } else { text.trim().to_string() };
    ApiError { status, code, message, field: None, problems: Vec::new() }.into_response()
}

async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    if api && response.status().is_client_error() && !response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json")) {
        // Rejections that axum answers in plain text (a body over the limit, for one): the
        // API's clients get the same JSON error shape as everywhere else.
        response = plain_to_json(response).await;
    }
    let status = response.status().as_u16().to_string();
    state.metrics.http_requests.with_label_values(&[&method, &route, &status]).inc();
    state.metrics.http_duration.with_label_values(&[&method, &route]).observe(start.elapsed().as_secs_f64());
    response
}
