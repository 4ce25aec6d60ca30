//! The hopper: claims the next dialable leads of a campaign under a lease.
//!
//! Order: due callbacks, then retries by due time, then new leads (by list priority or by
//! a custom field). Only leads whose called party is inside the calling window now are
//! taken: the window is evaluated once per zone the campaign covers (not per lead) and the
//! open zones become a filter in SQL. On PostgreSQL candidates are locked with
//! `FOR UPDATE SKIP LOCKED`, so several nodes claim side by side without waiting on each
//! other or taking the same lead; SQLite has a single writer (`BEGIN IMMEDIATE`).
//!
//! A list's filter (a field expression, see [`crate::filter`]) limits its new leads and
//! retries to those that match; due callbacks are promises and are always kept.
//!
//! A claimed lead is checked against the DNC lists once more (a number may have been added
//! since import) and the number to dial is chosen: the primary, else the first alternate,
//! skipping numbers on DNC, at their attempt cap, or resting after an abandoned call (the
//! lockout holds for the number across leads and campaigns). The caller ID for the call is
//! chosen by the campaign's rule (one number, a rotated pool, or local presence).
//!
//! A callback owned by an agent goes only to that agent until the campaign's grace period
//! has passed: [`Hopper::claim_for_agents`] takes it only when its owner is among the ready
//! agents (or the grace is over), and marks it reserved for them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pacer_config::DialerConfig;
use serde::Serialize;
use sqlx::Row;

use crate::caller_id::CallerIdPicker;
use crate::filter::{Bind, Filter};
use crate::lead_state::LeadState;
use crate::settings::NewLeadOrder;
use crate::store::leads::{LEAD_COLUMNS, decode_lead};
use crate::store::{Backend, CampaignStatus, Lead, Store, StoreError, bind_marks};
use crate::window::WindowPolicy;

/// A lead handed to the dialer.
#[derive(Debug, Clone, Serialize)]
pub struct Claimed {
    pub lead: Lead,
    /// The number to dial now (E.164).
    pub number: String,
    /// A callback owned by this agent within its grace period: route only to them.
    pub reserved_for_agent: Option<i64>,
    /// The number to present (campaign rule); `None`: the trunk's default caller ID.
    pub caller_id: Option<String>,
}

/// Claims leads; one per node, cheap to clone.
#[derive(Debug, Clone)]
pub struct Hopper {
    store: Store,
    legal_start: String,
    legal_end: String,
    centre_zone: Tz,
    lease_ms: i64,
    /// When (the claims' `now`, ms) expired leases were last returned: claims return them at
    /// most once a second, not in every claim (a lease lasts tens of seconds).
    expired_at: Arc<AtomicI64>,
}

/// Claims return expired leases at most this often (ms of the claims' clock).
const EXPIRY_EVERY_MS: i64 = 1000;

