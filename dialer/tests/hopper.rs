//! The hopper and outcomes on SQLite and PostgreSQL: order, windows, DNC at dial time,
//! retry rules, the abandon lockout, lease expiry and crash recovery, two claimers.

use std::collections::HashSet;

use chrono::{DateTime, TimeZone, Utc};
use pacer_config::DialerConfig;
use pacer_dialer::hopper::Hopper;
use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::lead_state::LeadState;
use pacer_dialer::outcome::{CallOutcome, CallbackRequest, DecisionView};
use pacer_dialer::settings::CampaignSettings;
use pacer_dialer::store::{CampaignAction, DialMode, NewCampaign, Store};
use pacer_dialer::test_support::TestDb;

const HOUR: i64 = 3_600_000;

/// Wednesday 2025-01-15 17:00 UTC: 12:00 New York, 09:00 Los Angeles, 17:00 London,
/// 02:00 Tokyo.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 17, 0, 0).unwrap()
}

fn cfg() -> DialerConfig {
    DialerConfig { legal_window_start: "00:00".into(), legal_window_end: "24:00".into(), ..Default::default() }
}

async fn running(s: &Store, settings: CampaignSettings) -> i64 {
    let c = s.create_campaign(&NewCampaign { name: "C".into(), dial_mode: DialMode::Predictive, settings }).await.unwrap();
    s.campaign_action(c.id, CampaignAction::Start).await.unwrap();
    c.id
}

async fn import(s: &Store, campaign: i64, list: &str, priority: i64, csv: String) -> i64 {
    let l = s.create_list(campaign, list, priority).await.unwrap();
    let r = import_csv(s, l.id, std::io::Cursor::new(csv.into_bytes()), ImportOptions { mapping: Mapping::default(), default_country: "US".into() })
        .await
        .unwrap();
    assert_eq!(r.rejected_total, 0, "{r:?}");
    l.id
}

fn outcome(lead: i64, phone: &str, code: &str, at: i64) -> CallOutcome {
    CallOutcome { lead_id: lead, owner: "n1".into(), phone: phone.into(), outcome: code.into(), started_at: at, ..Default::default() }
}

