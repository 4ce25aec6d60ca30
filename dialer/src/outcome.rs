//! Finished calls: one transaction writes the attempt (the CDR) and settles the lead.
//!
//! The attempt is always written, even when the lease was lost (a slow node, a crash and
//! recovery): a call that happened is never forgotten. The lead's state changes only when
//! no other node holds it now, so a late outcome cannot yank a lead from a live call.

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::lead_state::LeadState;
use crate::retry::{self, Decision, DispositionFlags, History};
use crate::settings::CampaignSettings;
use crate::store::leads::{LEAD_COLUMNS, decode_lead};
use crate::store::{Backend, Store, StoreError};

/// Everything known about one finished call.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallOutcome {
    pub lead_id: i64,
    /// The node that held the lease (as given to the hopper).
    pub owner: String,
    /// The number dialled (E.164).
    pub phone: String,
    pub call_id: Option<String>,
    pub trunk: Option<String>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    /// When answering-machine detection decided (human or machine).
    pub verdict_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub sip_status: Option<i64>,
    pub q850_cause: Option<i64>,
    /// System disposition code (answered, no_answer, busy, invalid_number, congestion,
    /// machine, abandoned, dnc, blocked).
    pub outcome: String,
    /// human, machine or unknown.
    pub answered_by: Option<String>,
    pub agent_id: Option<i64>,
    /// The agent's disposition (system or custom code); it drives the retry rules when set.
    pub disposition: Option<String>,
    pub abandoned: bool,
    pub talk_s: f64,
    pub wrap_s: f64,
    pub recording_path: Option<String>,
    pub notes: Option<String>,
    pub callback: Option<CallbackRequest>,
}

/// "Call me back on Tuesday at 14:00", in the lead's local time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// Local wall-clock time, `YYYY-MM-DDTHH:MM[:SS]`.
    pub at_local: NaiveDateTime,
    /// Only the agent who took the call gets it (until the grace period passes).
    #[serde(default)]
    pub agent_only: bool,
    #[serde(default)]
    pub notes: String,
}

/// What [`Store::record_outcome`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settled {
    pub attempt_id: i64,
    pub decision: DecisionView,
    /// False when another node held the lead: only the attempt was written.
    pub lead_updated: bool,
}

/// [`Decision`] for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum DecisionView {
    Retry { at: i64 },
    Callback { at: i64 },
    Done,
    Dnc,
}

impl From<Decision> for DecisionView {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Retry { at } => DecisionView::Retry { at },
            Decision::Callback { at } => DecisionView::Callback { at },
            Decision::Done => DecisionView::Done,
            Decision::Dnc => DecisionView::Dnc,
        }
    }
}

/// A disposition's flags as one integer: human contact 1, sale 2, callback 4, DNC 8.
const FLAG_BITS: &str = "(CASE WHEN human_contact THEN 1 ELSE 0 END) + (CASE WHEN sale THEN 2 ELSE 0 END) \
     + (CASE WHEN callback THEN 4 ELSE 0 END) + (CASE WHEN dnc THEN 8 ELSE 0 END)";

/// A lead's earlier attempts as a JSON array of `[id, started_at, phone, code]`, and which of
/// its numbers are on the system list or its campaign's (JSON array of numbers).
const PG_HISTORY: &str = "(SELECT json_agg(json_build_array(id, started_at, phone, COALESCE(disposition, outcome)))::text FROM lead_attempts WHERE lead_id = leads.id)";
const PG_DNC: &str = "(SELECT json_agg(phone)::text FROM dnc WHERE campaign_id IN (0, leads.campaign_id) \
     AND phone IN (SELECT leads.phone UNION ALL SELECT jsonb_array_elements_text(leads.alt_phones::jsonb)))";
const SQLITE_HISTORY: &str = "(SELECT json_group_array(json_array(id, started_at, phone, COALESCE(disposition, outcome))) FROM lead_attempts WHERE lead_id = leads.id)";
const SQLITE_DNC: &str = "(SELECT json_group_array(phone) FROM dnc WHERE campaign_id IN (0, leads.campaign_id) \
     AND phone IN (SELECT leads.phone UNION ALL SELECT value FROM json_each(leads.alt_phones)))";

