//! Dispositions: the system ones (seeded by the first migration) and custom ones with
//! flags that drive reports and retry rules.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, is_unique_violation};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disposition {
    pub code: String,
    pub label: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub human_contact: bool,
    #[serde(default)]
    pub sale: bool,
    #[serde(default)]
    pub callback: bool,
    #[serde(default)]
    pub dnc: bool,
}

// Booleans as 0/1: the Any driver cannot decode SQLite's BOOLEAN.
const COLUMNS: &str = "code, label, CASE WHEN system THEN 1 ELSE 0 END, CASE WHEN human_contact THEN 1 ELSE 0 END, \
     CASE WHEN sale THEN 1 ELSE 0 END, CASE WHEN callback THEN 1 ELSE 0 END, CASE WHEN dnc THEN 1 ELSE 0 END";

impl Store {
    pub async fn dispositions(&self) -> Result<Vec<Disposition>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM dispositions ORDER BY system DESC, code")))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let b = |i: usize| -> Result<bool, sqlx::Error> { Ok(r.try_get::<i64, _>(i)? != 0) };
                Ok(Disposition {
                    code: r.try_get(0)?,
                    label: r.try_get(1)?,
                    system: b(2)?,
                    human_contact: b(3)?,
                    sale: b(4)?,
                    callback: b(5)?,
                    dnc: b(6)?,
                })
            })
            .collect()
    }

    /// Add a custom disposition (`system` is ignored: custom ones are never system).
    pub async fn create_disposition(&self, d: &Disposition) -> Result<Disposition, StoreError> {
        if d.code.is_empty() || !d.code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(StoreError::Invalid(format!("code {:?}: use lowercase letters, digits and _", d.code)));
        }
        sqlx::query("INSERT INTO dispositions (code, label, system, human_contact, sale, callback, dnc) VALUES ($1, $2, FALSE, $3, $4, $5, $6)")
            .bind(&d.code)
            .bind(&d.label)
            .bind(d.human_contact)
            .bind(d.sale)
            .bind(d.callback)
            .bind(d.dnc)
            .execute(self.pool())
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict { what: "disposition", key: d.code.clone() } } else { e.into() })?;
        Ok(Disposition { system: false, ..d.clone() })
    }

    /// Remove a custom disposition that no attempt uses.
    pub async fn delete_disposition(&self, code: &str) -> Result<(), StoreError> {
        let used = sqlx::query("SELECT 1 FROM lead_attempts WHERE disposition = $1 LIMIT 1").bind(code).fetch_optional(self.pool()).await?;
        if used.is_some() {
            return Err(StoreError::Invalid(format!("disposition {code:?} is used by call records")));
        }
        let done = sqlx::query("DELETE FROM dispositions WHERE code = $1 AND NOT system").bind(code).execute(self.pool()).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "custom disposition", id: code.to_string() });
        }
        Ok(())
    }
}