#[tokio::test]
async fn windows_in_three_zones_and_unknown_zones() {
    for db in TestDb::all().await {
        let s = &db.store;
        let mut settings = CampaignSettings::default();
        settings.windows.weekly = ["mon", "tue", "wed", "thu", "fri"].iter().map(|d| (d.to_string(), vec!["09:30-20:00".to_string()])).collect();
        let c = running(s, settings).await;
        let csv = "phone,tz\n\
                   +12125550101,America/New_York\n\
                   +13105550102,America/Los_Angeles\n\
                   +442079460103,Europe/London\n\
                   +81312345678,Asia/Tokyo\n\
                   +12125550105,\n"
            .to_string();
        import(s, c, "L", 0, csv).await;
        // Leases outlast the test's clock jumps, so earlier claims stay claimed.
        let h = Hopper::new(s.clone(), &DialerConfig { lease_s: 86_400, ..cfg() });
        // 17:00 UTC: New York (12:00) and London (17:00) are open; Los Angeles (09:00) and
        // Tokyo (02:00) are not, so the unknown-zone lead waits too.
        let got: Vec<String> = h.claim(c, "n1", 10, t0()).await.unwrap().into_iter().map(|c| c.number).collect();
        assert_eq!(got, ["+12125550101", "+442079460103"], "{:?}", s.backend());
        // 18:00 UTC: Los Angeles is 10:00 and joins; Tokyo is still 03:00.
        let got: Vec<String> = h.claim(c, "n1", 10, t0() + chrono::Duration::hours(1)).await.unwrap().into_iter().map(|c| c.number).collect();
        assert_eq!(got, ["+13105550102"]);
        // 2025-01-16 01:00 UTC (Thursday 10:00 in Tokyo, Wednesday 20:00 in New York,
        // 17:00 Los Angeles, 01:00 London): Tokyo opens; the unknown lead still waits
        // because New York has closed and London is asleep.
        let got: Vec<String> = h.claim(c, "n1", 10, t0() + chrono::Duration::hours(8)).await.unwrap().into_iter().map(|c| c.number).collect();
        assert_eq!(got, ["+81312345678"]);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn order_is_callbacks_then_retries_then_new_by_list_priority() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c = running(s, CampaignSettings::default()).await;
        let low = import(s, c, "low", 1, "phone\n+14155550001\n+14155550002\n+14155550003\n".into()).await;
        let high = import(s, c, "high", 9, "phone\n+14155550011\n+14155550012\n".into()).await;
        let h = Hopper::new(s.clone(), &cfg());
        let now = t0();
        let ms = now.timestamp_millis();
        let first = h.claim(c, "n1", 3, now).await.unwrap();
        let lists: Vec<i64> = first.iter().map(|x| x.lead.list_id).collect();
        assert_eq!(lists, [high, high, low], "higher priority list first");
        // Settle: one no-answer (retry in 1 h), one callback in 30 minutes, one busy (15 min).
        let zone = chrono_tz::UTC;
        let r = s.record_outcome(&outcome(first[0].lead.id, &first[0].number, "no_answer", ms), ms, zone).await.unwrap();
        assert_eq!(r.decision, DecisionView::Retry { at: ms + HOUR });
        let mut cb = outcome(first[1].lead.id, &first[1].number, "answered", ms);
        cb.callback = Some(CallbackRequest { at_local: (now + chrono::Duration::minutes(30)).naive_utc(), agent_only: false, notes: "after lunch".into() });
        assert_eq!(s.record_outcome(&cb, ms, zone).await.unwrap().decision, DecisionView::Callback { at: ms + HOUR / 2 });
        s.record_outcome(&outcome(first[2].lead.id, &first[2].number, "busy", ms), ms, zone).await.unwrap();
        // Two hours later all three are due: callback first, then retries by due time
        // (busy before no-answer), then the remaining new leads.
        let later = now + chrono::Duration::hours(2);
        let next: Vec<i64> = h.claim(c, "n1", 10, later).await.unwrap().into_iter().map(|x| x.lead.id).collect();
        assert_eq!(&next[..3], [first[1].lead.id, first[2].lead.id, first[0].lead.id]);
        assert_eq!(next.len(), 5);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn dnc_blocks_a_number_at_dial_time() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c = running(s, CampaignSettings::default()).await;
        import(s, c, "L", 0, "phone,alt_phone\n+14155550001,+14155550009\n+14155550002,\n+14155550003,\n".into()).await;
        // Numbers reach the DNC tables behind the importer's back (another node, a bulk
        // load): the hopper must still refuse them.
        sqlx::query("INSERT INTO dnc (campaign_id, phone, reason, added_at) VALUES (0, '+14155550001', 'x', 0), ($1, '+14155550002', 'x', 0)")
            .bind(c)
            .execute(s.pool())
            .await
            .unwrap();
        let h = Hopper::new(s.clone(), &cfg());
        let got = h.claim(c, "n1", 10, t0()).await.unwrap();
        let numbers: Vec<&str> = got.iter().map(|x| x.number.as_str()).collect();
        assert_eq!(numbers, ["+14155550009", "+14155550003"], "the alternate replaces a DNC primary");
        let blocked = s.search_leads(&pacer_dialer::store::LeadQuery { phone: Some("+14155550002".into()), ..Default::default() }).await.unwrap();
        assert_eq!(blocked[0].state, LeadState::Dnc);
        // A "dnc" disposition adds the number to the system list at once.
        let ms = t0().timestamp_millis();
        let d = s.record_outcome(&outcome(got[1].lead.id, "+14155550003", "dnc", ms), ms, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Dnc);
        assert!(s.is_dnc(999, "+14155550003").await.unwrap());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn retry_rules_and_the_72_hour_abandon_lockout() {
    for db in TestDb::all().await {
        let s = &db.store;
        let mut settings = CampaignSettings::default();
        settings.retry.max_attempts_per_lead = 3;
        settings.retry.max_attempts_per_24h = 10;
        let c = running(s, settings).await;
        import(s, c, "L", 0, "phone\n+14155550001\n+14155550002\n".into()).await;
        let h = Hopper::new(s.clone(), &cfg());
        let mut now = t0();
        let got = h.claim(c, "n1", 2, now).await.unwrap();
        let (a, b) = (&got[0], &got[1]);
        let ms = now.timestamp_millis();
        let mut ab = outcome(b.lead.id, &b.number, "abandoned", ms);
        ab.abandoned = true;
        ab.answered_by = Some("human".into());
        s.record_outcome(&ab, ms, chrono_tz::UTC).await.unwrap();
        // a: no-answer three times, an hour apart → done after the third (max per lead).
        for i in 0..3 {
            let ms = now.timestamp_millis();
            let d = s.record_outcome(&outcome(a.lead.id, &a.number, "no_answer", ms), ms, chrono_tz::UTC).await.unwrap();
            if i < 2 {
                assert_eq!(d.decision, DecisionView::Retry { at: ms + HOUR });
                now += chrono::Duration::minutes(61);
                let again = h.claim(c, "n1", 5, now).await.unwrap();
                assert_eq!(again.len(), 1, "only a is due; b is locked out");
                assert_eq!(again[0].lead.id, a.lead.id);
            } else {
                assert_eq!(d.decision, DecisionView::Done);
            }
        }
        assert_eq!(s.lead(a.lead.id).await.unwrap().state, LeadState::Done);
        // b returns only 72 hours after the abandoned call.
        assert!(h.claim(c, "n1", 5, t0() + chrono::Duration::hours(71)).await.unwrap().is_empty());
        let back = h.claim(c, "n1", 5, t0() + chrono::Duration::hours(72)).await.unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].lead.id, b.lead.id);
        db.cleanup().await;
    }
}

