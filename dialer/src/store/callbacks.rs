//! Scheduled callbacks (written by outcomes; listed and cancelled by managers).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Callback {
    pub id: i64,
    pub lead_id: i64,
    pub campaign_id: i64,
    /// Only this agent gets it (until the campaign's grace period); `None`: anyone.
    pub agent_id: Option<i64>,
    pub due_at: i64,
    pub notes: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackQuery {
    pub campaign_id: Option<i64>,
    pub agent_id: Option<i64>,
    /// Only callbacks due before this instant (Unix ms).
    pub due_before: Option<i64>,
    pub limit: Option<i64>,
}

impl Store {
    /// Open callbacks, soonest first.
    pub async fn callbacks(&self, q: &CallbackQuery) -> Result<Vec<Callback>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, lead_id, campaign_id, agent_id, due_at, notes, created_at FROM callbacks \
             WHERE done_at IS NULL AND ($1 = 0 OR campaign_id = $1) AND ($2 = 0 OR agent_id = $2) AND due_at < $3 \
             ORDER BY due_at, id LIMIT {}",
            q.limit.unwrap_or(100).clamp(1, 10_000)
        )))
        .bind(q.campaign_id.unwrap_or(0))
        .bind(q.agent_id.unwrap_or(0))
        .bind(q.due_before.unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Callback {
                    id: r.try_get(0)?,
                    lead_id: r.try_get(1)?,
                    campaign_id: r.try_get(2)?,
                    agent_id: r.try_get(3)?,
                    due_at: r.try_get(4)?,
                    notes: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Schedule a callback for a lead at `at_local`, the lead's local wall-clock time (its
    /// zone, else `fallback_zone`), owned by `agent_id` (only that agent gets it until the
    /// campaign's grace has passed) or by anyone. An open callback of the lead is replaced.
    /// Refused for a lead on a call (its outcome will decide) or on a DNC list.
    pub async fn schedule_callback(
        &self,
        lead_id: i64,
        at_local: chrono::NaiveDateTime,
        agent_id: Option<i64>,
        notes: &str,
        fallback_zone: chrono_tz::Tz,
    ) -> Result<Callback, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let lock = if self.backend() == super::Backend::Postgres { " FOR UPDATE" } else { "" };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT campaign_id, state, time_zone FROM leads WHERE id = $1{lock}")))
            .bind(lead_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound { what: "lead", id: lead_id.to_string() })?;
        let (campaign_id, state, zone): (i64, String, Option<String>) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if matches!(state.as_str(), "hopper" | "dialling" | "dnc") {
            return Err(StoreError::Invalid(format!("lead {lead_id} is {state}; no callback scheduled")));
        }
        let zone = zone.and_then(|z| z.parse().ok()).unwrap_or(fallback_zone);
        let due_at = crate::retry::local_to_utc_ms(at_local, zone);
        sqlx::query("UPDATE callbacks SET done_at = $1 WHERE lead_id = $2 AND done_at IS NULL").bind(now).bind(lead_id).execute(&mut *tx).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO callbacks (lead_id, campaign_id, agent_id, due_at, notes, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(lead_id)
        .bind(campaign_id)
        .bind(agent_id)
        .bind(due_at)
        .bind(notes)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE leads SET state = 'callback', next_due_at = $1, owner_agent_id = $2, updated_at = $3 WHERE id = $4")
            .bind(due_at)
            .bind(agent_id)
            .bind(now)
            .bind(lead_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Callback { id, lead_id, campaign_id, agent_id, due_at, notes: notes.to_string(), created_at: now })
    }

    /// Cancel an open callback; its lead becomes a plain retry, due now.
    pub async fn cancel_callback(&self, id: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let lead: Option<i64> = sqlx::query_scalar("UPDATE callbacks SET done_at = $1 WHERE id = $2 AND done_at IS NULL RETURNING lead_id")
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let lead = lead.ok_or(StoreError::NotFound { what: "open callback", id: id.to_string() })?;
        sqlx::query("UPDATE leads SET state = 'retry', next_due_at = $1, owner_agent_id = NULL, updated_at = $1 WHERE id = $2 AND state = 'callback'")
            .bind(now)
            .bind(lead)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
