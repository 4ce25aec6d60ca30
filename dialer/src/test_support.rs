//! Databases for tests: a temporary SQLite file, and a fresh PostgreSQL database per test
//! when the server at `PACER_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`)
//! is reachable. With `CI=true` an unreachable PostgreSQL is an error, not a skip.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Executor};

use crate::store::{Store, StoreOptions};

/// The PostgreSQL server tests use.
pub fn pg_admin_url() -> String {
    std::env::var("PACER_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// True when tests run in CI, where every peer must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A database that lives as long as this value (dropped with [`TestDb::cleanup`]).
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pg_name: Option<String>,
    _dir: Option<tempdir::TempDir>,
}

mod tempdir {
    /// A directory removed on drop (tests only; avoids a dependency for one function).
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed), nanos)
}

impl TestDb {
    /// A migrated SQLite database in a fresh temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique_name("pacer_test"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("pacer.db").display());
        let store = Store::connect(&url, &StoreOptions::default()).await.expect("connect sqlite");
        store.migrate().await.expect("migrate sqlite");
        TestDb { url, store, pg_name: None, _dir: Some(tempdir::TempDir(dir)) }
    }

    /// A migrated, freshly created PostgreSQL database; `None` (with a note on stderr) when
    /// the server is unreachable outside CI. Panics in CI when it is unreachable.
    pub async fn postgres() -> Option<TestDb> {
        sqlx::any::install_default_drivers();
        let admin_url = pg_admin_url();
        let admin = tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(&admin_url)).await;
        let mut admin = match admin {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return skip(&admin_url, &e.to_string()),
            Err(_) => return skip(&admin_url, "timed out"),
        };
        let name = unique_name("pacer_test");
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create test database");
        let _ = admin.close().await;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin_url.clone());
        let url = format!("{base}/{name}");
        let store = Store::connect(&url, &StoreOptions::default()).await.expect("connect postgres");
        store.migrate().await.expect("migrate postgres");
        Some(TestDb { url, store, pg_name: Some(name), _dir: None })
    }

    /// Both databases: SQLite always, PostgreSQL when reachable.
    pub async fn all() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite().await];
        dbs.extend(TestDb::postgres().await);
        dbs
    }

    /// Close the pool and drop the PostgreSQL database.
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some(name) = &self.pg_name {
            if let Ok(mut admin) = AnyConnection::connect(&pg_admin_url()).await {
                let _ = admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await;
            }
        }
    }
}

fn skip(url: &str, why: &str) -> Option<TestDb> {
    if in_ci() {
        panic!("PostgreSQL at {url} is required in CI (CI=true) but unreachable: {why}");
    }
    eprintln!("note: PostgreSQL tests skipped, {url} unreachable: {why}");
    None
}