/// The outcome reads a lead's history and its numbers' DNC entries in the same query as
/// the lead: each number's attempts count, a DNC alternate is no number left, a reset lead
/// and an outcome that waited for another one of the same lead still see every attempt.
#[tokio::test]
async fn outcomes_count_every_earlier_attempt_per_number() {
    for db in TestDb::all().await {
        let s = &db.store;
        let mut settings = CampaignSettings::default();
        settings.retry.max_attempts_per_lead = 2;
        settings.retry.max_attempts_per_number = 1;
        settings.retry.max_attempts_per_24h = 10;
        let c = running(s, settings).await;
        import(s, c, "L", 0, "phone,alt_phone\n+14155550001,+14155550011\n+14155550002,+14155550012\n+14155550003,\n".into()).await;
        sqlx::query("INSERT INTO dnc (campaign_id, phone, reason, added_at) VALUES ($1, '+14155550012', 'x', 0)").bind(c).execute(s.pool()).await.unwrap();
        let h = Hopper::new(s.clone(), &cfg());
        let now = t0();
        let ms = now.timestamp_millis();
        let got = h.claim(c, "n1", 3, now).await.unwrap();
        let by_phone = |p: &str| got.iter().find(|x| x.lead.phone == p).unwrap().lead.id;
        let (free_alt, dnc_alt, single) = (by_phone("+14155550001"), by_phone("+14155550002"), by_phone("+14155550003"));
        // The primary has had its one attempt; the alternate is still free.
        let d = s.record_outcome(&outcome(free_alt, "+14155550001", "no_answer", ms), ms, chrono_tz::UTC).await.unwrap();
        assert!(matches!(d.decision, DecisionView::Retry { .. }), "{d:?}");
        // The alternate is on the campaign's DNC list: no number is left.
        let d = s.record_outcome(&outcome(dnc_alt, "+14155550002", "no_answer", ms), ms, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Done);
        // The second number's attempt reaches the lead's cap of two.
        let d = s.record_outcome(&outcome(free_alt, "+14155550011", "busy", ms + HOUR), ms + HOUR, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Done);
        // A reset lead's history holds more attempts than it counts (none since the reset):
        // this attempt alone reaches the number's cap, and the alternate is on DNC.
        s.reset_lead(dnc_alt).await.unwrap();
        let d = s.record_outcome(&outcome(dnc_alt, "+14155550002", "busy", ms + HOUR), ms + HOUR, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Done);
        // Two outcomes of one lead at once (a late one from a lost lease and the owner's):
        // whichever commits second counts the first one's attempt, and the lead is done.
        let mut settings = s.campaign(c).await.unwrap().settings;
        settings.retry.max_attempts_per_number = 5;
        s.update_campaign(c, &pacer_dialer::store::CampaignUpdate { settings: Some(settings), ..Default::default() }).await.unwrap();
        let (first, second) = (outcome(single, "+14155550003", "no_answer", ms), outcome(single, "+14155550003", "busy", ms + 1));
        let (x, y) = tokio::join!(s.record_outcome(&first, ms, chrono_tz::UTC), s.record_outcome(&second, ms + 1, chrono_tz::UTC));
        let mut decisions = [x.unwrap().decision, y.unwrap().decision];
        decisions.sort_by_key(|d| matches!(d, DecisionView::Done));
        assert!(matches!(decisions, [DecisionView::Retry { .. }, DecisionView::Done]), "{decisions:?}");
        let lead = s.lead(single).await.unwrap();
        assert_eq!(lead.attempts, 2);
        db.cleanup().await;
    }
}

