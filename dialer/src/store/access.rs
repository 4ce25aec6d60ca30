//! Access: API tokens, web sessions and the audit log. The store sees only hashes of
//! tokens and session ids (the application hashes what the client sends); the plain
//! values exist only on the client's side.

use serde::Serialize;
use sqlx::Row;

use super::users::{Role, User};
use super::{Store, StoreError, now_ms};

/// An API token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub source: String,
}

/// What happened, for [`Store::audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
    pub source: &'a str,
}

const TOKEN_COLUMNS: &str = "t.id, t.user_id, u.username, t.name, t.created_at, t.last_used_at, t.revoked_at";

fn decode_token(r: &sqlx::any::AnyRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        username: r.try_get(2)?,
        name: r.try_get(3)?,
        created_at: r.try_get(4)?,
        last_used_at: r.try_get(5)?,
        revoked_at: r.try_get(6)?,
    })
}

fn decode_user(r: &sqlx::any::AnyRow, at: usize) -> Result<User, StoreError> {
    let role: String = r.try_get(at + 2)?;
    let id: i64 = r.try_get(at)?;
    Ok(User {
        id,
        username: r.try_get(at + 1)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Invalid(format!("user {id}: unknown role {role:?}")))?,
        password_hash: String::new(),
    })
}

impl Store {
    /// Records a new token of `user_id` by its hash.
    pub async fn create_token(&self, user_id: i64, name: &str, token_hash: &str) -> Result<ApiToken, StoreError> {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(StoreError::Invalid("name: 1 to 100 characters".into()));
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(user_id)
            .bind(name.trim())
            .bind(token_hash)
            .bind(now_ms())
            .fetch_one(self.pool())
            .await?;
        self.token(id).await
    }

    pub async fn token(&self, id: i64) -> Result<ApiToken, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(decode_token).transpose()?.ok_or(StoreError::NotFound { what: "token", id: id.to_string() })
    }

    /// Every token, newest first (revoked ones too: they say who had access when).
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(decode_token).collect()
    }

    /// The live (not revoked) token with this hash and its user; its use is noted.
    pub async fn use_token(&self, token_hash: &str) -> Result<Option<(ApiToken, User)>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS}, u.id, u.username, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(self.pool()).await? else {
            return Ok(None);
        };
        let token = decode_token(&row)?;
        let user = decode_user(&row, 7)?;
        // At most once a minute per token: no write on every request.
        let now = now_ms();
        if token.last_used_at.is_none_or(|t| now - t > 60_000) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2").bind(now).bind(token.id).execute(self.pool()).await?;
        }
        Ok(Some((token, user)))
    }

    /// Revokes a token at once. `false` when it was already revoked.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        self.token(id).await?;
        let n = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(now_ms()).bind(id).execute(self.pool()).await?.rows_affected();
        Ok(n == 1)
    }

    /// Opens a web session (by the hash of its cookie value) until `expires_at`.
    pub async fn create_session(&self, id_hash: &str, user_id: i64, csrf: &str, expires_at: i64) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1").bind(now).execute(self.pool()).await?;
        sqlx::query("INSERT INTO web_sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id_hash)
            .bind(user_id)
            .bind(csrf)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The user of a session that has not expired, and the session's CSRF token.
    pub async fn session(&self, id_hash: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query("SELECT u.id, u.username, u.role, s.csrf FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2")
            .bind(id_hash)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((decode_user(&r, 0)?, r.try_get(3)?))).transpose()
    }

    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1").bind(id_hash).execute(self.pool()).await?;
        Ok(())
    }

    /// Changes a user's role (admins only, through the API); ends their web sessions so
    /// that the new role applies at once.
    pub async fn set_user_role(&self, id: i64, role: Role) -> Result<User, StoreError> {
        let n = sqlx::query("UPDATE users SET role = $1 WHERE id = $2").bind(role.as_str()).bind(id).execute(self.pool()).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: "user", id: id.to_string() });
        }
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1").bind(id).execute(self.pool()).await?;
        let row = sqlx::query("SELECT id, username, role FROM users WHERE id = $1").bind(id).fetch_one(self.pool()).await?;
        decode_user(&row, 0)
    }

    pub async fn audit(&self, e: &AuditEvent<'_>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_log (at, actor, action, target, detail, source) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(now_ms())
            .bind(e.actor)
            .bind(e.action)
            .bind(e.target)
            .bind(e.detail)
            .bind(e.source)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The audit log from `since` (Unix ms), newest first, at most `limit` lines.
    pub async fn audit_log(&self, since: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT id, at, actor, action, target, detail, source FROM audit_log WHERE at >= $1 ORDER BY id DESC LIMIT $2")
            .bind(since)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    target: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    source: r.try_get(6)?,
                })
            })
            .collect()
    }
}
