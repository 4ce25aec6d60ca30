//! Recordings over HTTP through signed, expiring links: the kind a CRM stores from a
//! webhook. `GET /recordings/{attempt}?expires=<unix s>&sig=<hex>` serves the WAV when the
//! HMAC of `rec:<attempt>:<expires>` under the server's signing key matches and the link
//! has not expired; anything else is a 403 that says which.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::api::{ApiPath, ApiQuery, err};
use crate::http::{ApiError, AppState};

fn mac(key: &[u8], attempt: i64, expires: i64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(format!("rec:{attempt}:{expires}").as_bytes());
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The path and query of a link to `attempt`'s recording, valid for `ttl_s`.
pub fn signed_path(key: &[u8], attempt: i64, now_s: i64, ttl_s: u64) -> String {
    let expires = now_s + ttl_s as i64;
    format!("/recordings/{attempt}?expires={expires}&sig={}", mac(key, attempt, expires))
}

#[derive(Deserialize)]
pub struct Link {
    expires: i64,
    sig: String,
}

pub async fn get(State(s): State<AppState>, ApiPath(attempt): ApiPath<i64>, ApiQuery(l): ApiQuery<Link>) -> Result<Response, ApiError> {
    let key = s.signing_key.as_ref().ok_or_else(|| err(StatusCode::SERVICE_UNAVAILABLE, "no_key", "this server signs no links", None))?;
    // Constant-time comparison through the MAC's own verify.
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(format!("rec:{attempt}:{}", l.expires).as_bytes());
    let sig: Option<Vec<u8>> = (l.sig.len() == 64).then(|| (0..32).map(|i| u8::from_str_radix(&l.sig[2 * i..2 * i + 2], 16).ok()).collect()).flatten();
    if sig.is_none_or(|sig| m.verify_slice(&sig).is_err()) {
        return Err(err(StatusCode::FORBIDDEN, "bad_signature", "the link's signature does not match", Some("sig")));
    }
    if l.expires < chrono::Utc::now().timestamp() {
        return Err(err(StatusCode::FORBIDDEN, "expired", "the link has expired; ask for a new one", Some("expires")));
    }
    let path: Option<Option<String>> = sqlx::query_scalar("SELECT recording_path FROM lead_attempts WHERE id = $1").bind(attempt).fetch_optional(s.store.pool()).await.map_err(|e| ApiError::from(pacer_dialer::store::StoreError::from(e)))?;
    let Some(Some(path)) = path else {
        return Err(err(StatusCode::NOT_FOUND, "not_found", format!("call {attempt} has no recording"), None));
    };
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        tracing::warn!(path, error = %e, "recording file unreadable");
        err(StatusCode::NOT_FOUND, "not_found", "the recording file is missing", None)
    })?;
    let target = format!("recording {attempt}");
    let detail = format!("signed link expiring {}", l.expires);
    crate::auth::audit(&s.store, pacer_dialer::store::AuditEvent { actor: "signed link", action: "recording_download", target: &target, detail: &detail, source: "" }).await;
    Ok(([(header::CONTENT_TYPE, "audio/wav"), (header::CACHE_CONTROL, "private, max-age=300")], bytes).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_are_bound_to_the_attempt_and_the_expiry() {
        let p = super::signed_path(b"k", 7, 1000, 60);
        assert!(p.starts_with("/recordings/7?expires=1060&sig="));
        assert_ne!(super::mac(b"k", 7, 1060), super::mac(b"k", 8, 1060));
        assert_ne!(super::mac(b"k", 7, 1060), super::mac(b"k", 7, 1061));
    }
}
