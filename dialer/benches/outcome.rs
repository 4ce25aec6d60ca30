//! Outcome benchmark: every finished call is one transaction that writes the attempt (the
//! CDR) and settles the lead by the retry rules. OUTCOME_CALLS leads are claimed, then their
//! outcomes are written by OUTCOME_TASKS concurrent writers (as a node's call actors would).
//! Prints one JSON line: outcomes per second. PostgreSQL by default; `BACKEND=sqlite` too.
//!
//! `cargo bench -p pacer-dialer --bench outcome`

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::Utc;
use pacer_dialer::hopper::Hopper;
use pacer_dialer::outcome::CallOutcome;
use pacer_dialer::test_support::TestDb;

fn main() {
    let calls = common::env_u64("OUTCOME_CALLS", 20_000);
    let tasks = common::env_u64("OUTCOME_TASKS", 8) as usize;
    let backend = std::env::var("BACKEND").unwrap_or_else(|_| "postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let db = match backend.as_str() {
            "sqlite" => TestDb::sqlite().await,
            _ => TestDb::postgres().await.expect("the outcome benchmark needs PostgreSQL (PACER_TEST_PG), or BACKEND=sqlite"),
        };
        let (campaign, _) = common::campaign_with_leads(&db.store, "outcomes", calls + calls / 500 + 10).await;
        let hopper = Hopper::new(db.store.clone(), &common::open_all_day());
        let now = Utc::now();
        let mut claimed = Vec::new();
        while (claimed.len() as u64) < calls {
            let got = hopper.claim(campaign, "bench", 500, now).await.expect("claim");
            assert!(!got.is_empty(), "ran out of leads");
            claimed.extend(got);
        }
        claimed.truncate(calls as usize);
        let claimed = Arc::new(claimed);
        let next = Arc::new(AtomicUsize::new(0));
        let codes = ["no_answer", "busy", "answered", "machine", "no_answer", "answered", "congestion", "abandoned"];
        let ms = now.timestamp_millis();
        let start = Instant::now();
        let mut writers = Vec::new();
        for _ in 0..tasks {
            let (store, claimed, next) = (db.store.clone(), claimed.clone(), next.clone());
            writers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = claimed.get(i) else { break };
                    let code = codes[i % codes.len()];
                    let human = matches!(code, "answered" | "abandoned");
                    let o = CallOutcome {
                        lead_id: c.lead.id,
                        owner: "bench".into(),
                        phone: c.number.clone(),
                        call_id: Some(format!("bench-{i}@pacer")),
                        trunk: Some("carrier".into()),
                        started_at: ms,
                        answered_at: human.then_some(ms + 8000),
                        ended_at: Some(ms + 60_000),
                        sip_status: Some(if human { 200 } else { 486 }),
                        q850_cause: Some(16),
                        outcome: code.into(),
                        answered_by: human.then(|| "human".to_string()),
                        agent_id: (code == "answered").then_some(7),
                        abandoned: code == "abandoned",
                        talk_s: if code == "answered" { 52.0 } else { 0.0 },
                        wrap_s: if code == "answered" { 10.0 } else { 0.0 },
                        recording_path: (code == "answered").then(|| format!("rec/{i}.wav")),
                        ..Default::default()
                    };
                    store.record_outcome(&o, ms + 60_000, chrono_tz::UTC).await.expect("outcome");
                }
            }));
        }
        for w in writers {
            w.await.expect("writer");
        }
        let secs = start.elapsed().as_secs_f64();
        let written: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lead_attempts WHERE campaign_id = $1").bind(campaign).fetch_one(db.store.pool()).await.unwrap();
        println!(
            "{{\"benchmark\":\"outcome_cdr_write\",\"backend\":\"{backend}\",\"calls\":{calls},\"writers\":{tasks},\"attempts_written\":{written},\"seconds\":{secs:.2},\"outcomes_per_s\":{:.0},\"transactions_per_call\":1}}",
            calls as f64 / secs
        );
        assert_eq!(written as u64, calls);
        db.cleanup().await;
    });
}
