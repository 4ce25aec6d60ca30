//! Who is asking, and may they: passwords (argon2id hashes in the PHC string format, so
//! parameters can be raised later without breaking old hashes), API bearer tokens and web
//! sessions (both stored only as SHA-256 hashes), the role each API route needs, and the
//! audit log of what users did.
//!
//! A request to `/api/v1` carries either `Authorization: Bearer <token>` (integrations)
//! or the `pacer_session` cookie of `POST /login` (web pages). Cookie requests that change
//! something must also echo the session's CSRF token in `X-CSRF-Token` (the cookie is
//! `SameSite=Strict` besides), so another site cannot make a browser act for its user.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pacer_dialer::store::{AuditEvent, Role, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::http::{ApiError, AppState};

/// The web session cookie.
pub const SESSION_COOKIE: &str = "pacer_session";
/// The agent desktop's session cookie (agents are not users: it opens their CTI socket
/// and nothing of the API).
pub const AGENT_SESSION_COOKIE: &str = "pacer_agent_session";
/// The header that carries a session's CSRF token on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The caller of an API request, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user name (`config` for `auth.admin_token`).
    pub name: String,
    pub role: Role,
    /// How they came in: `token:ID`, `session`, `config`.
    pub via: String,
}

/// A fresh random secret (256 bits) as text, with a prefix that says what it is.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", hex(&b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex SHA-256: how tokens and session ids are stored.
pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's address, when the server knows it.
pub fn source(req: &Request) -> String {
    req.extensions().get::<ConnectInfo<crate::tls::Peer>>().map(|c| c.0.0.ip().to_string()).unwrap_or_default()
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthenticated", message: message.into(), field: None, problems: Vec::new() }
}

/// Who sent the request: a bearer token or a session cookie (with its CSRF token on
/// unsafe methods). `Err` says what is missing or wrong.
pub async fn authenticate(st: &AppState, method: &Method, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).ok_or_else(|| unauthenticated("Authorization must be `Bearer <token>`"))?;
        if let Some(admin) = &st.config.auth.admin_token
            && constant_time_eq(admin.as_bytes(), token.as_bytes())
        {
            return Ok(Principal { name: "config".into(), role: Role::Admin, via: "config".into() });
        }
        return match st.store.use_token(&sha256_hex(token)).await? {
            Some((t, u)) => Ok(Principal { name: u.username, role: u.role, via: format!("token:{}", t.id) }),
            None => Err(unauthenticated("unknown or revoked token")),
        };
    }
    if let Some(sid) = cookie(headers, SESSION_COOKIE) {
        let Some((u, csrf)) = st.store.session(&sha256_hex(sid)).await? else {
            return Err(unauthenticated("the session has expired; log in again"));
        };
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let echoed = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !safe && !constant_time_eq(echoed.as_bytes(), csrf.as_bytes()) {
            return Err(ApiError { status: StatusCode::FORBIDDEN, code: "csrf", message: format!("send the session's CSRF token in {CSRF_HEADER}"), field: None, problems: Vec::new() });
        }
        return Ok(Principal { name: u.username, role: u.role, via: "session".into() });
    }
    Err(unauthenticated("send `Authorization: Bearer <token>` or log in (POST /login)"))
}

/// Records an event in the audit log; a failure to write is logged, never fatal.
pub async fn audit(store: &Store, e: AuditEvent<'_>) {
    if let Err(err) = store.audit(&e).await {
        tracing::error!(error = %err, action = e.action, "audit log write failed");
    }
}

