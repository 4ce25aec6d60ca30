//! The global kill switch: one row every node reads, so that stopping the dialler holds
//! across nodes and restarts.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// The switch's state, and who last changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillSwitch {
    /// True while no node may start a call.
    pub on: bool,
    /// When it was last set (Unix ms; 0 = never).
    pub changed_at: i64,
    /// Who set it: `api:USER@NODE`, `cli` (empty = never).
    pub changed_by: String,
}

impl Store {
    /// The switch as the database has it.
    pub async fn kill_switch(&self) -> Result<KillSwitch, StoreError> {
        let row = sqlx::query("SELECT CASE WHEN engaged THEN 1 ELSE 0 END, changed_at, changed_by FROM kill_switch WHERE id = 1")
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound { what: "kill switch row", id: "1".into() })?;
        Ok(KillSwitch { on: row.try_get::<i64, _>(0)? != 0, changed_at: row.try_get(1)?, changed_by: row.try_get(2)? })
    }

    /// Engages (`on`) or releases the switch for every node; `by` names who did it.
    pub async fn set_kill_switch(&self, on: bool, by: &str) -> Result<KillSwitch, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE kill_switch SET engaged = $1, changed_at = $2, changed_by = $3 WHERE id = 1")
            .bind(on)
            .bind(now)
            .bind(by)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            // The row is made by the migration; a database someone emptied gets it back.
            sqlx::query("INSERT INTO kill_switch (id, engaged, changed_at, changed_by) VALUES (1, $1, $2, $3)")
                .bind(on)
                .bind(now)
                .bind(by)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(KillSwitch { on, changed_at: now, changed_by: by.to_string() })
    }
}
