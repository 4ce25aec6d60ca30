//! CSV import benchmark: 1M generated rows (ROWS=…) into a fresh SQLite database, streamed
//! from a generator so the file itself is never in memory. Prints one JSON line: rows/s
//! and the process's peak resident memory (which must stay far below the data's size).
//!
//! `cargo bench -p pacer-dialer --bench import`; `BACKEND=postgres` imports into PostgreSQL.

mod common;

use std::time::Instant;

use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::store::{DialMode, NewCampaign};
use pacer_dialer::test_support::TestDb;

fn main() {
    let rows = common::env_u64("ROWS", 1_000_000);
    let backend = std::env::var("BACKEND").unwrap_or_else(|_| "sqlite".into());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let db = match backend.as_str() {
            "postgres" => TestDb::postgres().await.expect("PostgreSQL is needed for BACKEND=postgres"),
            _ => TestDb::sqlite().await,
        };
        let s = &db.store;
        let c = s.create_campaign(&NewCampaign { name: "bench".into(), dial_mode: DialMode::Predictive, settings: Default::default() }).await.unwrap();
        let l = s.create_list(c.id, "L", 0).await.unwrap();
        let rss_before = common::rss_mib();
        let input = common::GeneratedCsv::new(rows);
        let start = Instant::now();
        let report = import_csv(s, l.id, input, ImportOptions { mapping: Mapping::default(), default_country: "US".into() }).await.expect("import");
        let secs = start.elapsed().as_secs_f64();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads").fetch_one(s.pool()).await.unwrap();
        println!(
            "{{\"benchmark\":\"csv_import\",\"backend\":\"{backend}\",\"rows\":{rows},\"imported\":{},\"duplicates\":{},\"rejected\":{},\"stored\":{stored},\"seconds\":{secs:.2},\"rows_per_s\":{:.0},\"rss_before_mib\":{rss_before:.1},\"peak_rss_mib\":{:.1},\"cores\":{}}}",
            report.imported,
            report.duplicates,
            report.rejected_total,
            rows as f64 / secs,
            common::peak_rss_mib(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
        db.cleanup().await;
    });
}
