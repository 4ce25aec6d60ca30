//! Reports over attempts and leads: abandon accounting, outcome summary, list
//! penetration, hourly activity and call detail records.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError};

/// Abandoned calls over live-answered calls (a human picked up, whether or not an agent
/// was found) — the ratio regulators cap at 3 %.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AbandonRate {
    pub answered: i64,
    pub abandoned: i64,
    pub rate: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AbandonStats {
    pub since_start: AbandonRate,
    /// Since midnight in the call centre's zone.
    pub today: AbandonRate,
    pub last_30_days: AbandonRate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeRow {
    pub list_id: i64,
    /// The agent's disposition, else the system outcome.
    pub code: String,
    pub calls: i64,
    pub talk_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Penetration {
    pub list_id: i64,
    pub total: i64,
    /// Never dialled.
    pub pending: i64,
    /// Waiting for a retry or a callback.
    pub retryable: i64,
    /// Claimed or on a call now.
    pub in_progress: i64,
    pub done: i64,
    pub dnc: i64,
    /// Share of the list that has been dialled at least once.
    pub penetration: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourRow {
    /// Start of the hour, Unix ms.
    pub hour_start: i64,
    /// The same instant in the call centre's zone, `YYYY-MM-DD HH:00`.
    pub hour_local: String,
    pub attempts: i64,
    /// Calls a human answered.
    pub contacts: i64,
    pub abandons: i64,
}

/// Filters for call detail records.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdrQuery {
    pub campaign_id: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub outcome: Option<String>,
    pub agent_id: Option<i64>,
    pub phone: Option<String>,
    pub after_id: Option<i64>,
    pub limit: Option<i64>,
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cdr {
    pub id: i64,
    pub lead_id: i64,
    pub campaign_id: i64,
    pub phone: String,
    pub call_id: Option<String>,
    pub trunk: Option<String>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    /// When answering-machine detection decided.
    pub verdict_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub sip_status: Option<i64>,
    pub q850_cause: Option<i64>,
    pub outcome: String,
    pub answered_by: Option<String>,
    pub agent_id: Option<i64>,
    pub disposition: Option<String>,
    pub abandoned: bool,
    pub talk_s: f64,
    pub wrap_s: f64,
    pub recording_path: Option<String>,
    /// The agent's notes, or the system's (a transfer, a failure).
    pub notes: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

impl Store {
    async fn abandon_since(&self, campaign_id: i64, from: i64) -> Result<AbandonRate, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN abandoned OR answered_by = 'human' THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN abandoned THEN 1 ELSE 0 END), 0) \
             FROM lead_attempts WHERE campaign_id = $1 AND started_at >= $2",
        )
        .bind(campaign_id)
        .bind(from)
        .fetch_one(self.pool())
        .await?;
        let (answered, abandoned): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok(AbandonRate { answered, abandoned, rate: if answered > 0 { abandoned as f64 / answered as f64 } else { 0.0 } })
    }

    /// Abandon rate since the campaign started, today (centre's zone) and over 30 days.
    pub async fn abandon_stats(&self, campaign_id: i64, now: DateTime<Utc>, centre: Tz) -> Result<AbandonStats, StoreError> {
        let c = self.campaign(campaign_id).await?;
        let midnight = centre
            .from_local_datetime(&now.with_timezone(&centre).date_naive().and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map_or(now.timestamp_millis() - DAY_MS, |t| t.timestamp_millis());
        Ok(AbandonStats {
            since_start: self.abandon_since(campaign_id, c.started_at.unwrap_or(i64::MAX)).await?,
            today: self.abandon_since(campaign_id, midnight).await?,
            last_30_days: self.abandon_since(campaign_id, now.timestamp_millis() - 30 * DAY_MS).await?,
        })
    }

    /// Calls per list and disposition between `from` and `to` (Unix ms).
    pub async fn outcome_summary(&self, campaign_id: i64, from: i64, to: i64) -> Result<Vec<OutcomeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.list_id, COALESCE(a.disposition, a.outcome) AS code, COUNT(*), COALESCE(SUM(a.talk_s), 0) \
             FROM lead_attempts a JOIN leads l ON l.id = a.lead_id \
             WHERE a.campaign_id = $1 AND a.started_at >= $2 AND a.started_at < $3 \
             GROUP BY l.list_id, COALESCE(a.disposition, a.outcome) ORDER BY l.list_id, code",
        )
        .bind(campaign_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(OutcomeRow { list_id: r.try_get(0)?, code: r.try_get(1)?, calls: r.try_get(2)?, talk_s: r.try_get(3)? }))
            .collect()
    }

    /// How far each list of a campaign has been worked.
    pub async fn penetration(&self, campaign_id: i64) -> Result<Vec<Penetration>, StoreError> {
        let rows = sqlx::query("SELECT list_id, state, COUNT(*) FROM leads WHERE campaign_id = $1 GROUP BY list_id, state ORDER BY list_id")
            .bind(campaign_id)
            .fetch_all(self.pool())
            .await?;
        let mut out: Vec<Penetration> = self.lists(campaign_id).await?.into_iter().map(|l| Penetration { list_id: l.id, ..Default::default() }).collect();
        for r in rows {
            let (list, state, n): (i64, String, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let Some(p) = out.iter_mut().find(|p| p.list_id == list) else { continue };
            p.total += n;
            match state.as_str() {
                "new" => p.pending += n,
                "retry" | "callback" => p.retryable += n,
                "hopper" | "dialling" => p.in_progress += n,
                "done" => p.done += n,
                _ => p.dnc += n,
            }
        }
        for p in &mut out {
            p.penetration = if p.total > 0 { (p.total - p.pending) as f64 / p.total as f64 } else { 0.0 };
        }
        Ok(out)
    }

    /// Attempts, contacts and abandons per hour between `from` and `to`.
    pub async fn hourly(&self, campaign_id: i64, from: i64, to: i64, centre: Tz) -> Result<Vec<HourRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT started_at / 3600000 AS h, COUNT(*), \
                    COALESCE(SUM(CASE WHEN answered_by = 'human' OR abandoned THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN abandoned THEN 1 ELSE 0 END), 0) \
             FROM lead_attempts WHERE campaign_id = $1 AND started_at >= $2 AND started_at < $3 \
             GROUP BY started_at / 3600000 ORDER BY h",
        )
        .bind(campaign_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let hour_start = r.try_get::<i64, _>(0)? * 3_600_000;
                let local = DateTime::from_timestamp_millis(hour_start).unwrap_or_default().with_timezone(&centre);
                Ok(HourRow {
                    hour_start,
                    hour_local: local.format("%Y-%m-%d %H:00").to_string(),
                    attempts: r.try_get(1)?,
                    contacts: r.try_get(2)?,
                    abandons: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Call detail records by id, filtered, at most `limit` (default 100, max 10,000).
    pub async fn cdrs(&self, q: &CdrQuery) -> Result<Vec<Cdr>, StoreError> {
        let mut sql = String::from(
            "SELECT id, lead_id, campaign_id, phone, call_id, trunk, started_at, answered_at, connected_at, ended_at, sip_status, \
             q850_cause, outcome, answered_by, agent_id, disposition, CASE WHEN abandoned THEN 1 ELSE 0 END, talk_s, wrap_s, recording_path, notes, verdict_at \
             FROM lead_attempts WHERE id > $1",
        );
        let mut n = 1;
        let mut add = |cond: &str| {
            n += 1;
            sql += &format!(" AND {cond} ${n}");
        };
        if q.campaign_id.is_some() {
            add("campaign_id =");
        }
        if q.from.is_some() {
            add("started_at >=");
        }
        if q.to.is_some() {
            add("started_at <");
        }
        if q.outcome.is_some() {
            add("COALESCE(disposition, outcome) =");
        }
        if q.agent_id.is_some() {
            add("agent_id =");
        }
        if q.phone.is_some() {
            add("phone =");
        }
        sql += &format!(" ORDER BY id LIMIT {}", q.limit.unwrap_or(100).clamp(1, 10_000));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(q.after_id.unwrap_or(0));
        for v in [q.campaign_id, q.from, q.to].into_iter().flatten() {
            query = query.bind(v);
        }
        if let Some(v) = &q.outcome {
            query = query.bind(v.clone());
        }
        if let Some(v) = q.agent_id {
            query = query.bind(v);
        }
        if let Some(v) = &q.phone {
            query = query.bind(v.clone());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(Cdr {
                    id: r.try_get(0)?,
                    lead_id: r.try_get(1)?,
                    campaign_id: r.try_get(2)?,
                    phone: r.try_get(3)?,
                    call_id: r.try_get(4)?,
                    trunk: r.try_get(5)?,
                    started_at: r.try_get(6)?,
                    answered_at: r.try_get(7)?,
                    verdict_at: r.try_get(21)?,
                    connected_at: r.try_get(8)?,
                    ended_at: r.try_get(9)?,
                    sip_status: r.try_get(10)?,
                    q850_cause: r.try_get(11)?,
                    outcome: r.try_get(12)?,
                    answered_by: r.try_get(13)?,
                    agent_id: r.try_get(14)?,
                    disposition: r.try_get(15)?,
                    abandoned: r.try_get::<i64, _>(16)? != 0,
                    talk_s: r.try_get(17)?,
                    wrap_s: r.try_get(18)?,
                    recording_path: r.try_get(19)?,
                    notes: r.try_get(20)?,
                })
            })
            .collect()
    }
}
