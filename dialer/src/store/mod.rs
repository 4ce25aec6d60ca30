//! The database: one [`Store`] over SQLite (embedded default) or PostgreSQL.
//!
//! Both backends go through `sqlx::Any` with the same query texts (`$1` placeholders work
//! on both) and portable column types (times as Unix milliseconds, JSON as text). Where the
//! backends must differ (claiming leads: `FOR UPDATE SKIP LOCKED` on PostgreSQL) the store
//! branches on [`Backend`].

mod access;
pub mod agents;
mod callbacks;
mod campaigns;
mod dispositions;
mod dnc;
mod kill_switch;
pub(crate) mod leads;
mod migrations;
mod reports;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

pub use access::{ApiToken, AuditEntry, AuditEvent};
pub use agents::{Agent, AgentStateRow, AgentTime, NewAgent};
pub use callbacks::{Callback, CallbackQuery};
pub use campaigns::{Campaign, CampaignAction, CampaignStatus, CampaignUpdate, DialMode, NewCampaign};
pub use dispositions::Disposition;
pub use dnc::{DncEntry, SYSTEM_DNC};
pub use kill_switch::KillSwitch;
pub use leads::{Lead, LeadEdit, LeadQuery, List};
pub use users::{Role, User};
pub use webhooks::WebhookDelivery;
pub use reports::{AbandonRate, AbandonStats, Cdr, CdrQuery, HourRow, OutcomeRow, Penetration};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a URL names, if it names one Pacer supports.
    pub fn from_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Errors of the store. Messages name the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database url {0:?}: must start with sqlite: or postgres://")]
    UnsupportedUrl(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} {key:?} already exists")]
    Conflict { what: &'static str, key: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A request the data does not allow (a status transition, an archived campaign…).
    #[error("{0}")]
    Invalid(String),
}

/// Options for [`Store::connect`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// A connection pool plus the knowledge of which SQL dialect it speaks.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connect to `url`. For SQLite the file (and its directory) is created when missing.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_string()))?;
        let mut url = url.to_string();
        if backend == Backend::Sqlite {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if !path.is_empty() && path != ":memory:" {
                if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
                }
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { opts.max_connections.min(4) } else { opts.max_connections })
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the single writer; the busy timeout makes
                        // writers queue instead of failing under contention.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Store { pool, backend })
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for queries that live next to their callers in this crate.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and writes later can fail
    /// with "database is locked" when another writer committed in between.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Apply every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrations::migrator(self.backend).run(&self.pool).await?;
        Ok(())
    }

    /// Migrations known to this binary that the database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        migrations::pending(self).await
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Close the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Current time in Unix milliseconds, the store's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `n` parameter marks for values bound in order, numbered from `$first` on PostgreSQL. SQLite
/// gets anonymous `?` (so the statement must have no numbered ones): with numbered
/// marks, binding is quadratic there, because each lookup of a parameter's name
/// walks the statement's list of names — most of an import's time with 6,000 of them.
pub(crate) fn bind_marks(backend: Backend, first: usize, n: usize) -> String {
    match backend {
        Backend::Sqlite => vec!["?"; n].join(","),
        Backend::Postgres => (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(","),
    }
}

/// True when `e` is a unique-constraint violation (both backends).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
