//! Lists: read, update, import CSV (streamed), export CSV (streamed).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get, patch, post};
use axum::Json;
use pacer_dialer::import::{ImportError, ImportOptions, ImportReport, Mapping, import_csv};
use pacer_dialer::store::{LeadQuery, List};
use serde::Deserialize;

use super::csv_out::{BodyReader, ChannelBody, attachment};
use super::{ApiJson, ApiPath, ApiQuery, err};
use crate::http::{ApiError, AppState};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/lists/{id}", get(one)),
        ("patch", "/lists/{id}", patch(update)),
        ("post", "/lists/{id}/import", post(import)),
        ("get", "/lists/{id}/export", get(export)),
    ]
}

async fn one(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<List>, ApiError> {
    Ok(Json(st.store.list(id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    priority: Option<i64>,
    active: Option<bool>,
    /// Which leads of the list are dialled (a field expression); `""` clears it.
    filter: Option<String>,
}

async fn update(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiJson(b): ApiJson<UpdateBody>) -> Result<Json<List>, ApiError> {
    if let Some(f) = &b.filter {
        check_filter(f)?;
    }
    let list = st.store.update_list(id, b.priority, b.active).await?;
    match &b.filter {
        Some(f) => Ok(Json(st.store.set_list_filter(id, f).await?)),
        None => Ok(Json(list)),
    }
}

/// A filter expression, or a 422 naming the character at fault.
pub(super) fn check_filter(f: &str) -> Result<(), ApiError> {
    if f.trim().is_empty() {
        return Ok(());
    }
    pacer_dialer::filter::Filter::parse(f).map(|_| ()).map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter", e.to_string(), Some("filter")))
}

/// The call centre's date: what `today` means in filters.
pub(super) fn centre_today(st: &AppState) -> chrono::NaiveDate {
    let zone: chrono_tz::Tz = st.config.dialer.time_zone.parse().unwrap_or(chrono_tz::UTC);
    chrono::Utc::now().with_timezone(&zone).date_naive()
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ImportQuery {
    /// `field=column` pairs, comma-separated (`phone=Mobile,alt_phone=Home`).
    map: Option<String>,
    /// Default country for numbers without a country code (else `dialer.default_country`).
    country: Option<String>,
}

/// The body is the CSV file itself, read as it arrives.
async fn import(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiQuery(q): ApiQuery<ImportQuery>, body: Body) -> Result<Json<ImportReport>, ApiError> {
    st.store.list(id).await?;
    let mut mapping = Mapping::default();
    if let Some(m) = &q.map {
        mapping.add(m).map_err(|e| err(StatusCode::BAD_REQUEST, "bad_mapping", e, Some("map")))?;
    }
    let opts = ImportOptions { mapping, default_country: q.country.unwrap_or_else(|| st.config.dialer.default_country.clone()) };
    match import_csv(&st.store, id, BodyReader::spawn(body), opts).await {
        Ok(r) => Ok(Json(r)),
        Err(ImportError::Header(m)) => Err(err(StatusCode::UNPROCESSABLE_ENTITY, "bad_csv", m, None)),
        Err(ImportError::Read { line, source }) => Err(err(StatusCode::BAD_REQUEST, "body_read", format!("near line {line}: {source}"), None)),
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ExportQuery {
    /// Only leads matching this field expression.
    filter: Option<String>,
}

/// Every lead of the list (or those matching `filter`), 1000 at a time, as CSV.
async fn export(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiQuery(eq): ApiQuery<ExportQuery>) -> Result<Response, ApiError> {
    st.store.list(id).await?;
    if let Some(f) = &eq.filter {
        check_filter(f)?;
    }
    let today = centre_today(&st);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = st.store.clone();
    tokio::spawn(async move {
        let mut after = 0;
        let mut first = true;
        loop {
            let q = LeadQuery { list_id: Some(id), after_id: Some(after), limit: Some(1000), filter: eq.filter.clone(), today: Some(today), ..Default::default() };
            let page = match store.search_leads(&q).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            if first {
                let _ = w.write_record(["id", "phone", "alt_phones", "name", "time_zone", "postal_code", "state", "attempts", "last_outcome", "fields"]);
                first = false;
            }
            for l in &page {
                let _ = w.write_record([
                    l.id.to_string(),
                    l.phone.clone(),
                    l.alt_phones.join(" "),
                    l.name.clone(),
                    l.time_zone.clone().unwrap_or_default(),
                    l.postal_code.clone().unwrap_or_default(),
                    l.state.as_str().to_string(),
                    l.attempts.to_string(),
                    l.last_outcome.clone().unwrap_or_default(),
                    serde_json::Value::Object(l.fields.clone()).to_string(),
                ]);
            }
            let bytes = w.into_inner().unwrap_or_default();
            if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                return;
            }
            match page.last() {
                Some(l) if page.len() == 1000 => after = l.id,
                _ => return,
            }
        }
    });
    Ok(attachment(Body::new(ChannelBody(rx)), &format!("list-{id}.csv")))
}