/// A reset lead starts its caps again (per lead, per number) whichever leads it is claimed
/// with, while its earlier calls still count towards the cap per 24 hours.
#[tokio::test]
async fn a_reset_lead_gets_a_fresh_set_of_attempts() {
    for db in TestDb::all().await {
        let s = &db.store;
        let mut settings = CampaignSettings::default();
        settings.retry.max_attempts_per_lead = 2;
        settings.retry.max_attempts_per_number = 1;
        settings.retry.max_attempts_per_24h = 2;
        let c = running(s, settings).await;
        import(s, c, "L", 0, "phone,alt_phone\n+14155550001,\n+14155550002,+14155550022\n".into()).await;
        let h = Hopper::new(s.clone(), &cfg());
        let mut now = t0();
        let ms = now.timestamp_millis();
        let got = h.claim(c, "n1", 2, now).await.unwrap();
        let by_phone = |p: &str| got.iter().find(|x| x.lead.phone == p).unwrap().lead.id;
        let (single, pair) = (by_phone("+14155550001"), by_phone("+14155550002"));
        // The single number has had its one attempt: done. The pair has its alternate left.
        let d = s.record_outcome(&outcome(single, "+14155550001", "no_answer", ms), ms, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Done);
        let d = s.record_outcome(&outcome(pair, "+14155550002", "no_answer", ms), ms, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Retry { at: ms + HOUR });
        s.reset_lead(single).await.unwrap();
        // Claimed together with a lead that has attempts (so the per-number counts are read),
        // the reset lead is dialled on its number again instead of being found exhausted.
        now += chrono::Duration::minutes(61);
        let ms = now.timestamp_millis();
        let again = h.claim(c, "n1", 5, now).await.unwrap();
        let numbers: HashSet<&str> = again.iter().map(|x| x.number.as_str()).collect();
        assert_eq!(numbers, HashSet::from(["+14155550001", "+14155550022"]), "{again:?}");
        // Its first attempt since the reset spends the number's cap of one again: done.
        let d = s.record_outcome(&outcome(single, "+14155550001", "busy", ms), ms, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Done);
        assert_eq!(s.lead(single).await.unwrap().attempts, 1);
        // A second reset with a looser number cap: the lead may retry, but two calls within
        // 24 hours (one of them before the reset) hold the next one back a day.
        s.reset_lead(single).await.unwrap();
        let mut settings = s.campaign(c).await.unwrap().settings;
        settings.retry.max_attempts_per_number = 5;
        s.update_campaign(c, &pacer_dialer::store::CampaignUpdate { settings: Some(settings), ..Default::default() }).await.unwrap();
        now += chrono::Duration::minutes(61);
        let third = h.claim(c, "n1", 5, now).await.unwrap();
        let lead = third.iter().find(|x| x.lead.id == single).expect("the reset lead is claimed");
        let ms3 = now.timestamp_millis();
        let d = s.record_outcome(&outcome(single, &lead.number, "no_answer", ms3), ms3, chrono_tz::UTC).await.unwrap();
        assert_eq!(d.decision, DecisionView::Retry { at: ms + 24 * HOUR }, "the 24-hour cap counts the calls of the last day");
        db.cleanup().await;
    }
}

