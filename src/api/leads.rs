//! Leads (search, read, edit, reset), dispositions, callbacks and call outcomes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, patch, post};
use axum::Json;
use pacer_dialer::outcome::{CallOutcome, Settled};
use pacer_dialer::store::{Callback, CallbackQuery, Disposition, Lead, LeadEdit, LeadQuery};

use super::{ApiJson, ApiPath, ApiQuery, err};
use crate::http::{ApiError, AppState};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/leads", get(search)),
        ("get", "/leads/{id}", get(one)),
        ("patch", "/leads/{id}", patch(edit)),
        ("post", "/leads/{id}/reset", post(reset)),
        ("get", "/dispositions", get(dispositions)),
        ("post", "/dispositions", post(create_disposition)),
        ("delete", "/dispositions/{code}", delete(delete_disposition)),
        ("get", "/callbacks", get(callbacks)),
        ("post", "/callbacks", post(schedule_callback)),
        ("delete", "/callbacks/{id}", delete(cancel_callback)),
        ("post", "/outcomes", post(outcome)),
    ]
}

async fn search(State(st): State<AppState>, ApiQuery(mut q): ApiQuery<LeadQuery>) -> Result<Json<Vec<Lead>>, ApiError> {
    if let Some(f) = &q.filter {
        super::lists::check_filter(f)?;
    }
    q.today = Some(super::lists::centre_today(&st));
    Ok(Json(st.store.search_leads(&q).await?))
}

async fn one(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Lead>, ApiError> {
    Ok(Json(st.store.lead(id).await?))
}

async fn edit(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiJson(e): ApiJson<LeadEdit>) -> Result<Json<Lead>, ApiError> {
    Ok(Json(st.store.edit_lead(id, &e).await?))
}

async fn reset(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Lead>, ApiError> {
    Ok(Json(st.store.reset_lead(id).await?))
}

async fn dispositions(State(st): State<AppState>) -> Result<Json<Vec<Disposition>>, ApiError> {
    Ok(Json(st.store.dispositions().await?))
}

async fn create_disposition(State(st): State<AppState>, ApiJson(d): ApiJson<Disposition>) -> Result<(StatusCode, Json<Disposition>), ApiError> {
    st.store.create_disposition(&d).await.map(|d| (StatusCode::CREATED, Json(d))).map_err(|e| {
        let mut e = ApiError::from(e);
        e.field = Some("code".into());
        e
    })
}

async fn delete_disposition(State(st): State<AppState>, ApiPath(code): ApiPath<String>) -> Result<StatusCode, ApiError> {
    st.store.delete_disposition(&code).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn callbacks(State(st): State<AppState>, ApiQuery(q): ApiQuery<CallbackQuery>) -> Result<Json<Vec<Callback>>, ApiError> {
    Ok(Json(st.store.callbacks(&q).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    lead_id: i64,
    /// The lead's local wall-clock time, `YYYY-MM-DDTHH:MM[:SS]`.
    at_local: String,
    /// Only this agent gets it (until the campaign's grace); absent: anyone.
    agent_id: Option<i64>,
    #[serde(default)]
    notes: String,
}

/// A manager (or an integration) schedules a callback; it replaces the lead's open one.
async fn schedule_callback(State(st): State<AppState>, ApiJson(b): ApiJson<CallbackBody>) -> Result<(StatusCode, Json<Callback>), ApiError> {
    let at = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(b.at_local.trim(), f).ok())
        .ok_or_else(|| err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", format!("at_local: {:?} is not YYYY-MM-DDTHH:MM[:SS]", b.at_local), Some("at_local")))?;
    let zone = st.config.dialer.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let cb = st.store.schedule_callback(b.lead_id, at, b.agent_id, &b.notes, zone).await.map_err(|e| {
        let mut e = ApiError::from(e);
        e.field = Some("lead_id".into());
        e
    })?;
    Ok((StatusCode::CREATED, Json(cb)))
}

async fn cancel_callback(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<StatusCode, ApiError> {
    st.store.cancel_callback(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A dialer node (or an integration) reports a finished call.
async fn outcome(State(st): State<AppState>, ApiJson(o): ApiJson<CallOutcome>) -> Result<Json<Settled>, ApiError> {
    if o.owner.is_empty() || o.phone.is_empty() || o.outcome.is_empty() || o.started_at <= 0 {
        return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "owner, phone, outcome and started_at are required", None));
    }
    let zone = st.config.dialer.time_zone.parse().unwrap_or(chrono_tz::UTC);
    Ok(Json(st.store.record_outcome(&o, pacer_dialer::store::now_ms(), zone).await?))
}
