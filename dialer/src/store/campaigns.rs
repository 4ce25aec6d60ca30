//! Campaign rows: create, read, list, change status.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, is_unique_violation, now_ms};

/// How a campaign places calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialMode {
    /// The agent sees the lead and asks for the call.
    Preview,
    /// One call per ready agent.
    Progressive,
    /// A fixed ratio of calls per ready agent.
    Power,
    /// Pacer's pacing engine decides, within the abandon budget.
    Predictive,
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Draft,
    Running,
    Paused,
    Stopped,
    Archived,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The stored (and API) spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok(Self::$v),)* other => Err(format!("unknown value {other:?}")) }
            }
        }
    };
}
text_enum!(DialMode { Preview => "preview", Progressive => "progressive", Power => "power", Predictive => "predictive" });
text_enum!(CampaignStatus { Draft => "draft", Running => "running", Paused => "paused", Stopped => "stopped", Archived => "archived" });

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub status: CampaignStatus,
    pub dial_mode: DialMode,
    /// Pacing, caller ID, windows and retry rules (shaped by the campaign API).
    pub settings: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What it takes to create a campaign.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub dial_mode: DialMode,
    pub settings: serde_json::Value,
}

fn decode(row: &AnyRow) -> Result<Campaign, StoreError> {
    let bad = |col: &str, e: String| StoreError::Database(sqlx::Error::ColumnDecode { index: col.into(), source: e.into() });
    let status: String = row.try_get("status")?;
    let mode: String = row.try_get("dial_mode")?;
    let settings: String = row.try_get("settings")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: status.parse().map_err(|e| bad("status", e))?,
        dial_mode: mode.parse().map_err(|e| bad("dial_mode", e))?,
        settings: serde_json::from_str(&settings).map_err(|e| bad("settings", e.to_string()))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "id, name, status, dial_mode, settings, created_at, updated_at";

impl Store {
    /// Create a campaign in `draft`. Names are unique.
    pub async fn create_campaign(&self, new: &NewCampaign) -> Result<Campaign, StoreError> {
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO campaigns (name, status, dial_mode, settings, created_at, updated_at) \
             VALUES ($1, 'draft', $2, $3, $4, $4) RETURNING {COLUMNS}"
        )))
        .bind(&new.name)
        .bind(new.dial_mode.as_str())
        .bind(new.settings.to_string())
        .bind(now)
        .fetch_one(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict { what: "campaign", key: new.name.clone() }
            } else {
                e.into()
            }
        })?;
        decode(&row)
    }

    /// One campaign by id.
    pub async fn campaign(&self, id: i64) -> Result<Campaign, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound { what: "campaign", id: id.to_string() })?;
        decode(&row)
    }

    /// All campaigns, oldest first.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM campaigns ORDER BY id")))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Move a campaign to `status`.
    pub async fn set_campaign_status(&self, id: i64, status: CampaignStatus) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE campaigns SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "campaign", id: id.to_string() });
        }
        Ok(())
    }
}