impl Store {
    /// Write the attempt and settle the lead by the campaign's retry rules, in one
    /// transaction. `fallback_zone` places callbacks for leads whose zone is unknown.
    pub async fn record_outcome(&self, o: &CallOutcome, now: i64, fallback_zone: Tz) -> Result<Settled, StoreError> {
        let code = o.disposition.clone().unwrap_or_else(|| o.outcome.clone());
        // The system outcome "abandoned" is an abandoned call whether or not the flag was set.
        let abandoned = o.abandoned || o.outcome == "abandoned";
        let mut tx = self.begin_write().await?;
        let pg = self.backend() == Backend::Postgres;
        let lock = if pg { " FOR UPDATE" } else { "" };
        let (history, dnc) = if pg { (PG_HISTORY, PG_DNC) } else { (SQLITE_HISTORY, SQLITE_DNC) };
        // A lock that waited for another transaction of this lead returns the lead as that
        // one left it, but the subqueries read the statement's snapshot, taken before: the
        // row the snapshot sees is then an older version than the locked one (PostgreSQL;
        // SQLite has one writer). The query then runs once more, the lock held, afresh.
        let stale = if pg { "(SELECT l.xmin::text FROM leads l WHERE l.id = leads.id) IS DISTINCT FROM leads.xmin::text" } else { "FALSE" };
        // Round trips are what a write costs: the lead comes with whether it has an open
        // callback (closed below only then), its campaign's settings (the retry rules) and
        // the flags of the disposition and of the system outcome, its earlier attempts and
        // which of its numbers are on a DNC list, in one query. Scalar subqueries, so that
        // FOR UPDATE locks the lead's row only.
        let sql = format!(
            "SELECT {LEAD_COLUMNS}, (SELECT COUNT(*) FROM callbacks WHERE lead_id = leads.id AND done_at IS NULL), \
             (SELECT settings FROM campaigns WHERE campaigns.id = leads.campaign_id), \
             (SELECT {FLAG_BITS} FROM dispositions WHERE code = $2), \
             (SELECT {FLAG_BITS} FROM dispositions WHERE code = $3), {history}, {dnc}, \
             CASE WHEN {stale} THEN 1 ELSE 0 END \
             FROM leads WHERE id = $1{lock}"
        );
        let mut reran = false;
        let row = loop {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(o.lead_id)
                .bind(&code)
                .bind(&o.outcome)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound { what: "lead", id: o.lead_id.to_string() })?;
            if reran || r.try_get::<i64, _>(r.len() - 1)? == 0 {
                break r;
            }
            reran = true;
        };
        let lead = decode_lead(&row)?;
        let extra = row.len() - 7;
        let open_callbacks: i64 = row.try_get(extra)?;
        let bad_json = |col: &'static str| move |e: serde_json::Error| StoreError::Database(sqlx::Error::ColumnDecode { index: col.into(), source: e.into() });
        let settings: Option<String> = row.try_get(extra + 1)?;
        let settings: CampaignSettings = settings
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(bad_json("settings"))?
            .ok_or(StoreError::NotFound { what: "campaign", id: lead.campaign_id.to_string() })?;
        let missing = |c: &str| StoreError::Invalid(format!("disposition {c:?} does not exist"));
        // An unknown code would break the CDR: both must exist.
        let code_bits: i64 = row.try_get::<Option<i64>, _>(extra + 2)?.ok_or_else(|| missing(&code))?;
        row.try_get::<Option<i64>, _>(extra + 3)?.ok_or_else(|| missing(&o.outcome))?;
        let flags = DispositionFlags {
            code: code.clone(),
            human_contact: code_bits & 1 != 0,
            sale: code_bits & 2 != 0,
            callback: code_bits & 4 != 0,
            dnc: code_bits & 8 != 0,
        };
        let rules = &settings.retry;

        let attempt_id: i64 = sqlx::query_scalar(
            "INSERT INTO lead_attempts (lead_id, campaign_id, phone, call_id, trunk, started_at, answered_at, connected_at, ended_at, \
             sip_status, q850_cause, outcome, answered_by, agent_id, disposition, abandoned, talk_s, wrap_s, recording_path, notes, verdict_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) RETURNING id",
        )
        .bind(lead.id)
        .bind(lead.campaign_id)
        .bind(&o.phone)
        .bind(o.call_id.clone())
        .bind(o.trunk.clone())
        .bind(o.started_at)
        .bind(o.answered_at)
        .bind(o.connected_at)
        .bind(o.ended_at.or(Some(now)))
        .bind(o.sip_status.map(|v| v as i32))
        .bind(o.q850_cause.map(|v| v as i32))
        .bind(&o.outcome)
        .bind(o.answered_by.clone())
        .bind(o.agent_id)
        .bind(o.disposition.clone())
        .bind(abandoned)
        .bind(o.talk_s)
        .bind(o.wrap_s)
        .bind(o.recording_path.clone())
        .bind(o.notes.clone())
        .bind(o.verdict_at)
        .fetch_one(&mut *tx)
        .await?;

