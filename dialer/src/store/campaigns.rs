//! Campaign rows: create, read, list, update, and the legal status transitions.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, is_unique_violation, now_ms};
use crate::settings::CampaignSettings;

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
    /// Pacing, caller ID, windows and retry rules.
    pub settings: CampaignSettings,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the campaign first ran (abandon accounting "since start" counts from here).
    pub started_at: Option<i64>,
}

/// What it takes to create a campaign.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub dial_mode: DialMode,
    pub settings: CampaignSettings,
}

/// A partial update: `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct CampaignUpdate {
    pub name: Option<String>,
    pub dial_mode: Option<DialMode>,
    pub settings: Option<CampaignSettings>,
}

/// What a manager asks a campaign to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignAction {
    Start,
    Pause,
    Stop,
    Archive,
}

impl CampaignAction {
    /// The status `action` leads to from `from`, when that move is allowed.
    ///
    /// draft → running ⇄ paused; running/paused → stopped → running (restart);
    /// draft/stopped → archived, which is final.
    pub fn apply(self, from: CampaignStatus) -> Option<CampaignStatus> {
        use CampaignStatus::*;
        match (self, from) {
            (CampaignAction::Start, Draft | Paused | Stopped) => Some(Running),
            (CampaignAction::Pause, Running) => Some(Paused),
            (CampaignAction::Stop, Running | Paused) => Some(Stopped),
            (CampaignAction::Archive, Draft | Stopped) => Some(Archived),
            _ => None,
        }
    }
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
        started_at: row.try_get("started_at")?,
    })
}

const COLUMNS: &str = "id, name, status, dial_mode, settings, created_at, updated_at, started_at";

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
        .bind(serde_json::to_string(&new.settings).expect("settings serialise"))
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

    /// One campaign by name.
    pub async fn campaign_by_name(&self, name: &str) -> Result<Campaign, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM campaigns WHERE name = $1")))
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound { what: "campaign", id: name.to_string() })?;
        decode(&row)
    }

    /// Change name, mode or settings. An archived campaign is frozen.
    pub async fn update_campaign(&self, id: i64, upd: &CampaignUpdate) -> Result<Campaign, StoreError> {
        let cur = self.campaign(id).await?;
        if cur.status == CampaignStatus::Archived {
            return Err(StoreError::Invalid(format!("campaign {id} is archived and cannot change")));
        }
        let name = upd.name.clone().unwrap_or(cur.name);
        let mode = upd.dial_mode.unwrap_or(cur.dial_mode);
        let settings = upd.settings.clone().unwrap_or(cur.settings);
        sqlx::query("UPDATE campaigns SET name = $1, dial_mode = $2, settings = $3, updated_at = $4 WHERE id = $5")
            .bind(&name)
            .bind(mode.as_str())
            .bind(serde_json::to_string(&settings).expect("settings serialise"))
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict { what: "campaign", key: name.clone() } } else { e.into() })?;
        self.campaign(id).await
    }

    /// Apply a manager's action when the current status allows it. The update is
    /// conditional on the status read, so two racing actions cannot both succeed.
    pub async fn campaign_action(&self, id: i64, action: CampaignAction) -> Result<Campaign, StoreError> {
        let cur = self.campaign(id).await?;
        let to = action
            .apply(cur.status)
            .ok_or_else(|| StoreError::Invalid(format!("cannot {action:?} a campaign that is {}", cur.status.as_str()).to_lowercase()))?;
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE campaigns SET status = $1, updated_at = $2, \
             started_at = CASE WHEN $1 = 'running' AND started_at IS NULL THEN $2 ELSE started_at END \
             WHERE id = $3 AND status = $4",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(id)
        .bind(cur.status.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid(format!("campaign {id} changed status meanwhile; try again")));
        }
        self.campaign(id).await
    }

    /// Move a campaign to `status` (no transition check: for tools and tests).
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
