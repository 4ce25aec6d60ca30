//! Users of the web pages and the API besides agents: admins, managers and supervisors.
//! As for agents, the store keeps only the password hash.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, is_unique_violation, now_ms};

/// What a user may do. Agents are in their own table (see [`super::agents`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Supervisor,
    Manager,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Agent, Role::Supervisor, Role::Manager, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
}

fn decode(r: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    let role: String = r.try_get(2)?;
    let id: i64 = r.try_get(0)?;
    Ok(User {
        id,
        username: r.try_get(1)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Invalid(format!("user {id}: unknown role {role:?}")))?,
        password_hash: r.try_get(3)?,
    })
}

impl Store {
    pub async fn create_user(&self, username: &str, role: Role, password_hash: &str) -> Result<User, StoreError> {
        if username.is_empty() || username.len() > 64 || !username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')) {
            return Err(StoreError::Invalid(format!("username {username:?}: 1 to 64 letters, digits, '.', '_', '-' or '@'")));
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(username)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now_ms())
            .fetch_one(self.pool())
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict { what: "user", key: username.to_string() } } else { e.into() })?;
        Ok(User { id, username: username.to_string(), role, password_hash: password_hash.to_string() })
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, username, role, password_hash FROM users WHERE username = $1").bind(username).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query("SELECT id, username, role, password_hash FROM users ORDER BY id").fetch_all(self.pool()).await?;
        rows.iter().map(decode).collect()
    }
}