        // History after this attempt (start times, same-disposition count, numbers left).
        let earlier: Option<String> = row.try_get(extra + 4)?;
        let mut earlier: Vec<(i64, i64, String, String)> = earlier.as_deref().map(serde_json::from_str).transpose().map_err(bad_json("history"))?.unwrap_or_default();
        earlier.sort_unstable_by_key(|a| a.0);
        // A reset forgets the attempts before it (the lead's `attempts` counts those after):
        // the caps per lead, per number and per disposition start again.
        let since_reset = &earlier[earlier.len().saturating_sub(lead.attempts.max(0) as usize)..];
        let blocked: Option<String> = row.try_get(extra + 5)?;
        let blocked: std::collections::HashSet<String> = blocked.as_deref().map(serde_json::from_str).transpose().map_err(bad_json("dnc"))?.unwrap_or_default();
        let mut h = History { started: earlier.iter().map(|a| a.1).chain([o.started_at]).collect(), ..Default::default() };
        let mut per_number: std::collections::HashMap<&str, u32> = Default::default();
        for (phone, c) in since_reset.iter().map(|(_, _, p, c)| (p.as_str(), c.as_str())).chain([(o.phone.as_str(), code.as_str())]) {
            h.attempts += 1;
            *per_number.entry(phone).or_default() += 1;
            if c == code {
                h.same_disposition += 1;
            }
        }
        let mut numbers = std::iter::once(&lead.phone).chain(&lead.alt_phones);
        h.numbers_left = numbers.any(|n| !blocked.contains(n) && per_number.get(n.as_str()).copied().unwrap_or(0) < rules.max_attempts_per_number);

        let zone = lead.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(fallback_zone);
        let callback_at = o.callback.as_ref().map(|cb| retry::local_to_utc_ms(cb.at_local, zone));
        let decision = retry::decide(rules, &flags, &h, abandoned, callback_at, now);

        if flags.dnc {
            // "Do not call" means no campaign of this centre calls again: the system list.
            sqlx::query("INSERT INTO dnc (campaign_id, phone, reason, added_at) VALUES (0, $1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&o.phone)
                .bind(format!("disposition {code} on lead {}", lead.id))
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        // Another node holds the lead now, or a manager put it on DNC meanwhile: the call
        // is recorded but the lead stays where it is.
        let held_elsewhere = (lead.state.is_leased() && lead.lease_owner.as_deref() != Some(o.owner.as_str())) || lead.state == LeadState::Dnc;
        let (state, due) = match decision {
            Decision::Retry { at } => ("retry", Some(at)),
            Decision::Callback { at } => ("callback", Some(at)),
            Decision::Done => ("done", None),
            Decision::Dnc => ("dnc", None),
        };
        if held_elsewhere {
            sqlx::query("UPDATE leads SET attempts = attempts + 1, last_outcome = $1, updated_at = $2 WHERE id = $3")
                .bind(&code)
                .bind(now)
                .bind(lead.id)
                .execute(&mut *tx)
                .await?;
        } else {
            let owner_agent = match &o.callback {
                Some(cb) if cb.agent_only => o.agent_id,
                _ => None,
            };
            sqlx::query(
                "UPDATE leads SET state = $1, next_due_at = $2, attempts = attempts + 1, last_outcome = $3, \
                 owner_agent_id = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE id = $6",
            )
            .bind(state)
            .bind(due)
            .bind(&code)
            .bind(owner_agent)
            .bind(now)
            .bind(lead.id)
            .execute(&mut *tx)
            .await?;
            // The callback this call served (if any) is done; a new one may replace it.
            if open_callbacks > 0 {
                sqlx::query("UPDATE callbacks SET done_at = $1 WHERE lead_id = $2 AND done_at IS NULL")
                    .bind(now)
                    .bind(lead.id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let (Decision::Callback { at }, Some(cb)) = (decision, &o.callback) {
                sqlx::query("INSERT INTO callbacks (lead_id, campaign_id, agent_id, due_at, notes, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(lead.id)
                    .bind(lead.campaign_id)
                    .bind(owner_agent)
                    .bind(at)
                    .bind(&cb.notes)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Settled { attempt_id, decision: decision.into(), lead_updated: !held_elsewhere })
    }

}
