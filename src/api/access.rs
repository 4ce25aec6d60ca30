//! Access administration (admins): users and their roles, API tokens, the audit log; and
//! `/me`, which tells any caller who they are.

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, patch, post};
use axum::Json;
use pacer_dialer::store::{ApiToken, AuditEntry, AuditEvent, Role, User, now_ms};
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiPath, ApiQuery, err};
use crate::auth::Principal;
use crate::http::{ApiError, AppState};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/me", get(me)),
        ("get", "/users", get(users)),
        ("post", "/users", post(create_user)),
        ("patch", "/users/{id}", patch(set_role)),
        ("get", "/tokens", get(tokens)),
        ("post", "/tokens", post(create_token)),
        ("delete", "/tokens/{id}", delete(revoke_token)),
        ("get", "/audit", get(audit_log)),
    ]
}

#[derive(Serialize)]
struct Me {
    username: String,
    role: Role,
    via: String,
}

async fn me(Extension(p): Extension<Principal>) -> Json<Me> {
    Json(Me { username: p.name, role: p.role, via: p.via })
}

async fn users(State(s): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(s.store.users().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    role: Role,
}

fn password_ok(p: &str) -> Result<(), ApiError> {
    if p.chars().count() < 8 {
        return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "password: at least 8 characters", Some("password")));
    }
    Ok(())
}

async fn create_user(State(s): State<AppState>, ApiJson(b): ApiJson<NewUser>) -> Result<(StatusCode, Json<User>), ApiError> {
    password_ok(&b.password)?;
    let u = s.store.create_user(&b.username, b.role, &crate::auth::hash_password(&b.password)).await.map_err(|e| {
        let mut e = ApiError::from(e);
        e.field = Some("username".into());
        e
    })?;
    Ok((StatusCode::CREATED, Json(u)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: Role,
}

async fn set_role(State(s): State<AppState>, Extension(p): Extension<Principal>, ApiPath(id): ApiPath<i64>, ApiJson(b): ApiJson<RoleBody>) -> Result<Json<User>, ApiError> {
    let u = s.store.set_user_role(id, b.role).await?;
    let detail = format!("{} is now {}", u.username, u.role.as_str());
    crate::auth::audit(&s.store, AuditEvent { actor: &p.name, action: "role_change", target: &u.username, detail: &detail, source: "" }).await;
    Ok(Json(u))
}

async fn tokens(State(s): State<AppState>) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(s.store.tokens().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// The user whose role the token carries.
    username: String,
    /// What it is for.
    name: String,
}

#[derive(Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    record: ApiToken,
    /// The token itself: shown this once, stored only as a hash.
    token: String,
}

async fn create_token(State(s): State<AppState>, ApiJson(b): ApiJson<NewToken>) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (record, token) = issue_token(&s.store, &b.username, &b.name).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { record, token })))
}

/// A new token for `username`: its record and the secret (for the API and the CLI).
pub async fn issue_token(store: &pacer_dialer::store::Store, username: &str, name: &str) -> Result<(ApiToken, String), ApiError> {
    let u = store.user_by_username(username).await?.ok_or_else(|| err(StatusCode::UNPROCESSABLE_ENTITY, "unknown_user", format!("no user {username:?}"), Some("username")))?;
    let token = crate::auth::new_secret("pacer_");
    let record = store.create_token(u.id, name, &crate::auth::sha256_hex(&token)).await.map_err(|e| {
        let mut e = ApiError::from(e);
        e.field = Some("name".into());
        e
    })?;
    Ok((record, token))
}

async fn revoke_token(State(s): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<StatusCode, ApiError> {
    s.store.revoke_token(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct AuditQuery {
    /// Unix ms; default: the last 24 hours.
    since: Option<i64>,
    /// At most this many lines (1–10000, default 500).
    limit: Option<i64>,
}

async fn audit_log(State(s): State<AppState>, ApiQuery(q): ApiQuery<AuditQuery>) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "limit: 1 to 10000", Some("limit")));
    }
    Ok(Json(s.store.audit_log(q.since.unwrap_or(now_ms() - 86_400_000), limit).await?))
}
