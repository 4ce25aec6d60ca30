//! Do-not-call lists: the system list (campaign 0) and one per campaign.
//!
//! Numbers are E.164. They are checked at import (a listed number is not imported) and
//! again when the hopper claims a lead, because a number may be added at any time.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// The campaign id of the system-wide list.
pub const SYSTEM_DNC: i64 = 0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncEntry {
    pub campaign_id: i64,
    pub phone: String,
    pub reason: String,
    pub added_at: i64,
}

impl Store {
    /// Add numbers to a list; numbers already there are kept as they were. Returns how
    /// many were new. Leads with that number that are not leased become `dnc` at once.
    pub async fn add_dnc(&self, campaign_id: i64, phones: &[String], reason: &str) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut added = 0;
        let mut tx = self.begin_write().await?;
        for phone in phones {
            added += sqlx::query(
                "INSERT INTO dnc (campaign_id, phone, reason, added_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(campaign_id)
            .bind(phone)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Leased leads are settled by their outcome; the claim checks DNC anyway.
            sqlx::query(
                "UPDATE leads SET state = 'dnc', next_due_at = NULL, updated_at = $1 \
                 WHERE phone = $2 AND ($3 = 0 OR campaign_id = $3) AND state IN ('new', 'retry', 'callback', 'done')",
            )
            .bind(now)
            .bind(phone)
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Remove a number from a list. Leads stay `dnc` until reset by a manager.
    pub async fn remove_dnc(&self, campaign_id: i64, phone: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM dnc WHERE campaign_id = $1 AND phone = $2").bind(campaign_id).bind(phone).execute(self.pool()).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "dnc number", id: phone.to_string() });
        }
        Ok(())
    }

    /// True when `phone` is on the system list or on `campaign_id`'s list.
    pub async fn is_dnc(&self, campaign_id: i64, phone: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM dnc WHERE phone = $1 AND campaign_id IN (0, $2) LIMIT 1")
            .bind(phone)
            .bind(campaign_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// One page of a list, by number.
    pub async fn dnc_entries(&self, campaign_id: i64, after_phone: &str, limit: i64) -> Result<Vec<DncEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT campaign_id, phone, reason, added_at FROM dnc WHERE campaign_id = $1 AND phone > $2 ORDER BY phone LIMIT $3",
        )
        .bind(campaign_id)
        .bind(after_phone)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DncEntry {
                    campaign_id: r.try_get("campaign_id")?,
                    phone: r.try_get("phone")?,
                    reason: r.try_get("reason")?,
                    added_at: r.try_get("added_at")?,
                })
            })
            .collect()
    }
}
