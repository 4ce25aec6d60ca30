//! `/api/v1`: the campaign manager's JSON API.
//!
//! Small routers per resource, all listed in [`routes`] — the router is built from that
//! table, and a test checks every entry against the OpenAPI document, so the two cannot
//! drift. Bad input (malformed JSON, wrong types, unknown fields, bad path or query
//! parameters) is answered with a 4xx JSON error carrying a stable `code`, never a 500.

pub mod access;
mod campaigns;
mod csv_out;
mod dnc;
pub mod floor;
mod leads;
mod lists;
mod reports;
#[cfg(test)]
mod tests;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::Router;
use pacer_dialer::store::{Role, StoreError};
use serde::de::DeserializeOwned;

use crate::http::{ApiError, AppState};

/// The OpenAPI description served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every `/api/v1` route: (method, path template as in OpenAPI, handler).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    let mut r = vec![("get", "/openapi.json", get(openapi))];
    r.extend(campaigns::routes());
    r.extend(lists::routes());
    r.extend(leads::routes());
    r.extend(dnc::routes());
    r.extend(reports::routes());
    r.extend(floor::routes());
    r.extend(access::routes());
    r
}

/// The least role a route needs; `None`: open to all (the API description).
///
/// Agents use no route (their desktop talks over its socket). Supervisors read the live
/// floor, agents and campaigns. Managers run campaigns, lists, leads, DNC, reports,
/// agents and the kill switch. Admins also manage users, tokens and read the audit log.
pub fn required_role(method: &str, path: &str) -> Option<Role> {
    let read = method == "get";
    Some(match path {
        "/openapi.json" => return None,
        "/me" => Role::Agent,
        p if p.starts_with("/users") || p.starts_with("/tokens") || p == "/audit" => Role::Admin,
        "/live/agents" | "/agents" | "/agents/{id}" | "/agents/{id}/time" | "/campaigns" | "/campaigns/{id}" | "/campaigns/{id}/pacing" | "/dialer/kill" if read => {
            Role::Supervisor
        }
        _ => Role::Manager,
    })
}

/// The `/api/v1` router. Each route is guarded by [`crate::auth::guard`] with the role
/// [`required_role`] names; routes sharing a path are merged into one method router.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut by_path: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for (method, path, mr) in routes() {
        let mr = mr.route_layer(axum::middleware::from_fn_with_state((state.clone(), required_role(method, path), path), crate::auth::guard));
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(mr),
            None => by_path.push((path, mr)),
        }
    }
    let mut api = Router::new();
    for (path, mr) in by_path {
        api = api.route(path, mr);
    }
    Router::new().nest("/api/v1", api)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) fn err(status: StatusCode, code: &'static str, message: impl Into<String>, field: Option<&str>) -> ApiError {
    ApiError { status, code, message: message.into(), field: field.map(str::to_string), problems: Vec::new() }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound { .. } => err(StatusCode::NOT_FOUND, "not_found", e.to_string(), None),
            StoreError::Conflict { .. } => err(StatusCode::CONFLICT, "conflict", e.to_string(), Some("name")),
            StoreError::Invalid(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string(), None),
            _ => {
                tracing::error!(error = %e, "store error");
                err(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the database failed; see the server log", None)
            }
        }
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

/// The path of the first string in `v` that holds a NUL character (which PostgreSQL
/// cannot store), like `settings.script` or `phones[2]`.
fn nul_at(v: &serde_json::Value, path: &str) -> Option<String> {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(path.to_string()),
        serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| nul_at(x, &format!("{path}[{i}]"))),
        serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                return Some(path.to_string());
            }
            nul_at(x, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") })
        }),
        _ => None,
    }
}

fn nul_error(field: &str) -> ApiError {
    err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_text", "text may not contain a NUL character", Some(field))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => {
                if let Some(field) = nul_at(&v, "") {
                    return Err(nul_error(&field));
                }
                // Typed from the value, so that the message still names the field at fault.
                serde_path_to_error::deserialize(v).map(ApiJson).map_err(|e| {
                    let field = e.path().to_string();
                    let mut a = err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", format!("{field}: {}", e.inner()), None);
                    a.field = Some(field).filter(|f| f != ".");
                    a
                })
            }
            Err(rej) => Err(match &rej {
                // The text names the JSON path at fault, e.g. "settings.ring_timeout_s: invalid type…".
                JsonRejection::JsonDataError(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", rej.body_text(), None),
                JsonRejection::JsonSyntaxError(_) => err(StatusCode::BAD_REQUEST, "bad_json", rej.body_text(), None),
                JsonRejection::MissingJsonContentType(_) => {
                    err(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send Content-Type: application/json", None)
                }
                _ => err(StatusCode::BAD_REQUEST, "bad_request", rej.body_text(), None),
            }),
        }
    }
}

/// `Query<T>` whose rejections are [`ApiError`]s.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(q) = parts.uri.query().filter(|q| q.contains("%00")) {
            let key = q.split('&').find(|kv| kv.contains("%00")).and_then(|kv| kv.split('=').next()).unwrap_or("query");
            return Err(err(StatusCode::BAD_REQUEST, "bad_query", "query parameters may not contain a NUL character", Some(key)));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| err(StatusCode::BAD_REQUEST, "bad_query", e.body_text(), None))
    }
}

/// `Path<T>` whose rejections are [`ApiError`]s.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.path().contains("%00") {
            return Err(err(StatusCode::BAD_REQUEST, "bad_path", "the path may not contain a NUL character", None));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| err(StatusCode::BAD_REQUEST, "bad_path", e.body_text(), None))
    }
}

/// `format=json` (default) or `format=csv` for reports and exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}
