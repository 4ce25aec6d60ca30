//! Reports as JSON or CSV (`?format=csv`): outcomes, penetration, hourly, CDRs.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::Json;
use pacer_dialer::store::CdrQuery;
use serde::{Deserialize, Serialize};

use super::csv_out::csv_response;
use super::{ApiPath, ApiQuery, Format};
use crate::http::{ApiError, AppState};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("get", "/reports/campaigns/{id}/outcomes", get(outcomes)),
        ("get", "/reports/campaigns/{id}/penetration", get(penetration)),
        ("get", "/reports/campaigns/{id}/hourly", get(hourly)),
        ("get", "/reports/cdr", get(cdr)),
    ]
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Range {
    /// Unix ms; default: 24 hours ago.
    from: Option<i64>,
    /// Unix ms; default: now.
    to: Option<i64>,
    format: Format,
}

impl Range {
    fn bounds(&self) -> (i64, i64) {
        let now = pacer_dialer::store::now_ms();
        (self.from.unwrap_or(now - 86_400_000), self.to.unwrap_or(now + 1))
    }
}

fn answer<T: Serialize>(rows: Vec<T>, format: Format, name: &str) -> Response {
    match format {
        Format::Json => Json(rows).into_response(),
        Format::Csv => csv_response(&rows, name),
    }
}

async fn outcomes(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiQuery(r): ApiQuery<Range>) -> Result<Response, ApiError> {
    st.store.campaign(id).await?;
    let (from, to) = r.bounds();
    Ok(answer(st.store.outcome_summary(id, from, to).await?, r.format, "outcomes.csv"))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct FormatOnly {
    format: Format,
}

async fn penetration(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiQuery(f): ApiQuery<FormatOnly>) -> Result<Response, ApiError> {
    st.store.campaign(id).await?;
    Ok(answer(st.store.penetration(id).await?, f.format, "penetration.csv"))
}

async fn hourly(State(st): State<AppState>, ApiPath(id): ApiPath<i64>, ApiQuery(r): ApiQuery<Range>) -> Result<Response, ApiError> {
    st.store.campaign(id).await?;
    let (from, to) = r.bounds();
    let zone = st.config.dialer.time_zone.parse().unwrap_or(chrono_tz::UTC);
    Ok(answer(st.store.hourly(id, from, to, zone).await?, r.format, "hourly.csv"))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CdrParams {
    campaign_id: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
    outcome: Option<String>,
    agent_id: Option<i64>,
    phone: Option<String>,
    after_id: Option<i64>,
    limit: Option<i64>,
    format: Format,
}

async fn cdr(State(st): State<AppState>, ApiQuery(p): ApiQuery<CdrParams>) -> Result<Response, ApiError> {
    let q = CdrQuery { campaign_id: p.campaign_id, from: p.from, to: p.to, outcome: p.outcome, agent_id: p.agent_id, phone: p.phone, after_id: p.after_id, limit: p.limit };
    Ok(answer(st.store.cdrs(&q).await?, p.format, "cdr.csv"))
}
