//! Lists and leads: create lists, read, search, edit and reset leads.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, is_unique_violation, now_ms};
use crate::filter::{Bind, Filter};
use crate::lead_state::LeadState;

/// A list of leads inside a campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct List {
    pub id: i64,
    pub campaign_id: i64,
    pub name: String,
    /// Higher first when the hopper takes new leads.
    pub priority: i64,
    /// An inactive list is kept but not dialled.
    pub active: bool,
    /// A [`crate::filter::Filter`] expression: only matching leads are dialled (empty: all).
    pub filter: String,
    pub created_at: i64,
}

/// A stored lead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    pub id: i64,
    pub list_id: i64,
    pub campaign_id: i64,
    pub phone: String,
    pub alt_phones: Vec<String>,
    pub name: String,
    pub time_zone: Option<String>,
    pub postal_code: Option<String>,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub state: LeadState,
    pub attempts: i64,
    pub next_due_at: Option<i64>,
    pub owner_agent_id: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_outcome: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Filters for [`Store::search_leads`]; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeadQuery {
    pub campaign_id: Option<i64>,
    pub list_id: Option<i64>,
    pub state: Option<LeadState>,
    /// Exact E.164 number (primary).
    pub phone: Option<String>,
    /// Substring of the name.
    pub name: Option<String>,
    pub limit: Option<i64>,
    /// Leads with an id greater than this (keyset paging).
    pub after_id: Option<i64>,
    /// A field expression ([`crate::filter::Filter`]), e.g. `balance < 10`.
    pub filter: Option<String>,
    /// The date `today` means in `filter` (default: today in UTC); callers pass the call
    /// centre's date.
    #[serde(skip)]
    pub today: Option<chrono::NaiveDate>,
}

/// Editable lead fields; `None` keeps the value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeadEdit {
    pub name: Option<String>,
    pub alt_phones: Option<Vec<String>>,
    pub time_zone: Option<Option<String>>,
    pub postal_code: Option<Option<String>>,
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    pub owner_agent_id: Option<Option<i64>>,
}

pub(crate) const LEAD_COLUMNS: &str = "id, list_id, campaign_id, phone, alt_phones, name, time_zone, postal_code, fields, state, \
     attempts, next_due_at, owner_agent_id, lease_owner, lease_until, last_outcome, created_at, updated_at";

fn bad(col: &str, e: String) -> StoreError {
    StoreError::Database(sqlx::Error::ColumnDecode { index: col.into(), source: e.into() })
}

