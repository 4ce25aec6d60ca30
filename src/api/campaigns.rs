//! Campaigns: create, read, update, start/pause/stop/archive, abandon accounting, lists.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, patch, post};
use axum::Json;
use pacer_dialer::settings::CampaignSettings;
use pacer_dialer::store::{Campaign, CampaignAction, CampaignUpdate, DialMode, List, NewCampaign};
use serde::Deserialize;

use super::{ApiJson, ApiPath, err};
use crate::http::{ApiError, AppState};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/campaigns", get(list)),
        ("post", "/campaigns", post(create)),
        ("get", "/campaigns/{id}", get(one)),
        ("patch", "/campaigns/{id}", patch(update)),
        ("post", "/campaigns/{id}/start", post(|s: State<AppState>, p: ApiPath<i64>| act(s, p, CampaignAction::Start))),
        ("post", "/campaigns/{id}/pause", post(|s: State<AppState>, p: ApiPath<i64>| act(s, p, CampaignAction::Pause))),
        ("post", "/campaigns/{id}/stop", post(|s: State<AppState>, p: ApiPath<i64>| act(s, p, CampaignAction::Stop))),
        ("post", "/campaigns/{id}/archive", post(|s: State<AppState>, p: ApiPath<i64>| act(s, p, CampaignAction::Archive))),
        ("get", "/campaigns/{id}/abandon", get(abandon)),
        ("get", "/campaigns/{id}/lists", get(lists)),
        ("post", "/campaigns/{id}/lists", post(create_list)),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default = "predictive")]
    dial_mode: DialMode,
    #[serde(default)]
    settings: serde_json::Value,
}

fn predictive() -> DialMode {
    DialMode::Predictive
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: Option<String>,
    dial_mode: Option<DialMode>,
    settings: Option<serde_json::Value>,
}

/// Parse and validate settings JSON, reporting every problem at once; the campaign's
/// destinations are checked against the system's (`dialer.allowed_destinations`) too.
fn settings(v: &serde_json::Value, dialer: &pacer_config::DialerConfig) -> Result<CampaignSettings, ApiError> {
    let v = if v.is_null() { serde_json::json!({}) } else { v.clone() };
    let parsed = CampaignSettings::from_json(&v).map_err(|p| invalid_settings(p))?;
    let mut problems = parsed.validate();
    if let Ok(guard) = pacer_dialer::guard::Guard::from_config(dialer) {
        for (i, reason) in guard.campaign_problems(&parsed.allowed_destinations) {
            problems.push(pacer_dialer::settings::SettingsProblem { field: format!("allowed_destinations[{i}]"), reason });
        }
    }
    if problems.is_empty() { Ok(parsed) } else { Err(invalid_settings(problems)) }
}

fn invalid_settings(problems: Vec<pacer_dialer::settings::SettingsProblem>) -> ApiError {
    let message = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
    let mut e = err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings", message, None);
    e.field = problems.first().map(|p| format!("settings.{}", p.field));
    e.problems = problems;
    e
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "name must be 1 to 200 characters", Some("name")));
    }
    Ok(())
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<Campaign>>, ApiError> {
    Ok(Json(st.store.campaigns().await?))
}

async fn create(State(st): State<AppState>, ApiJson(b): ApiJson<CreateBody>) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    check_name(&b.name)?;
    let settings = settings(&b.settings, &st.config.dialer)?;
    let c = st.store.create_campaign(&NewCampaign { name: b.name.trim().to_string(), dial_mode: b.dial_mode, settings }).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

async fn one(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Campaign>, ApiError> {
    Ok(Json(st.store.campaign(id).await?))
}

async fn update(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiJson(b): ApiJson<UpdateBody>) -> Result<Json<Campaign>, ApiError> {
    if let Some(n) = &b.name {
        check_name(n)?;
    }
    let settings = b.settings.as_ref().map(|v| settings(v, &st.config.dialer)).transpose()?;
    let upd = CampaignUpdate { name: b.name.map(|n| n.trim().to_string()), dial_mode: b.dial_mode, settings };
    Ok(Json(st.store.update_campaign(id, &upd).await?))
}

async fn act(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, action: CampaignAction) -> Result<Json<Campaign>, ApiError> {
    st.store.campaign_action(id, action).await.map(Json).map_err(|e| {
        let mut e = ApiError::from(e);
        if e.code == "invalid" {
            e.code = "invalid_transition";
            e.status = StatusCode::CONFLICT;
            e.field = Some("status".into());
        }
        e
    })
}

async fn abandon(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<pacer_dialer::store::AbandonStats>, ApiError> {
    let zone = st.config.dialer.time_zone.parse().unwrap_or(chrono_tz::UTC);
    Ok(Json(st.store.abandon_stats(id, chrono::Utc::now(), zone).await?))
}

async fn lists(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Vec<List>>, ApiError> {
    st.store.campaign(id).await?;
    Ok(Json(st.store.lists(id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBody {
    name: String,
    #[serde(default)]
    priority: i64,
}

async fn create_list(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiJson(b): ApiJson<ListBody>) -> Result<(StatusCode, Json<List>), ApiError> {
    check_name(&b.name)?;
    Ok((StatusCode::CREATED, Json(st.store.create_list(id, b.name.trim(), b.priority).await?)))
}
