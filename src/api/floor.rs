//! Agents and the live floor: agent accounts, their time report, the live ACD view, the
//! pacing engine's explanation per campaign, and the kill switch.

use std::collections::BTreeMap;

use axum::{Extension, Json};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, post};
use pacer_dialer::pacing::Explanation;
use pacer_dialer::store::{Agent, AgentTime, KillSwitch, NewAgent, now_ms};
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiPath, ApiQuery, err};
use crate::auth::Principal;
use crate::http::{ApiError, AppState};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/agents", get(list)),
        ("post", "/agents", post(create)),
        ("get", "/agents/{id}", get(one)),
        ("get", "/agents/{id}/time", get(time)),
        ("get", "/live/agents", get(live_agents)),
        ("get", "/campaigns/{id}/pacing", get(pacing)),
        ("get", "/dialer/kill", get(kill_state)),
        ("post", "/dialer/kill", post(|s: State<AppState>, p: Extension<Principal>| kill(s, p, true))),
        ("delete", "/dialer/kill", delete(|s: State<AppState>, p: Extension<Principal>| kill(s, p, false))),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    username: String,
    #[serde(default)]
    name: String,
    password: String,
    #[serde(default)]
    skills: BTreeMap<String, u8>,
    #[serde(default)]
    campaigns: Vec<i64>,
    #[serde(default)]
    rank: i64,
}

async fn list(State(s): State<AppState>) -> Result<Json<Vec<Agent>>, ApiError> {
    Ok(Json(s.store.agents().await?))
}

async fn one(State(s): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Agent>, ApiError> {
    Ok(Json(s.store.agent(id).await?))
}

async fn create(State(s): State<AppState>, ApiJson(b): ApiJson<CreateBody>) -> Result<(StatusCode, Json<Agent>), ApiError> {
    if b.password.chars().count() < 8 {
        return Err(err(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "password: at least 8 characters", Some("password")));
    }
    let hash = crate::auth::hash_password(&b.password);
    let a = s
        .store
        .create_agent(&NewAgent { username: b.username, name: b.name, password_hash: hash, skills: b.skills, campaigns: b.campaigns, rank: b.rank })
        .await
        .map_err(|e| {
            let mut e = ApiError::from(e);
            if e.code == "conflict" || e.message.contains("username") {
                e.field = Some("username".into());
            } else if e.message.contains("skills") {
                e.field = Some("skills".into());
            }
            e
        })?;
    Ok((StatusCode::CREATED, Json(a)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Period {
    /// Unix ms; default: 24 hours ago.
    from: Option<i64>,
    /// Unix ms; default: now.
    to: Option<i64>,
}

/// An agent's time per state over a period, with the figures drawn from it (also sent to
/// the agent's own desktop over the CTI socket).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeReport {
    #[serde(flatten)]
    pub time: AgentTime,
    pub logged_in_s: f64,
    pub occupancy: f64,
}

impl TimeReport {
    pub async fn of(store: &pacer_dialer::store::Store, id: i64, from: i64, to: i64) -> Result<TimeReport, pacer_dialer::store::StoreError> {
        let t = store.agent_time(Some(id), from, to).await?.into_iter().next().unwrap_or(AgentTime { agent_id: id, ..AgentTime::default() });
        Ok(TimeReport { logged_in_s: t.logged_in_s(), occupancy: t.occupancy(), time: t })
    }
}

async fn time(State(s): State<AppState>, ApiPath(id): ApiPath<i64>, ApiQuery(p): ApiQuery<Period>) -> Result<Json<TimeReport>, ApiError> {
    s.store.agent(id).await?;
    let to = p.to.unwrap_or_else(now_ms);
    let from = p.from.unwrap_or(to - 86_400_000);
    if from > to {
        return Err(err(StatusCode::BAD_REQUEST, "bad_query", "from is after to", Some("from")));
    }
    Ok(Json(TimeReport::of(&s.store, id, from, to).await?))
}

fn no_dialer() -> ApiError {
    err(StatusCode::SERVICE_UNAVAILABLE, "no_dialer", "this server runs no dialer", None)
}

/// The same rows the supervisor's socket sends.
async fn live_agents(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let cti = s.cti.as_ref().ok_or_else(no_dialer)?;
    Ok(Json(serde_json::to_value(crate::cti::supervisor::snapshot(cti).await).unwrap_or_default()))
}

#[derive(Serialize)]
struct Pacing {
    campaign_id: i64,
    running: bool,
    #[serde(flatten)]
    explanation: Explanation,
}

async fn pacing(State(s): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<Pacing>, ApiError> {
    s.store.campaign(id).await?;
    let d = s.dialer.as_ref().ok_or_else(no_dialer)?;
    let e = d.explain(id);
    Ok(Json(Pacing { campaign_id: id, running: e.is_some(), explanation: e.unwrap_or_default() }))
}

/// The switch lives in the database: it stops every node sharing it and survives restarts.
async fn kill_state(State(s): State<AppState>) -> Result<Json<KillSwitch>, ApiError> {
    Ok(Json(s.store.kill_switch().await?))
}

/// Written to the database for every node; this node's dialer (when it runs one) obeys at
/// once, the others within a second.
async fn kill(State(s): State<AppState>, Extension(p): Extension<Principal>, on: bool) -> Result<Json<KillSwitch>, ApiError> {
    Ok(Json(match s.dialer.as_ref() {
        Some(d) => d.set_kill_switch(on, &format!("api:{}@{}", p.name, d.ctx().node)).await?,
        None => s.store.set_kill_switch(on, &format!("api:{}", p.name)).await?,
    }))
}