/// New leads come from the index of new leads in claim order, also when PostgreSQL's
/// statistics still say every lead is new (as right after an import): walking the primary
/// key instead made each claim skip every lead dialled before it.
#[tokio::test]
async fn new_leads_are_claimed_from_their_own_index() {
    let Some(db) = TestDb::postgres().await else { return };
    let s = &db.store;
    let c = running(s, CampaignSettings::default()).await;
    let csv: String = std::iter::once("phone\n".to_string()).chain((0..1200).map(|i| format!("+1415555{i:04}\n"))).collect();
    import(s, c, "L", 0, csv).await;
    let h = Hopper::new(s.clone(), &cfg());
    let mut last = 0;
    for _ in 0..300 {
        let got = h.claim(c, "n1", 1, t0()).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].lead.id > last, "new leads in id order");
        last = got[0].lead.id;
    }
    // A backend flushes its index statistics when it exits: close the pool, then read them
    // on a connection of its own (bounded wait for the exits to finish).
    s.close().await;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let sql = "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'leads_new_claim'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut scans = 0;
    while std::time::Instant::now() < deadline {
        scans = sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut conn).await.unwrap();
        if scans >= 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(scans >= 300, "claims of new leads scanned leads_new_claim {scans} times");
    drop(conn);
    db.cleanup().await;
}

#[tokio::test]
async fn leases_expire_and_start_up_reconciles_a_crash() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c = running(s, CampaignSettings::default()).await;
        import(s, c, "L", 0, (0..6).fold("phone\n".to_string(), |acc, i| acc + &format!("+1415555010{i}\n"))).await;
        let h = Hopper::new(s.clone(), &DialerConfig { lease_s: 60, ..cfg() });
        let now = t0();
        let a = h.claim(c, "node-a", 3, now).await.unwrap();
        h.mark_dialling(a[0].lead.id, "node-a", now.timestamp_millis()).await.unwrap();
        let b = h.claim(c, "node-b", 3, now).await.unwrap();
        assert!(h.claim(c, "node-b", 3, now).await.unwrap().is_empty(), "everything is leased");
        let ids_a: HashSet<i64> = a.iter().map(|x| x.lead.id).collect();
        assert!(b.iter().all(|x| !ids_a.contains(&x.lead.id)));
        // node-a crashes and restarts: its leases return at once; node-b's stay.
        assert_eq!(h.reconcile_leases("node-a", now.timestamp_millis()).await.unwrap(), 3);
        let again: HashSet<i64> = h.claim(c, "node-c", 10, now).await.unwrap().into_iter().map(|x| x.lead.id).collect();
        assert_eq!(again, ids_a);
        // Past the lease, node-b's (never settled) leads return too.
        let later = now + chrono::Duration::seconds(61);
        let rest = h.claim(c, "node-d", 10, later).await.unwrap();
        assert_eq!(rest.len(), 6);
        assert!(rest.iter().all(|x| x.lead.state == LeadState::Hopper && x.lead.lease_owner.as_deref() == Some("node-d")));
        // A late outcome from node-b is still recorded but does not yank node-d's lead.
        let ms = later.timestamp_millis();
        let late = CallOutcome { owner: "node-b".into(), ..outcome(b[0].lead.id, &b[0].number, "busy", ms) };
        let r = s.record_outcome(&late, ms, chrono_tz::UTC).await.unwrap();
        assert!(!r.lead_updated);
        let lead = s.lead(b[0].lead.id).await.unwrap();
        assert_eq!((lead.state, lead.attempts), (LeadState::Hopper, 1));
        db.cleanup().await;
    }
}

