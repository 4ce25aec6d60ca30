//! The webhook outbox: events waiting to be POSTed, with their attempts.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// One event for one URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub url: String,
    pub event: String,
    pub body: String,
    pub attempts: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "id, url, event, body, attempts, delivered_at, last_error";

fn decode(r: &sqlx::any::AnyRow) -> Result<WebhookDelivery, sqlx::Error> {
    Ok(WebhookDelivery {
        id: r.try_get(0)?,
        url: r.try_get(1)?,
        event: r.try_get(2)?,
        body: r.try_get(3)?,
        attempts: r.try_get(4)?,
        delivered_at: r.try_get(5)?,
        last_error: r.try_get(6)?,
    })
}

impl Store {
    /// Queues `body` for each URL, due now, for `node` to deliver.
    pub async fn enqueue_webhooks(&self, node: &str, urls: &[String], event: &str, body: &str) -> Result<(), StoreError> {
        if urls.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for url in urls {
            sqlx::query("INSERT INTO webhook_outbox (node, url, event, body, next_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(node)
                .bind(url)
                .bind(event)
                .bind(body)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Undelivered events of `node` that are due and have attempts left, oldest first.
    pub async fn due_webhooks(&self, node: &str, max_attempts: u32, limit: i64) -> Result<Vec<WebhookDelivery>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_outbox WHERE node = $1 AND delivered_at IS NULL AND attempts < $2 AND next_at <= $3 ORDER BY next_at, id LIMIT $4"
        )))
        .bind(node)
        .bind(i64::from(max_attempts))
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
    }

    /// Records one delivery attempt: delivered, or failed with the next try at `retry_at`.
    pub async fn webhook_attempted(&self, id: i64, result: Result<(), String>, retry_at: i64) -> Result<(), StoreError> {
        let q = match &result {
            Ok(()) => sqlx::query("UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = $1, last_error = NULL WHERE id = $2").bind(now_ms()).bind(id),
            Err(e) => sqlx::query("UPDATE webhook_outbox SET attempts = attempts + 1, next_at = $1, last_error = $2 WHERE id = $3").bind(retry_at).bind(e.clone()).bind(id),
        };
        q.execute(self.pool()).await?;
        Ok(())
    }

    /// Every delivery of an event type (newest first), for tests and the API.
    pub async fn webhook_deliveries(&self, limit: i64) -> Result<Vec<WebhookDelivery>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM webhook_outbox ORDER BY id DESC LIMIT $1"))).bind(limit).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
    }
}
