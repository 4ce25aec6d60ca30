//! Embedded migrations, rendered for the backend's dialect.
//!
//! The `.sql` files under `dialer/migrations/` are written once; the only dialect token is
//! `{{ID}}` (auto-increment primary key). Each database keeps the checksum of its own
//! rendering, so changing an applied file is still detected.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

use super::{Backend, Store, StoreError};

/// (version, description, text) of every migration, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../../migrations/0001_initial.sql")),
    (2, "campaign data", include_str!("../../migrations/0002_campaign_data.sql")),
    (3, "agents", include_str!("../../migrations/0003_agents.sql")),
    (4, "webhooks", include_str!("../../migrations/0004_webhooks.sql")),
    (5, "list filters, lockout index", include_str!("../../migrations/0005_filters_lockout.sql")),
    (6, "api tokens, web sessions, audit log", include_str!("../../migrations/0006_access.sql")),
    (7, "kill switch, blocked outcome", include_str!("../../migrations/0007_kill_switch.sql")),
    (8, "agent web sessions, callbacks by lead", include_str!("../../migrations/0008_agent_sessions.sql")),
    (9, "verdict time", include_str!("../../migrations/0009_verdict_time.sql")),
    (10, "index of new leads in claim order", include_str!("../../migrations/0010_new_leads_index.sql")),
    (11, "lease index of leased leads only", include_str!("../../migrations/0011_partial_lease_index.sql")),
];

fn render(sql: &str, backend: Backend) -> String {
    let id = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Backend::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    sql.replace("{{ID}}", id)
}

pub(super) fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, desc, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*desc),
                MigrationType::Simple,
                AssertSqlSafe(render(sql, backend)).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

pub(super) async fn pending(store: &Store) -> Result<Vec<i64>, StoreError> {
    let applied: Vec<i64> = match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
        .fetch_all(store.pool())
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<_, _>>()?,
        // No bookkeeping table yet: nothing is applied.
        Err(sqlx::Error::Database(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(MIGRATIONS.iter().map(|m| m.0).filter(|v| !applied.contains(v)).collect())
}