impl Hopper {
    pub fn new(store: Store, cfg: &DialerConfig) -> Hopper {
        Hopper {
            store,
            legal_start: cfg.legal_window_start.clone(),
            legal_end: cfg.legal_window_end.clone(),
            centre_zone: cfg.time_zone.parse().unwrap_or(Tz::UTC),
            lease_ms: cfg.lease_s as i64 * 1000,
            expired_at: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Up to `max` leads of a running campaign for node `owner`, leased until
    /// `now + lease_s`. Fewer (or none) when fewer are dialable now. Callbacks owned by an
    /// agent are included whoever is ready (see [`Claimed::reserved_for_agent`]); the call
    /// orchestration that knows its ready agents uses [`Hopper::claim_for_agents`].
    pub async fn claim(&self, campaign_id: i64, owner: &str, max: usize, now: DateTime<Utc>) -> Result<Vec<Claimed>, StoreError> {
        self.claim_scoped(campaign_id, owner, max, now, None).await
    }

    /// As [`Hopper::claim`], but a callback owned by an agent is taken only when that agent
    /// is among `ready_agents`, or once the campaign's callback grace has passed (then it
    /// goes to anyone).
    pub async fn claim_for_agents(&self, campaign_id: i64, owner: &str, max: usize, now: DateTime<Utc>, ready_agents: &[i64]) -> Result<Vec<Claimed>, StoreError> {
        self.claim_scoped(campaign_id, owner, max, now, Some(ready_agents)).await
    }

    async fn claim_scoped(&self, campaign_id: i64, owner: &str, max: usize, now: DateTime<Utc>, agents: Option<&[i64]>) -> Result<Vec<Claimed>, StoreError> {
        let campaign = self.store.campaign(campaign_id).await?;
        if campaign.status != CampaignStatus::Running || max == 0 {
            return Ok(Vec::new());
        }
        let s = &campaign.settings;
        let policy = WindowPolicy::new(&s.windows, &self.legal_start, &self.legal_end).map_err(StoreError::Invalid)?;
        let known = self.store.campaign_zones(campaign_id).await?;
        let mut covered: Vec<Tz> = known.iter().chain(&s.windows.zones).filter_map(|z| z.parse().ok()).collect();
        covered.sort_by_key(|z| z.name());
        covered.dedup();
        if covered.is_empty() {
            covered.push(self.centre_zone);
        }
        let open: Vec<String> = known.iter().filter(|z| z.parse::<Tz>().is_ok_and(|tz| policy.open_in(tz, now))).cloned().collect();
        let unknown_ok = policy.open_for(None, &covered, now);
        let filter = ZoneFilter { all_open: unknown_ok && open.len() == known.len(), open, unknown_ok };
        if !filter.unknown_ok && filter.open.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = now.timestamp_millis();
        let last = self.expired_at.load(Relaxed);
        // (A clock that went back, as tests' may, expires again.)
        if now_ms < last || now_ms.saturating_sub(last) >= EXPIRY_EVERY_MS {
            self.expire_leases(now_ms).await?;
            self.expired_at.store(now_ms, Relaxed);
        }
        let scope = Scope { zones: filter, agents, today: now.with_timezone(&self.centre_zone).date_naive() };
        let mut out = Vec::new();
        // Leads dropped at claim (all numbers DNC or capped) leave room: try again a little.
        for _ in 0..3 {
            let got = self.claim_round(&campaign, owner, max - out.len(), now.timestamp_millis(), &scope).await?;
            let progressed = got.1;
            out.extend(got.0);
            if out.len() >= max || !progressed {
                break;
            }
        }
        Ok(out)
    }

    /// One transaction: lock candidates, settle unusable ones, lease the rest.
    /// Returns the claimed leads and whether any lead was dropped (so retrying may help).
    async fn claim_round(&self, c: &crate::store::Campaign, owner: &str, max: usize, now: i64, scope: &Scope<'_>) -> Result<(Vec<Claimed>, bool), StoreError> {
        let backend = self.store.backend();
        let pg = backend == Backend::Postgres;
        let lock = if pg { " FOR UPDATE SKIP LOCKED" } else { "" };
        let lists: Vec<(i64, String)> = sqlx::query("SELECT id, filter FROM lists WHERE campaign_id = $1 AND active ORDER BY priority DESC, id")
            .bind(c.id)
            .fetch_all(self.store.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        if lists.is_empty() {
            return Ok((Vec::new(), false));
        }
        // $1 campaign, $2 now, $3.. open zones, then each query's filter values.
        let zone_sql = scope.zones.sql(3);
        let first_free = 3 + scope.zones.binds().len();
        let mut filters: Vec<(i64, Option<Filter>)> = Vec::new();
        for (id, text) in &lists {
            match text.trim() {
                "" => filters.push((*id, None)),
                t => match Filter::parse(t) {
                    Ok(f) => filters.push((*id, Some(f))),
                    // Filters are checked when set; a list whose filter no longer parses is not
                    // dialled rather than dialled whole.
                    Err(e) => tracing::warn!(list = id, error = %e, "list filter does not parse; list skipped"),
                },
            }
        }
        if filters.is_empty() {
            return Ok((Vec::new(), false));
        }
        let all_ids = filters.iter().map(|l| l.0.to_string()).collect::<Vec<_>>().join(",");
        // Which lists, each with its filter, as one condition.
        let list_cond = |only: Option<i64>| -> (String, Vec<Bind>) {
            let mut parts = Vec::new();
            let mut binds = Vec::new();
            let plain: Vec<String> = filters.iter().filter(|l| l.1.is_none() && only.is_none_or(|o| o == l.0)).map(|l| l.0.to_string()).collect();
            if !plain.is_empty() {
                parts.push(format!("list_id IN ({})", plain.join(",")));
            }
            for (id, f) in filters.iter().filter(|l| only.is_none_or(|o| o == l.0)) {
                if let Some(f) = f {
                    let (sql, b) = f.to_sql(backend, scope.today, first_free + binds.len());
                    parts.push(format!("(list_id = {id} AND {sql})"));
                    binds.extend(b);
                }
            }
            (format!("({})", parts.join(" OR ")), binds)
        };
        let grace_ms = c.settings.retry.callback_grace_s as i64 * 1000;
        let owned = match scope.agents {
            None => String::new(),
            Some(ready) => {
                let ready: Vec<String> = ready.iter().map(i64::to_string).collect();
                let mine = if ready.is_empty() { String::new() } else { format!(" OR owner_agent_id IN ({})", ready.join(",")) };
                format!(" AND (owner_agent_id IS NULL OR next_due_at <= {} {mine})", now - grace_ms)
            }
        };
        let mut queries: Vec<(String, Vec<Bind>)> =
            vec![(format!("state = 'callback' AND next_due_at <= $2 AND list_id IN ({all_ids}){owned} {zone_sql} ORDER BY next_due_at, id"), Vec::new())];
        let (retry_lists, retry_binds) = list_cond(None);
        queries.push((format!("state = 'retry' AND next_due_at <= $2 AND {retry_lists} {zone_sql} ORDER BY next_due_at, id"), retry_binds));
        let new_order = match &c.settings.new_lead_order {
            // `id + 0`: the order of the index of new leads (migration 10), which the primary
            // key cannot give, so the planner cannot walk the key past dialled leads.
            NewLeadOrder::ListPriority => "id + 0".to_string(),
            // Validated settings hold only [A-Za-z0-9_] here; anything else sorts by id.
            NewLeadOrder::Field { field } if !field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => "id + 0".to_string(),
            NewLeadOrder::Field { field } if pg => format!("(fields::json->>'{field}'), id"),
            NewLeadOrder::Field { field } => format!("json_extract(fields, '$.{field}'), id"),
        };
        for (list_id, _) in &filters {
            let (cond, binds) = list_cond(Some(*list_id));
            queries.push((format!("state = 'new' AND {cond} AND $2 = $2 {zone_sql} ORDER BY {new_order}"), binds));
        }
        let mut tx = self.store.begin_write().await?;
        let mut leads: Vec<Lead> = Vec::new();
        for (cond, binds) in queries {
            let want = max - leads.len();
            if want == 0 {
                break;
            }
            let sql = format!("SELECT {LEAD_COLUMNS} FROM leads WHERE campaign_id = $1 AND {cond} LIMIT {want}{lock}");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(c.id).bind(now);
            for z in scope.zones.binds() {
                q = q.bind(z.clone());
            }
            for b in binds {
                q = match b {
                    Bind::Text(t) => q.bind(t),
                    Bind::Number(x) => q.bind(x),
                };
            }
            for row in q.fetch_all(&mut *tx).await? {
                leads.push(decode_lead(&row)?);
            }
        }
        if leads.is_empty() {
            tx.commit().await?;
            return Ok((Vec::new(), false));
        }
        let numbers: Vec<String> = leads.iter().flat_map(|l| std::iter::once(l.phone.clone()).chain(l.alt_phones.iter().cloned())).collect();
        let blocked = blocked_numbers(&mut tx, c.id, &numbers).await?;
        let lockout_ms = c.settings.retry.abandon_lockout_h as i64 * 3_600_000;
        let locked = if lockout_ms > 0 { locked_numbers(&mut tx, &numbers, now - lockout_ms).await? } else { HashMap::new() };
        let mut per_number: HashMap<(i64, String), u32> = HashMap::new();
        if leads.iter().any(|l| l.attempts > 0) {
            let id_list = leads.iter().map(|l| l.id.to_string()).collect::<Vec<_>>().join(",");
            // Only a lead's latest `attempts` attempts count: a reset forgets those before.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT lead_id, phone, COUNT(*) FROM (SELECT a.lead_id, a.phone, l.attempts, \
                 ROW_NUMBER() OVER (PARTITION BY a.lead_id ORDER BY a.id DESC) AS k \
                 FROM lead_attempts a JOIN leads l ON l.id = a.lead_id WHERE a.lead_id IN ({id_list})) t \
                 WHERE k <= attempts GROUP BY lead_id, phone"
            )))
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                per_number.insert((r.try_get(0)?, r.try_get(1)?), r.try_get::<i64, _>(2)? as u32);
            }
        }
        let cap = c.settings.retry.max_attempts_per_number;
        let lease_until = now + self.lease_ms;
        let picker = CallerIdPicker::new(&c.settings.caller_id);
        let mut claimed = Vec::new();
        let mut dropped = false;
        for lead in leads {
            let all: Vec<&String> = std::iter::once(&lead.phone).chain(lead.alt_phones.iter()).collect();
            let usable = |n: &&String| !blocked.contains(*n) && per_number.get(&(lead.id, (*n).clone())).copied().unwrap_or(0) < cap;
            // A callback is a promise the customer asked for: the abandon lockout does not hold it back.
            let rested = |n: &&String| lead.state == LeadState::Callback || !locked.contains_key(*n);
            let pick = all.iter().find(|n| usable(n) && rested(n));
            let Some(number) = pick.map(|n| (*n).clone()) else {
                dropped = true;
                if let Some(until) = all.iter().filter(|n| usable(n)).filter_map(|n| locked.get(*n)).map(|t| t + lockout_ms).min() {
                    // Only resting numbers left: try again when the first lockout ends.
                    sqlx::query("UPDATE leads SET state = 'retry', next_due_at = $1, updated_at = $2 WHERE id = $3")
                        .bind(until)
                        .bind(now)
                        .bind(lead.id)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
                let to = if all.iter().all(|n| blocked.contains(*n)) { "dnc" } else { "done" };
                sqlx::query("UPDATE leads SET state = $1, next_due_at = NULL, last_outcome = COALESCE(last_outcome, $2), updated_at = $3 WHERE id = $4")
                    .bind(to)
                    .bind(if to == "dnc" { "dnc" } else { "exhausted" })
                    .bind(now)
                    .bind(lead.id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            };
            let reserved = match (lead.state, lead.owner_agent_id, lead.next_due_at) {
                (LeadState::Callback, Some(agent), Some(due)) if now < due + grace_ms => Some(agent),
                _ => None,
            };
            let caller_id = picker.pick(&number, (lead.id + lead.attempts) as u64).map(str::to_string);
            claimed.push(Claimed { lead, number, reserved_for_agent: reserved, caller_id });
        }
        if !claimed.is_empty() {
            let ids = claimed.iter().map(|c| c.lead.id.to_string()).collect::<Vec<_>>().join(",");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE leads SET state = 'hopper', lease_owner = $1, lease_until = $2, updated_at = $3 WHERE id IN ({ids})"
            )))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for c in &mut claimed {
            c.lead.state = LeadState::Hopper;
            c.lead.lease_owner = Some(owner.to_string());
            c.lead.lease_until = Some(lease_until);
        }
        Ok((claimed, dropped))
    }

    /// The call for a claimed lead has started: hopper → dialling, lease renewed.
    pub async fn mark_dialling(&self, lead_id: i64, owner: &str, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE leads SET state = 'dialling', lease_until = $1, updated_at = $2 WHERE id = $3 AND state = 'hopper' AND lease_owner = $4",
        )
        .bind(now + self.lease_ms)
        .bind(now)
        .bind(lead_id)
        .bind(owner)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid(format!("lead {lead_id} is not in the hopper of {owner}")));
        }
        Ok(())
    }

    /// Extends the lease of a lead whose call is still going (long talks outlast
    /// `lease_s`): a live call's lead must never return to the hopper. `false` when this
    /// node no longer holds the lead.
    pub async fn renew_lease(&self, lead_id: i64, owner: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE leads SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state IN ('hopper', 'dialling')")
            .bind(now + self.lease_ms)
            .bind(lead_id)
            .bind(owner)
            .execute(self.store.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How long a claim lasts unless renewed.
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ms.max(0) as u64)
    }

    /// Return leads whose lease ran out. Returns how many.
    pub async fn expire_leases(&self, now: i64) -> Result<u64, StoreError> {
        release(&self.store, "lease_until < $1 AND $2 = $2", now, "").await
    }

    /// Gives back one lead this node claimed but will not dial (an agent skipped it in
    /// preview): it returns to where it came from. `false` when the node no longer held it.
    pub async fn release_lead(&self, lead_id: i64, owner: &str, now: i64) -> Result<bool, StoreError> {
        Ok(release(&self.store, &format!("id = {lead_id} AND lease_owner = $2"), now, owner).await? == 1)
    }

    /// At start-up: every lease held by `owner` (this node, which just started and so has
    /// no live call) and every expired lease returns to the hopper.
    pub async fn reconcile_leases(&self, owner: &str, now: i64) -> Result<u64, StoreError> {
        let n = release(&self.store, "(lease_until < $1 OR lease_owner = $2)", now, owner).await?;
        if n > 0 {
            tracing::info!(owner, leads = n, "returned leases left by an earlier run");
        }
        Ok(n)
    }
}

