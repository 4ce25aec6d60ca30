//! Agents (the people at the desktops) and the log of their state changes.
//!
//! The store keeps the password *hash* only; hashing and checking belong to the
//! application's auth code. The state log is written in batches by the application as the
//! ACD reports changes; [`Store::agent_time`] turns it back into time per state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, is_unique_violation, now_ms};

/// An agent as the ACD and the desktop need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub id: i64,
    pub username: String,
    pub name: String,
    /// Skill → level 1..=10.
    pub skills: BTreeMap<String, u8>,
    /// Campaigns this agent may work; empty means all.
    pub campaigns: Vec<i64>,
    /// Tie-break rank (lower first) when routing ties are broken by rank.
    pub rank: i64,
    pub active: bool,
    #[serde(skip)]
    pub password_hash: String,
}

/// A new agent; `password_hash` comes from the application's hasher.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    pub username: String,
    #[serde(default)]
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    #[serde(default)]
    pub campaigns: Vec<i64>,
    #[serde(default)]
    pub rank: i64,
}

/// One state change, as the ACD reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStateRow {
    pub agent_id: i64,
    /// `logged_out`, `ready`, `reserved`, `on_call`, `wrap_up`, `not_ready`.
    pub state: String,
    pub reason: Option<String>,
    pub call_id: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

/// Seconds an agent spent in each state over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentTime {
    pub agent_id: i64,
    /// State name → seconds.
    pub seconds: BTreeMap<String, f64>,
    /// Not-ready seconds by reason code.
    pub not_ready_reasons: BTreeMap<String, f64>,
    /// Calls taken (entries into `on_call`).
    pub calls: u64,
}

impl AgentTime {
    /// Seconds logged in (every state but `logged_out`).
    pub fn logged_in_s(&self) -> f64 {
        self.seconds.iter().filter(|(k, _)| k.as_str() != "logged_out").map(|(_, v)| v).sum()
    }

    /// (talk + wrap-up) ÷ logged-in time; reserved counts as talk (the agent is held).
    pub fn occupancy(&self) -> f64 {
        let busy: f64 = ["reserved", "on_call", "wrap_up"].iter().filter_map(|k| self.seconds.get(*k)).sum();
        let total = self.logged_in_s();
        if total > 0.0 { busy / total } else { 0.0 }
    }
}

const COLUMNS: &str = "id, username, name, password_hash, skills, campaigns, tie_rank, CASE WHEN active THEN 1 ELSE 0 END";

fn decode(r: &sqlx::any::AnyRow) -> Result<Agent, StoreError> {
    let skills: String = r.try_get(4)?;
    let campaigns: String = r.try_get(5)?;
    let id: i64 = r.try_get(0)?;
    let bad = |what: &str, e: serde_json::Error| StoreError::Invalid(format!("agent {id}: stored {what} are not valid JSON: {e}"));
    Ok(Agent {
        id,
        username: r.try_get(1)?,
        name: r.try_get(2)?,
        password_hash: r.try_get(3)?,
        skills: serde_json::from_str(&skills).map_err(|e| bad("skills", e))?,
        campaigns: serde_json::from_str(&campaigns).map_err(|e| bad("campaigns", e))?,
        rank: r.try_get(6)?,
        active: r.try_get::<i64, _>(7)? != 0,
    })
}

/// Usernames become SIP user parts and log fields: keep them plain.
fn check_username(u: &str) -> Result<(), StoreError> {
    if u.is_empty() || u.len() > 64 || !u.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(StoreError::Invalid(format!("username {u:?}: 1 to 64 letters, digits, '.', '_' or '-'")));
    }
    Ok(())
}