/// The guard of one API route: authenticates, checks the role, and writes changes and
/// exports to the audit log.
pub async fn guard(State((st, need, route)): State<(AppState, Option<Role>, &'static str)>, mut req: Request, next: Next) -> Response {
    let Some(need) = need else {
        return next.run(req).await;
    };
    let p = match authenticate(&st, req.method(), req.headers()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if p.role < need {
        let msg = format!("{route} needs the {} role; {} has {}", need.as_str(), p.name, p.role.as_str());
        return ApiError { status: StatusCode::FORBIDDEN, code: "forbidden", message: msg, field: None, problems: Vec::new() }.into_response();
    }
    let method = req.method().clone();
    let uri = req.uri().path().to_string();
    let src = source(&req);
    req.extensions_mut().insert(p.clone());
    let resp = next.run(req).await;
    let export = route.ends_with("/export") || route == "/reports/cdr";
    if (method != Method::GET || export) && resp.status().is_success() {
        let actor = format!("{} ({})", p.name, p.via);
        let target = format!("{method} {route}");
        let detail = format!("{uri} -> {}", resp.status().as_u16());
        audit(&st.store, AuditEvent { actor: &actor, action: if export { "export" } else { "api" }, target: &target, detail: &detail, source: &src }).await;
    }
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct LoggedIn {
    username: String,
    role: Role,
    /// Echo in `X-CSRF-Token` on every request that changes something.
    csrf_token: String,
    expires_at: i64,
}

/// Failed web logins allowed per client address and user name in [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

/// Failed logins by (address, user name): password guessing is refused with 429 after
/// [`MAX_FAILURES`] within the window, until the window has passed.
static FAILURES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>> = std::sync::LazyLock::new(Default::default);

fn failures(key: &str, add: bool) -> u32 {
    let mut m = FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    m.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
    if add {
        let e = m.entry(key.to_string()).or_insert((0, now));
        e.0 += 1;
    }
    m.get(key).map_or(0, |e| e.0)
}

/// A login request's client address, credentials and lockout key (`kind` keeps users' and
/// agents' failures apart); refused when the body is bad or the key is locked out.
async fn login_request(req: Request, kind: &str) -> Result<(String, LoginBody, String), Response> {
    let src = source(&req);
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024).await.map_err(|_| unauthenticated("the body is too large").into_response())?;
    let b: LoginBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_body", message: e.to_string(), field: None, problems: Vec::new() }.into_response())?;
    let key = format!("{src}/{kind}{}", b.username);
    if failures(&key, false) >= MAX_FAILURES {
        let msg = format!("too many failed logins for {}; try again in a few minutes", b.username);
        return Err(ApiError { status: StatusCode::TOO_MANY_REQUESTS, code: "too_many_failures", message: msg, field: None, problems: Vec::new() }.into_response());
    }
    Ok((src, b, key))
}

/// `POST /login`: a web session for a user (agents use `POST /login/agent`).
pub async fn login(State(st): State<AppState>, req: Request) -> Response {
    let (src, b, key) = match login_request(req, "").await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let user = match st.store.user_by_username(&b.username).await {
        Ok(u) => u,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(u) = user.filter(|u| verify_password(&b.password, &u.password_hash)) else {
        failures(&key, true);
        audit(&st.store, AuditEvent { actor: &b.username, action: "login_failed", target: "web", source: &src, ..Default::default() }).await;
        return unauthenticated("wrong username or password").into_response();
    };
    let sid = new_secret("");
    let csrf = new_secret("");
    let hours = i64::from(st.config.auth.session_hours);
    let expires_at = pacer_dialer::store::now_ms() + hours * 3_600_000;
    if let Err(e) = st.store.create_session(&sha256_hex(&sid), u.id, &csrf, expires_at).await {
        return ApiError::from(e).into_response();
    }
    audit(&st.store, AuditEvent { actor: &u.username, action: "login", target: "web", source: &src, ..Default::default() }).await;
    let secure = if st.config.auth.secure_cookies { "; Secure" } else { "" };
    let set = format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", hours * 3600);
    ([(header::SET_COOKIE, set)], Json(LoggedIn { username: u.username, role: u.role, csrf_token: csrf, expires_at })).into_response()
}

/// `POST /logout`: ends the cookie's session.
pub async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        let _ = st.store.end_session(&sha256_hex(sid)).await;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response()
}

/// `POST /login/agent`: a web session for an agent's desktop. The cookie then opens the
/// agent's CTI socket without a `login` message, so the page keeps no password.
pub async fn login_agent(State(st): State<AppState>, req: Request) -> Response {
    let (src, b, key) = match login_request(req, "agent:").await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let actor = format!("agent:{}", b.username);
    let agent = match st.store.agent_by_username(&b.username).await {
        Ok(a) => a,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(a) = agent.filter(|a| a.active && verify_password(&b.password, &a.password_hash)) else {
        failures(&key, true);
        audit(&st.store, AuditEvent { actor: &actor, action: "login_failed", target: "agent desktop", source: &src, ..Default::default() }).await;
        return unauthenticated("wrong username or password").into_response();
    };
    let sid = new_secret("");
    let hours = i64::from(st.config.auth.session_hours);
    let expires_at = pacer_dialer::store::now_ms() + hours * 3_600_000;
    if let Err(e) = st.store.create_agent_session(&sha256_hex(&sid), a.id, expires_at).await {
        return ApiError::from(e).into_response();
    }
    audit(&st.store, AuditEvent { actor: &actor, action: "login", target: "agent desktop", source: &src, ..Default::default() }).await;
    let secure = if st.config.auth.secure_cookies { "; Secure" } else { "" };
    let set = format!("{AGENT_SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", hours * 3600);
    ([(header::SET_COOKIE, set)], Json(serde_json::json!({"username": a.username, "name": a.name, "expires_at": expires_at}))).into_response()
}

/// `GET /login/agent`: the agent of this browser's session (so that a reloaded desktop
/// comes back without the password), or 401.
pub async fn agent_whoami(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match session_agent(&st.store, &headers).await {
        Some(a) => Json(serde_json::json!({"username": a.username, "name": a.name})).into_response(),
        None => unauthenticated("no agent session: log in").into_response(),
    }
}

/// `POST /logout/agent`: ends the agent desktop's session.
pub async fn logout_agent(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(sid) = cookie(&headers, AGENT_SESSION_COOKIE) {
        let _ = st.store.end_agent_session(&sha256_hex(sid)).await;
    }
    let clear = format!("{AGENT_SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response()
}

/// Whether a WebSocket upgrade may use its cookies: a browser always sends `Origin`, and
/// a page of another site must not ride on this site's session (cross-site WebSocket
/// hijacking; the cookies are SameSite=Strict as well).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin.split_once("://").is_some_and(|(_, h)| h.eq_ignore_ascii_case(host))
}

/// The active agent whose desktop session cookie this request carries.
pub async fn session_agent(store: &Store, headers: &HeaderMap) -> Option<pacer_dialer::store::Agent> {
    let sid = cookie(headers, AGENT_SESSION_COOKIE).filter(|_| same_origin(headers))?;
    store.agent_session(&sha256_hex(sid)).await.ok().flatten()
}

/// The user whose web session cookie this request carries (for the supervisor socket).
pub async fn session_user(store: &Store, headers: &HeaderMap) -> Option<pacer_dialer::store::User> {
    let sid = cookie(headers, SESSION_COOKIE).filter(|_| same_origin(headers))?;
    store.session(&sha256_hex(sid)).await.ok().flatten().map(|(u, _)| u)
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters cannot fail").to_string()
}

/// True when `password` matches the stored hash. A malformed or empty hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
        assert_ne!(h, hash_password("s3cret"));
        assert!(!verify_password("s3cret", ""));
        assert!(!verify_password("s3cret", "not a hash"));
    }
}
