//! The lead state machine against the real store, on SQLite and PostgreSQL: random
//! sequences of claims, dials, outcomes (some late, from a node that lost the lease), clock
//! jumps, restarts, resets, DNC adds and callbacks. After every step each lead is in exactly
//! one state, reached from its previous one by one legal move ([`lead_state::next`]), its
//! lease fields agree with its state, and no claim ever hands out a lead that is held.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use pacer_config::DialerConfig;
use pacer_dialer::hopper::Hopper;
use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::lead_state::{LeadState, reachable_in_one};
use pacer_dialer::outcome::CallOutcome;
use pacer_dialer::store::{CampaignAction, DialMode, LeadQuery, NewCampaign, Store};
use pacer_dialer::test_support::TestDb;
use proptest::prelude::*;

const LEADS: usize = 6;
const NODES: [&str; 2] = ["node-a", "node-b"];
const CODES: [&str; 6] = ["no_answer", "busy", "answered", "dnc", "abandoned", "machine"];

#[derive(Debug, Clone)]
enum Op {
    Claim { node: usize, n: usize },
    Dial { i: usize },
    Outcome { i: usize, code: usize, late: bool },
    Advance { minutes: i64 },
    Restart { node: usize },
    Reset { i: usize },
    AddDnc { i: usize },
    Schedule { i: usize },
    Cancel { i: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 1..4usize).prop_map(|(node, n)| Op::Claim { node, n }),
        2 => (0..LEADS).prop_map(|i| Op::Dial { i }),
        3 => (0..LEADS, 0..CODES.len(), proptest::bool::weighted(0.2)).prop_map(|(i, code, late)| Op::Outcome { i, code, late }),
        2 => (1..2000i64).prop_map(|minutes| Op::Advance { minutes }),
        1 => (0..2usize).prop_map(|node| Op::Restart { node }),
        1 => (0..LEADS).prop_map(|i| Op::Reset { i }),
        1 => (0..LEADS).prop_map(|i| Op::AddDnc { i }),
        1 => (0..LEADS).prop_map(|i| Op::Schedule { i }),
        1 => (0..LEADS).prop_map(|i| Op::Cancel { i }),
    ]
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

#[derive(Debug, Clone, PartialEq)]
struct Snap {
    state: LeadState,
    owner: Option<String>,
    until: Option<i64>,
}

async fn snapshot(s: &Store, campaign: i64) -> HashMap<i64, (String, Snap)> {
    let leads = s.search_leads(&LeadQuery { campaign_id: Some(campaign), ..Default::default() }).await.unwrap();
    leads.into_iter().map(|l| (l.id, (l.phone, Snap { state: l.state, owner: l.lease_owner, until: l.lease_until }))).collect()
}

fn check(before: &HashMap<i64, (String, Snap)>, after: &HashMap<i64, (String, Snap)>, op: &Op) -> Result<(), TestCaseError> {
    prop_assert_eq!(after.len(), LEADS, "a lead was lost or added after {:?}", op);
    for (id, (_, a)) in after {
        let b = &before[id].1;
        prop_assert!(reachable_in_one(b.state, a.state), "lead {} went {:?} -> {:?} by {:?}", id, b.state, a.state, op);
        prop_assert_eq!(a.state.is_leased(), a.owner.is_some() && a.until.is_some(), "lead {} is {:?} with lease {:?}", id, a.state, a);
    }
    Ok(())
}