/// Leads back to where they came from: an open callback, new (never dialled) or retry.
async fn release(store: &Store, cond: &str, now: i64, owner: &str) -> Result<u64, StoreError> {
    let sql = format!(
        "UPDATE leads SET state = CASE \
           WHEN EXISTS (SELECT 1 FROM callbacks cb WHERE cb.lead_id = leads.id AND cb.done_at IS NULL) THEN 'callback' \
           WHEN attempts = 0 THEN 'new' ELSE 'retry' END, \
         next_due_at = CASE WHEN attempts = 0 AND next_due_at IS NULL THEN NULL ELSE COALESCE(next_due_at, $1) END, \
         lease_owner = NULL, lease_until = NULL, updated_at = $1 \
         WHERE state IN ('hopper', 'dialling') AND {cond}"
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(owner).execute(store.pool()).await?.rows_affected())
}

/// Numbers among `numbers` on the system or the campaign's DNC list.
pub(crate) async fn blocked_numbers(conn: &mut sqlx::AnyConnection, campaign_id: i64, numbers: &[String]) -> Result<HashSet<String>, StoreError> {
    let mut out = HashSet::new();
    for chunk in numbers.chunks(1000) {
        let sql = format!("SELECT phone FROM dnc WHERE campaign_id IN (0, {campaign_id}) AND phone IN ({})", bind_marks(backend_of(conn), 1, chunk.len()));
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for n in chunk {
            q = q.bind(n.clone());
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// Numbers among `numbers` with an abandoned call since `since` (any lead, any campaign),
/// with the time of the latest.
async fn locked_numbers(conn: &mut sqlx::AnyConnection, numbers: &[String], since: i64) -> Result<HashMap<String, i64>, StoreError> {
    let mut out = HashMap::new();
    for chunk in numbers.chunks(1000) {
        let sql = format!(
            "SELECT phone, MAX(started_at) FROM lead_attempts WHERE phone IN ({}) AND started_at > {since} AND abandoned GROUP BY phone",
            bind_marks(backend_of(conn), 1, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for n in chunk {
            q = q.bind(n.clone());
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?);
        }
    }
    Ok(out)
}

/// Which database a connection speaks.
fn backend_of(conn: &sqlx::AnyConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") { Backend::Postgres } else { Backend::Sqlite }
}

/// What one claim may take: open zones, ready agents (for owned callbacks), the date.
struct Scope<'a> {
    zones: ZoneFilter,
    agents: Option<&'a [i64]>,
    /// The call centre's date, for `today` in list filters.
    today: chrono::NaiveDate,
}

/// Which zones may be dialled now, as SQL.
struct ZoneFilter {
    all_open: bool,
    open: Vec<String>,
    unknown_ok: bool,
}

impl ZoneFilter {
    fn sql(&self, first: usize) -> String {
        if self.all_open {
            return String::new();
        }
        let ph: Vec<String> = (0..self.open.len()).map(|i| format!("${}", first + i)).collect();
        let known = if ph.is_empty() { "FALSE".to_string() } else { format!("time_zone IN ({})", ph.join(",")) };
        let unknown = if self.unknown_ok { " OR time_zone IS NULL" } else { "" };
        format!("AND ({known}{unknown})")
    }

    fn binds(&self) -> &[String] {
        if self.all_open { &[] } else { &self.open }
    }
}