/// Two `pacer` nodes against one PostgreSQL: two processes (this test binary started
/// twice, each running [`claimer_process`]) claim the same list as fast as they can; every
/// lead must be claimed exactly once.
#[tokio::test]
async fn two_claimers_never_take_the_same_lead() {
    use std::io::{BufRead, Write};
    let Some(db) = TestDb::postgres().await else { return };
    let s = &db.store;
    let c = running(s, CampaignSettings::default()).await;
    const N: usize = 3000;
    let csv = (0..N).fold(String::from("phone\n"), |acc, i| acc + &format!("+1415{:07}\n", 2_000_000 + i));
    import(s, c, "L", 0, csv).await;
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for node in ["node-1", "node-2"] {
        let child = std::process::Command::new(&exe)
            .args(["--exact", "claimer_process", "--nocapture", "--test-threads=1"])
            .env("PACER_CLAIMER", format!("{}|{c}|{node}", db.url))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    // Each connects and says "ready"; then both are told to go at once.
    let mut outputs = Vec::new();
    for child in &mut children {
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The harness writes "test claimer_process ... " just before the child's "ready".
        while !line.trim_end().ends_with("ready") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "a claimer ended before it was ready");
        }
        outputs.push(out);
    }
    for child in &mut children {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let mut all = Vec::new();
    let mut per_node = Vec::new();
    for (mut child, out) in children.into_iter().zip(outputs) {
        let mine: Vec<i64> = out.lines().map_while(Result::ok).filter_map(|l| l.strip_prefix("claimed ").map(|x| x.parse().unwrap())).collect();
        assert!(child.wait().unwrap().success(), "a claimer failed");
        per_node.push(mine.len());
        all.extend(mine);
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), N, "claims per node: {per_node:?}");
    assert_eq!(unique.len(), N, "a lead was claimed twice");
    assert!(per_node.iter().all(|&n| n > 0), "both claimers worked: {per_node:?}");
    // The database agrees: every lead is leased, to the node that reported it.
    let leased: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE campaign_id = $1 AND state = 'hopper' AND lease_owner IN ('node-1', 'node-2')")
        .bind(c)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(leased as usize, N);
    db.cleanup().await;
}

/// The claimer node of [`two_claimers_never_take_the_same_lead`]: it does its work only in
/// the child processes that test starts (with `PACER_CLAIMER` set), and is otherwise idle.
#[tokio::test]
async fn claimer_process() {
    use std::io::Write;
    let Ok(spec) = std::env::var("PACER_CLAIMER") else { return };
    let mut parts = spec.split('|');
    let (url, c, node) = (parts.next().unwrap().to_string(), parts.next().unwrap().parse::<i64>().unwrap(), parts.next().unwrap().to_string());
    let store = Store::connect(&url, &Default::default()).await.unwrap();
    store.ping().await.unwrap();
    let h = Hopper::new(store, &cfg());
    // Straight to the process's stdout: the test harness may capture `println!`.
    writeln!(std::io::stdout(), "ready").unwrap();
    std::io::stdout().flush().unwrap();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        let got = h.claim(c, &node, 7, t0()).await.unwrap();
        if got.is_empty() {
            break;
        }
        for x in got {
            writeln!(out, "claimed {}", x.lead.id).unwrap();
        }
    }
    out.flush().unwrap();
}

#[tokio::test]
async fn a_dnc_caller_gets_a_lead_that_is_never_dialled() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c = running(s, CampaignSettings::default()).await;
        let list = s.create_list(c, "inbound", -100).await.unwrap().id;
        s.add_dnc(c, &["+12125550199".to_string()], "asked").await.unwrap();
        let lead = s.create_dnc_lead(list, "+12125550199").await.unwrap();
        assert_eq!((lead.phone.as_str(), lead.campaign_id), ("+12125550199", c));
        assert_eq!(lead.state.as_str(), "dnc");
        let h = Hopper::new(s.clone(), &cfg());
        assert!(h.claim(c, "n1", 10, t0()).await.unwrap().is_empty(), "a DNC lead is never claimed");
        assert!(matches!(s.create_dnc_lead(9999, "+12125550199").await, Err(pacer_dialer::store::StoreError::NotFound { .. })));
        db.cleanup().await;
    }
}