impl Store {
    pub async fn create_agent(&self, a: &NewAgent) -> Result<Agent, StoreError> {
        check_username(&a.username)?;
        if let Some((skill, level)) = a.skills.iter().find(|(_, l)| !(1..=10).contains(*l)) {
            return Err(StoreError::Invalid(format!("skills.{skill}: level {level} is outside 1..10")));
        }
        let skills = serde_json::to_string(&a.skills).expect("a map of strings serialises");
        let campaigns = serde_json::to_string(&a.campaigns).expect("a list of ids serialises");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO agents (username, name, password_hash, skills, campaigns, tie_rank, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&a.username)
        .bind(&a.name)
        .bind(&a.password_hash)
        .bind(skills)
        .bind(campaigns)
        .bind(a.rank)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await
        .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict { what: "agent", key: a.username.clone() } } else { e.into() })?;
        self.agent(id).await
    }

    pub async fn agent(&self, id: i64) -> Result<Agent, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agents WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound { what: "agent", id: id.to_string() })?;
        decode(&row)
    }

    pub async fn agent_by_username(&self, username: &str) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agents WHERE username = $1")))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Opens an agent desktop's web session (by the hash of its cookie value) until
    /// `expires_at`; expired ones are swept.
    pub async fn create_agent_session(&self, id_hash: &str, agent_id: i64, expires_at: i64) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query("DELETE FROM agent_sessions WHERE expires_at < $1").bind(now).execute(self.pool()).await?;
        sqlx::query("INSERT INTO agent_sessions (id_hash, agent_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(id_hash)
            .bind(agent_id)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The active agent of a session that has not expired.
    pub async fn agent_session(&self, id_hash: &str) -> Result<Option<Agent>, StoreError> {
        let agent_id: Option<i64> = sqlx::query_scalar("SELECT agent_id FROM agent_sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        let Some(id) = agent_id else { return Ok(None) };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agents WHERE id = $1"))).bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(decode).transpose()?.filter(|a| a.active))
    }

    pub async fn end_agent_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM agent_sessions WHERE id_hash = $1").bind(id_hash).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agents ORDER BY id"))).fetch_all(self.pool()).await?;
        rows.iter().map(decode).collect()
    }

    /// Append state changes (one transaction for the batch).
    pub async fn log_agent_states(&self, rows: &[AgentStateRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for r in rows {
            sqlx::query("INSERT INTO agent_state_log (agent_id, state, reason, call_id, at) VALUES ($1, $2, $3, $4, $5)")
                .bind(r.agent_id)
                .bind(&r.state)
                .bind(r.reason.clone())
                .bind(r.call_id.clone())
                .bind(r.at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Logged state changes of one agent (or all) in `[from, to)`, oldest first.
    pub async fn agent_states(&self, agent_id: Option<i64>, from: i64, to: i64) -> Result<Vec<AgentStateRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, state, reason, call_id, at FROM agent_state_log \
             WHERE ($1 IS NULL OR agent_id = $1) AND at >= $2 AND at < $3 ORDER BY agent_id, at, id",
        )
        .bind(agent_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(AgentStateRow { agent_id: r.try_get(0)?, state: r.try_get(1)?, reason: r.try_get(2)?, call_id: r.try_get(3)?, at: r.try_get(4)? }))
            .collect()
    }

    /// Time per state for each agent over `[from, to)`: each state lasts until the agent's
    /// next change (or `to`). The state an agent was in at `from` is taken from the last
    /// change before it.
    pub async fn agent_time(&self, agent_id: Option<i64>, from: i64, to: i64) -> Result<Vec<AgentTime>, StoreError> {
        let before = sqlx::query(
            "SELECT l.agent_id, l.state, l.reason, l.call_id, l.at FROM agent_state_log l \
             WHERE ($1 IS NULL OR l.agent_id = $1) AND l.at < $2 AND l.id = \
             (SELECT MAX(m.id) FROM agent_state_log m WHERE m.agent_id = l.agent_id AND m.at < $2)",
        )
        .bind(agent_id)
        .bind(from)
        .fetch_all(self.pool())
        .await?;
        let mut rows: Vec<AgentStateRow> = before
            .iter()
            .map(|r| Ok(AgentStateRow { agent_id: r.try_get(0)?, state: r.try_get(1)?, reason: r.try_get(2)?, call_id: r.try_get(3)?, at: from }))
            .collect::<Result<_, sqlx::Error>>()?;
        rows.extend(self.agent_states(agent_id, from, to).await?);
        rows.sort_by_key(|r| (r.agent_id, r.at));
        Ok(time_per_state(&rows, to))
    }
}

/// Occupancy of a team: their busy time over their logged-in time, together.
pub fn team_occupancy(times: &[AgentTime]) -> f64 {
    let busy: f64 = times.iter().map(|a| a.occupancy() * a.logged_in_s()).sum();
    let total: f64 = times.iter().map(AgentTime::logged_in_s).sum();
    // `+ 0.0` turns a -0.0 (no busy time at all) into 0.0 for display.
    if total > 0.0 { busy / total + 0.0 } else { 0.0 }
}

/// Folds ordered state rows (by agent, then time) into time per state, closing each
/// agent's last state at `to`.
pub fn time_per_state(rows: &[AgentStateRow], to: i64) -> Vec<AgentTime> {
    let mut out: Vec<AgentTime> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if out.last().is_none_or(|t| t.agent_id != r.agent_id) {
            out.push(AgentTime { agent_id: r.agent_id, ..AgentTime::default() });
        }
        let end = rows.get(i + 1).filter(|n| n.agent_id == r.agent_id).map_or(to, |n| n.at).max(r.at);
        let secs = (end - r.at) as f64 / 1000.0;
        let t = out.last_mut().expect("pushed above");
        *t.seconds.entry(r.state.clone()).or_default() += secs;
        if r.state == "not_ready" {
            *t.not_ready_reasons.entry(r.reason.clone().unwrap_or_default()).or_default() += secs;
        }
        if r.state == "on_call" {
            t.calls += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(agent: i64, state: &str, at: i64) -> AgentStateRow {
        AgentStateRow { agent_id: agent, state: state.into(), reason: (state == "not_ready").then(|| "break".into()), call_id: None, at }
    }

    #[test]
    fn states_last_until_the_next_change() {
        let rows = [row(1, "ready", 0), row(1, "on_call", 10_000), row(1, "wrap_up", 70_000), row(1, "not_ready", 80_000), row(2, "ready", 0)];
        let t = time_per_state(&rows, 100_000);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].seconds["ready"], 10.0);
        assert_eq!(t[0].seconds["on_call"], 60.0);
        assert_eq!(t[0].seconds["wrap_up"], 10.0);
        assert_eq!(t[0].not_ready_reasons["break"], 20.0);
        assert_eq!(t[0].calls, 1);
        assert!((t[0].occupancy() - 0.7).abs() < 1e-9);
        assert_eq!(t[1].seconds["ready"], 100.0);
        assert_eq!(t[1].occupancy(), 0.0);
    }
}
