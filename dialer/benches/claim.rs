//! Hopper benchmark: two `claimer` processes against one PostgreSQL claim every lead of a
//! list as fast as they can, each with its own connection pool. Prints one JSON line per
//! batch size: claims per second over both processes, and the proof that no lead was
//! claimed twice (every id once across both processes, and the database agrees).
//!
//! `cargo bench -p pacer-dialer --bench claim` (CLAIM_LEADS=20000, CLAIM_BATCHES=1,10).
//! The same program is the claimer: `claim --claimer URL CAMPAIGN NODE BATCH OUT_FILE`.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::Utc;
use pacer_dialer::hopper::Hopper;
use pacer_dialer::store::{Store, StoreOptions};
use pacer_dialer::test_support::TestDb;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--claimer") {
        claimer(&args[i + 1..]);
        return;
    }
    let leads = common::env_u64("CLAIM_LEADS", 20_000);
    let batches: Vec<usize> = std::env::var("CLAIM_BATCHES").unwrap_or_else(|_| "1,10".into()).split(',').filter_map(|b| b.trim().parse().ok()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let db = rt.block_on(TestDb::postgres()).expect("the claim benchmark needs PostgreSQL (PACER_TEST_PG)");
    for batch in batches {
        let (campaign, _) = rt.block_on(common::campaign_with_leads(&db.store, &format!("claim-{batch}"), leads));
        let total: i64 = rt.block_on(sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE campaign_id = $1").bind(campaign).fetch_one(db.store.pool())).unwrap();
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = std::env::current_exe().expect("exe");
        let mut children: Vec<_> = ["node-1", "node-2"]
            .iter()
            .map(|node| {
                let out = dir.path().join(format!("{node}.ids"));
                let child = Command::new(&exe)
                    .args(["--claimer", &db.url, &campaign.to_string(), node, &batch.to_string(), out.to_str().unwrap()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn claimer");
                (child, out)
            })
            .collect();
        // Both connect first and say "ready"; then both are told to start at once.
        for (child, _) in &mut children {
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).expect("ready");
            assert_eq!(line.trim(), "ready");
        }
        let start = Instant::now();
        for (child, _) in &mut children {
            child.stdin.take().unwrap().write_all(b"go\n").expect("go");
        }
        let mut ids = Vec::new();
        let mut per_node = Vec::new();
        for (mut child, out) in children {
            assert!(child.wait().expect("claimer").success(), "a claimer failed");
            let text = std::fs::read_to_string(&out).expect("ids");
            let mine: Vec<i64> = text.lines().map(|l| l.parse().unwrap()).collect();
            per_node.push(mine.len());
            ids.extend(mine);
        }
        let secs = start.elapsed().as_secs_f64();
        let unique: HashSet<i64> = ids.iter().copied().collect();
        let leased: i64 = rt
            .block_on(sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE campaign_id = $1 AND state = 'hopper' AND lease_owner IN ('node-1', 'node-2')").bind(campaign).fetch_one(db.store.pool()))
            .unwrap();
        let never_twice = ids.len() == unique.len() && unique.len() as i64 == total && leased == total;
        println!(
            "{{\"benchmark\":\"hopper_claim\",\"backend\":\"postgres\",\"processes\":2,\"batch\":{batch},\"leads\":{total},\"claimed\":{},\"per_process\":{per_node:?},\"seconds\":{secs:.2},\"claims_per_s\":{:.0},\"never_the_same_lead_twice\":{never_twice}}}",
            ids.len(),
            ids.len() as f64 / secs
        );
        assert!(never_twice, "a lead was claimed twice or lost");
    }
    rt.block_on(db.cleanup());
}

/// One node: claim until the list is empty, then write the claimed ids to OUT_FILE.
fn claimer(args: &[String]) {
    let [url, campaign, node, batch, out] = args else { panic!("--claimer URL CAMPAIGN NODE BATCH OUT_FILE") };
    let (campaign, batch): (i64, usize) = (campaign.parse().unwrap(), batch.parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ids = rt.block_on(async {
        let store = Store::connect(url, &StoreOptions { max_connections: 4, ..Default::default() }).await.expect("connect");
        store.ping().await.expect("ping");
        let hopper = Hopper::new(store.clone(), &common::open_all_day());
        writeln!(std::io::stdout(), "ready").unwrap();
        std::io::stdout().flush().unwrap();
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).unwrap();
        let now = Utc::now();
        let mut ids = Vec::new();
        loop {
            let got = hopper.claim(campaign, node, batch, now).await.expect("claim");
            if got.is_empty() {
                break;
            }
            ids.extend(got.into_iter().map(|c| c.lead.id));
        }
        store.close().await;
        ids
    });
    let text: String = ids.iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(out, text).expect("write ids");
}