async fn run(db: &TestDb, ops: &[Op]) -> Result<(), TestCaseError> {
    let s = &db.store;
    let c = s.create_campaign(&NewCampaign { name: format!("P{}", pacer_dialer::store::now_ms()), dial_mode: DialMode::Predictive, settings: Default::default() }).await.unwrap();
    s.campaign_action(c.id, CampaignAction::Start).await.unwrap();
    let list = s.create_list(c.id, "L", 0).await.unwrap();
    let csv = (0..LEADS).fold(String::from("phone\n"), |acc, i| acc + &format!("+1415555{:04}\n", 1000 + i + (c.id as usize % 50) * 10));
    let opts = ImportOptions { mapping: Mapping::default(), default_country: "US".into() };
    assert_eq!(import_csv(s, list.id, std::io::Cursor::new(csv.into_bytes()), opts).await.unwrap().imported, LEADS as u64);
    let cfg = DialerConfig { legal_window_start: "00:00".into(), legal_window_end: "24:00".into(), lease_s: 600, ..Default::default() };
    let h = Hopper::new(s.clone(), &cfg);
    let mut now: DateTime<Utc> = Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap();
    let mut before = snapshot(s, c.id).await;
    let ids: Vec<i64> = {
        let mut v: Vec<i64> = before.keys().copied().collect();
        v.sort();
        v
    };
    for op in ops {
        let ms = now.timestamp_millis();
        match op {
            Op::Claim { node, n } => {
                // Expiry is its own step, so each step is one move per lead.
                h.expire_leases(ms).await.unwrap();
                let mid = snapshot(s, c.id).await;
                check(&before, &mid, &Op::Advance { minutes: 0 })?;
                before = mid;
                for got in h.claim(c.id, NODES[*node], *n, now).await.unwrap() {
                    let was = &before[&got.lead.id].1;
                    prop_assert!(!was.state.is_leased(), "lead {} handed out while {:?} by {:?}", got.lead.id, was.state, was.owner);
                }
            }
            Op::Dial { i } => {
                let (_, l) = &before[&ids[*i]];
                let r = match &l.owner {
                    Some(owner) => h.mark_dialling(ids[*i], owner, ms).await,
                    None => h.mark_dialling(ids[*i], NODES[0], ms).await,
                };
                prop_assert_eq!(r.is_ok(), l.state == LeadState::Hopper, "mark_dialling on {:?}: {:?}", l.state, r);
            }
            Op::Outcome { i, code, late } => {
                let (phone, l) = &before[&ids[*i]];
                if let Some(owner) = l.owner.clone().filter(|_| l.state.is_leased()) {
                    let from = if *late { "a-node-that-lost-it".to_string() } else { owner };
                    let o = CallOutcome {
                        lead_id: ids[*i],
                        owner: from,
                        phone: phone.clone(),
                        outcome: CODES[*code].into(),
                        answered_by: matches!(CODES[*code], "answered" | "abandoned" | "dnc").then(|| "human".into()),
                        started_at: ms,
                        ..Default::default()
                    };
                    let r = s.record_outcome(&o, ms, chrono_tz::UTC).await.unwrap();
                    prop_assert_eq!(r.lead_updated, !*late);
                }
            }
            Op::Advance { minutes } => now += chrono::Duration::minutes(*minutes),
            Op::Restart { node } => {
                h.reconcile_leases(NODES[*node], ms).await.unwrap();
            }
            Op::Reset { i } => {
                let r = s.reset_lead(ids[*i]).await;
                let (_, l) = &before[&ids[*i]];
                if l.state.is_leased() {
                    prop_assert!(r.is_err(), "a leased lead was reset");
                }
            }
            Op::AddDnc { i } => {
                s.add_dnc(c.id, &[before[&ids[*i]].0.clone()], "test").await.unwrap();
            }
            Op::Schedule { i } => {
                let at = (now + chrono::Duration::minutes(30)).naive_utc();
                let r = s.schedule_callback(ids[*i], at, None, "", chrono_tz::UTC).await;
                let (_, l) = &before[&ids[*i]];
                prop_assert_eq!(r.is_ok(), !l.state.is_leased() && l.state != LeadState::Dnc, "schedule on {:?}: {:?}", l.state, r);
            }
            Op::Cancel { i } => {
                let open = s.callbacks(&pacer_dialer::store::CallbackQuery { campaign_id: Some(c.id), ..Default::default() }).await.unwrap();
                if let Some(cb) = open.iter().find(|cb| cb.lead_id == ids[*i]) {
                    s.cancel_callback(cb.id).await.unwrap();
                }
            }
        }
        let after = snapshot(s, c.id).await;
        check(&before, &after, op)?;
        before = after;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 64, ..ProptestConfig::default() })]
    #[test]
    fn every_store_move_is_legal_and_no_lead_is_held_twice(ops in proptest::collection::vec(op(), 1..30)) {
        runtime().block_on(async {
            for db in TestDb::all().await {
                let r = run(&db, &ops).await;
                db.cleanup().await;
                r?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
