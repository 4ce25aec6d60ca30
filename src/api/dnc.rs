//! Do-not-call lists: campaign 0 is the system list.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, post};
use axum::Json;
use pacer_dialer::phone::Normalizer;
use pacer_dialer::store::DncEntry;
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiPath, ApiQuery, err};
use crate::http::{ApiError, AppState};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/dnc/{campaign_id}", get(list)),
        ("post", "/dnc/{campaign_id}", post(add)),
        ("post", "/dnc/{campaign_id}/import", post(import)),
        ("delete", "/dnc/{campaign_id}/{phone}", delete(remove)),
    ]
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Page {
    after: String,
    limit: Option<i64>,
}

async fn list(State(st): State<AppState>, ApiPath(c): ApiPath<i64>, ApiQuery(p): ApiQuery<Page>) -> Result<Json<Vec<DncEntry>>, ApiError> {
    Ok(Json(st.store.dnc_entries(c, &p.after, p.limit.unwrap_or(1000)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    phones: Vec<String>,
    #[serde(default)]
    reason: String,
    country: Option<String>,
}

#[derive(Serialize)]
struct Added {
    added: u64,
    already_listed: u64,
}

async fn campaign_exists(st: &AppState, c: i64) -> Result<(), ApiError> {
    if c != 0 {
        st.store.campaign(c).await?;
    }
    Ok(())
}

fn normalizer(st: &AppState, country: Option<&str>) -> Result<Normalizer, ApiError> {
    Normalizer::new(country.unwrap_or(&st.config.dialer.default_country)).map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e, Some("country")))
}

async fn add(State(st): State<AppState>, ApiPath(c): ApiPath<i64>, ApiJson(b): ApiJson<AddBody>) -> Result<(StatusCode, Json<Added>), ApiError> {
    campaign_exists(&st, c).await?;
    let n = normalizer(&st, b.country.as_deref())?;
    let mut phones = Vec::with_capacity(b.phones.len());
    for (i, p) in b.phones.iter().enumerate() {
        phones.push(n.normalize(p).map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone", e, Some(&format!("phones[{i}]"))))?.e164);
    }
    let added = st.store.add_dnc(c, &phones, &b.reason).await?;
    Ok((StatusCode::CREATED, Json(Added { added, already_listed: phones.len() as u64 - added })))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ImportQuery {
    reason: String,
    country: Option<String>,
}

#[derive(Serialize)]
struct ImportReport {
    added: u64,
    already_listed: u64,
    rejected: Vec<pacer_dialer::import::Rejected>,
}

/// A CSV (or plain list) of numbers, one per line, in the first column; a header line
/// that is not a number is skipped. Bounded by `http.max_body_bytes`.
async fn import(State(st): State<AppState>, ApiPath(c): ApiPath<i64>, ApiQuery(q): ApiQuery<ImportQuery>, body: Bytes) -> Result<Json<ImportReport>, ApiError> {
    campaign_exists(&st, c).await?;
    let n = normalizer(&st, q.country.as_deref())?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&body[..]);
    let (mut phones, mut rejected) = (Vec::new(), Vec::new());
    for (i, rec) in rdr.byte_records().enumerate() {
        let line = i as u64 + 1;
        let Ok(rec) = rec else {
            rejected.push(pacer_dialer::import::Rejected { line, reason: "unreadable line".into() });
            continue;
        };
        let raw = String::from_utf8_lossy(rec.get(0).unwrap_or_default()).trim_start_matches('\u{feff}').trim().to_string();
        if raw.is_empty() {
            continue;
        }
        match n.normalize(&raw) {
            Ok(p) => phones.push(p.e164),
            Err(_) if line == 1 => {} // a header
            Err(reason) => rejected.push(pacer_dialer::import::Rejected { line, reason }),
        }
    }
    let mut added = 0;
    for chunk in phones.chunks(1000) {
        added += st.store.add_dnc(c, chunk, &q.reason).await?;
    }
    Ok(Json(ImportReport { added, already_listed: phones.len() as u64 - added, rejected }))
}

async fn remove(State(st): State<AppState>, ApiPath((c, phone)): ApiPath<(i64, String)>) -> Result<StatusCode, ApiError> {
    st.store.remove_dnc(c, &phone).await?;
    Ok(StatusCode::NO_CONTENT)
}