pub(crate) fn decode_lead(row: &AnyRow) -> Result<Lead, StoreError> {
    let alt: String = row.try_get("alt_phones")?;
    let fields: String = row.try_get("fields")?;
    let state: String = row.try_get("state")?;
    Ok(Lead {
        id: row.try_get("id")?,
        list_id: row.try_get("list_id")?,
        campaign_id: row.try_get("campaign_id")?,
        phone: row.try_get("phone")?,
        alt_phones: serde_json::from_str(&alt).map_err(|e| bad("alt_phones", e.to_string()))?,
        name: row.try_get("name")?,
        time_zone: row.try_get("time_zone")?,
        postal_code: row.try_get("postal_code")?,
        fields: serde_json::from_str(&fields).map_err(|e| bad("fields", e.to_string()))?,
        state: state.parse().map_err(|e| bad("state", e))?,
        attempts: row.try_get("attempts")?,
        next_due_at: row.try_get("next_due_at")?,
        owner_agent_id: row.try_get("owner_agent_id")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        last_outcome: row.try_get("last_outcome")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn decode_list(row: &AnyRow) -> Result<List, StoreError> {
    Ok(List {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        name: row.try_get("name")?,
        priority: row.try_get("priority")?,
        active: row.try_get::<i64, _>("active")? != 0,
        filter: row.try_get("filter")?,
        created_at: row.try_get("created_at")?,
    })
}

// Booleans are read as 0/1: the Any driver cannot decode SQLite's BOOLEAN.
const LIST_COLUMNS: &str = "id, campaign_id, name, priority, CASE WHEN active THEN 1 ELSE 0 END AS active, filter, created_at";

impl Store {
    /// A new, active list in a campaign. Names are unique per campaign.
    pub async fn create_list(&self, campaign_id: i64, name: &str, priority: i64) -> Result<List, StoreError> {
        self.campaign(campaign_id).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO lists (campaign_id, name, priority, active, created_at) VALUES ($1, $2, $3, TRUE, $4) RETURNING {LIST_COLUMNS}"
        )))
        .bind(campaign_id)
        .bind(name)
        .bind(priority)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await
        .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict { what: "list", key: name.to_string() } } else { e.into() })?;
        decode_list(&row)
    }

    pub async fn list(&self, id: i64) -> Result<List, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {LIST_COLUMNS} FROM lists WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound { what: "list", id: id.to_string() })?;
        decode_list(&row)
    }

    /// A campaign's list by name, if it exists.
    pub async fn list_by_name(&self, campaign_id: i64, name: &str) -> Result<Option<List>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {LIST_COLUMNS} FROM lists WHERE campaign_id = $1 AND name = $2")))
            .bind(campaign_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode_list).transpose()
    }

    /// A campaign's lists, highest priority first.
    pub async fn lists(&self, campaign_id: i64) -> Result<Vec<List>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LIST_COLUMNS} FROM lists WHERE campaign_id = $1 ORDER BY priority DESC, id"
        )))
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_list).collect()
    }

    /// Change a list's priority or active flag.
    pub async fn update_list(&self, id: i64, priority: Option<i64>, active: Option<bool>) -> Result<List, StoreError> {
        let cur = self.list(id).await?;
        sqlx::query("UPDATE lists SET priority = $1, active = $2 WHERE id = $3")
            .bind(priority.unwrap_or(cur.priority))
            .bind(active.unwrap_or(cur.active))
            .bind(id)
            .execute(self.pool())
            .await?;
        self.list(id).await
    }

    /// Set (or with an empty text, clear) the filter that decides which of the list's
    /// leads are dialled. The expression is checked first; its error names the character.
    pub async fn set_list_filter(&self, id: i64, filter: &str) -> Result<List, StoreError> {
        let filter = filter.trim();
        if !filter.is_empty() {
            Filter::parse(filter).map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
        self.list(id).await?;
        sqlx::query("UPDATE lists SET filter = $1 WHERE id = $2").bind(filter).bind(id).execute(self.pool()).await?;
        self.list(id).await
    }

    /// A lead for a number on a DNC list that called in (imports skip DNC numbers): kept
    /// in state `dnc`, so that the call has a lead and a CDR while the hopper never dials it.
    pub async fn create_dnc_lead(&self, list_id: i64, phone: &str) -> Result<Lead, StoreError> {
        let list = self.list(list_id).await?;
        let now = super::now_ms();
        let id: i64 = sqlx::query_scalar("INSERT INTO leads (list_id, campaign_id, phone, state, created_at, updated_at) VALUES ($1, $2, $3, 'dnc', $4, $4) RETURNING id")
            .bind(list_id)
            .bind(list.campaign_id)
            .bind(phone)
            .bind(now)
            .fetch_one(self.pool())
            .await?;
        self.lead(id).await
    }

    pub async fn lead(&self, id: i64) -> Result<Lead, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound { what: "lead", id: id.to_string() })?;
        decode_lead(&row)
    }

    /// Leads matching `q`, by id, at most `limit` (default 100, max 1000).
    pub async fn search_leads(&self, q: &LeadQuery) -> Result<Vec<Lead>, StoreError> {
        let mut sql = format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id > $1");
        let mut n = 1;
        let mut next = |col: &str, op: &str| {
            n += 1;
            format!(" AND {col} {op} ${n}")
        };
        if q.campaign_id.is_some() {
            sql += &next("campaign_id", "=");
        }
        if q.list_id.is_some() {
            sql += &next("list_id", "=");
        }
        if q.state.is_some() {
            sql += &next("state", "=");
        }
        if q.phone.is_some() {
            sql += &next("phone", "=");
        }
        if q.name.is_some() {
            sql += &next("name", "LIKE");
        }
        let filter = match &q.filter {
            Some(f) if !f.trim().is_empty() => {
                let f = Filter::parse(f).map_err(|e| StoreError::Invalid(e.to_string()))?;
                let today = q.today.unwrap_or_else(|| chrono::Utc::now().date_naive());
                let (cond, binds) = f.to_sql(self.backend(), today, n + 1);
                sql += &format!(" AND {cond}");
                binds
            }
            _ => Vec::new(),
        };
        sql += " ORDER BY id LIMIT ";
        sql += &q.limit.unwrap_or(100).clamp(1, 1000).to_string();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(q.after_id.unwrap_or(0));
        if let Some(v) = q.campaign_id {
            query = query.bind(v);
        }
        if let Some(v) = q.list_id {
            query = query.bind(v);
        }
        if let Some(v) = q.state {
            query = query.bind(v.as_str());
        }
        if let Some(v) = &q.phone {
            query = query.bind(v.clone());
        }
        if let Some(v) = &q.name {
            query = query.bind(format!("%{}%", v.replace(['%', '_'], "")));
        }
        for b in filter {
            query = match b {
                Bind::Text(t) => query.bind(t),
                Bind::Number(x) => query.bind(x),
            };
        }
        query.fetch_all(self.pool()).await?.iter().map(decode_lead).collect()
    }

    /// Edit a lead's contact data and custom fields (not its dialling state).
    pub async fn edit_lead(&self, id: i64, e: &LeadEdit) -> Result<Lead, StoreError> {
        let cur = self.lead(id).await?;
        if let Some(Some(z)) = &e.time_zone {
            if z.parse::<chrono_tz::Tz>().is_err() {
                return Err(StoreError::Invalid(format!("time_zone {z:?} is not an IANA time zone")));
            }
        }
        if let Some(alts) = &e.alt_phones {
            if let Some(bad) = alts.iter().find(|p| !crate::settings::is_e164(p)) {
                return Err(StoreError::Invalid(format!("alt_phones: {bad:?} is not E.164")));
            }
        }
        let time_zone = e.time_zone.clone().unwrap_or(cur.time_zone);
        sqlx::query(
            "UPDATE leads SET name = $1, alt_phones = $2, time_zone = $3, postal_code = $4, fields = $5, \
             owner_agent_id = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(e.name.clone().unwrap_or(cur.name))
        .bind(serde_json::to_string(e.alt_phones.as_ref().unwrap_or(&cur.alt_phones)).expect("json"))
        .bind(time_zone.clone())
        .bind(e.postal_code.clone().unwrap_or(cur.postal_code))
        .bind(serde_json::to_string(e.fields.as_ref().unwrap_or(&cur.fields)).expect("json"))
        .bind(e.owner_agent_id.unwrap_or(cur.owner_agent_id))
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        if let Some(z) = time_zone {
            self.cover_zones(cur.campaign_id, &[z]).await?;
        }
        self.lead(id).await
    }

    /// Put a finished (or stuck) lead back to `new` with its attempts forgotten. A lead
    /// on a DNC list stays out; a leased lead is refused (its call may be live).
    pub async fn reset_lead(&self, id: i64) -> Result<Lead, StoreError> {
        let done = sqlx::query(
            "UPDATE leads SET state = 'new', attempts = 0, next_due_at = NULL, last_outcome = NULL, updated_at = $1 \
             WHERE id = $2 AND state NOT IN ('hopper', 'dialling') \
             AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone = leads.phone AND d.campaign_id IN (0, leads.campaign_id))",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            let lead = self.lead(id).await?;
            return Err(StoreError::Invalid(format!("lead {id} is {} or its number is on a DNC list; not reset", lead.state.as_str())));
        }
        self.lead(id).await
    }

    /// Remember that a campaign has leads in these zones (unknown-zone leads wait for all).
    pub async fn cover_zones(&self, campaign_id: i64, zones: &[String]) -> Result<(), StoreError> {
        for z in zones {
            sqlx::query("INSERT INTO campaign_zones (campaign_id, time_zone) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(campaign_id)
                .bind(z)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// The zones a campaign's leads are in.
    pub async fn campaign_zones(&self, campaign_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT time_zone FROM campaign_zones WHERE campaign_id = $1 ORDER BY time_zone")
            .bind(campaign_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| r.try_get::<String, _>(0).map_err(Into::into)).collect()
    }
}
