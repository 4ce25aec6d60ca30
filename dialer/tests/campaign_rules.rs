//! Campaign rules on SQLite and PostgreSQL: list filters, agent-owned callbacks, the abandon
//! lockout across campaigns, calling windows across a DST change, caller ID per call.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use pacer_config::DialerConfig;
use pacer_dialer::filter::Filter;
use pacer_dialer::hopper::Hopper;
use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::lead_state::LeadState;
use pacer_dialer::outcome::{CallOutcome, CallbackRequest};
use pacer_dialer::settings::{CallerId, CallerIdMode, CampaignSettings};
use pacer_dialer::store::{CallbackQuery, CampaignAction, DialMode, LeadQuery, NewCampaign, Store};
use pacer_dialer::test_support::TestDb;

const HOUR: i64 = 3_600_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 17, 0, 0).unwrap()
}

fn cfg() -> DialerConfig {
    DialerConfig { legal_window_start: "00:00".into(), legal_window_end: "24:00".into(), lease_s: 86_400, ..Default::default() }
}

async fn running(s: &Store, name: &str, settings: CampaignSettings) -> i64 {
    let c = s.create_campaign(&NewCampaign { name: name.into(), dial_mode: DialMode::Predictive, settings }).await.unwrap();
    s.campaign_action(c.id, CampaignAction::Start).await.unwrap();
    c.id
}

async fn import(s: &Store, campaign: i64, list: &str, csv: &str) -> i64 {
    let l = s.create_list(campaign, list, 0).await.unwrap();
    let r = import_csv(s, l.id, std::io::Cursor::new(csv.as_bytes().to_vec()), ImportOptions { mapping: Mapping::default(), default_country: "US".into() })
        .await
        .unwrap();
    assert_eq!(r.rejected_total, 0, "{r:?}");
    l.id
}

fn outcome(lead: i64, phone: &str, code: &str, at: i64) -> CallOutcome {
    CallOutcome { lead_id: lead, owner: "n1".into(), phone: phone.into(), outcome: code.into(), started_at: at, ..Default::default() }
}

#[tokio::test]
async fn list_filters_give_the_same_leads_in_sql_and_in_rust() {
    let today = NaiveDate::from_ymd_opt(2025, 1, 15).unwrap();
    for db in TestDb::all().await {
        let s = &db.store;
        let c = running(s, "F", CampaignSettings::default()).await;
        let csv = "phone,tz,balance,contract_end,birthday,plan\n\
                   +14155550001,America/Los_Angeles,7.50,2025-02-10,1980-01-15,gold\n\
                   +14155550002,America/Los_Angeles,12,2025-03-20,2025-01-15,silver\n\
                   +14155550003,America/Los_Angeles,-3,2025-01-14,,Gold Plus\n\
                   +14155550004,America/Los_Angeles,12abc,not a date,2025-01-16,\n\
                   +14155550005,America/Los_Angeles, 9 ,2025-01-15T10:00,2025-01-15,bronze\n\
                   +14155550006,America/Los_Angeles,,2024-12-01,,gold\n\
                   +14155550007,America/Los_Angeles,1.2.3,2025-03-16,,silver\n\
                   +14155550008,America/Los_Angeles,+.5,2025/02/01,,O'Brien\n";
        let list = import(s, c, "L", csv).await;
        let all = s.search_leads(&LeadQuery { list_id: Some(list), ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 8);
        let expect = |f: &str, phones: &[u32]| (f.to_string(), phones.iter().map(|p| format!("+1415555{p:04}")).collect::<Vec<_>>());
        for (f, want) in [
            expect("balance < 10", &[1, 3, 5, 8]),
            expect("birthday = today", &[2, 5]),
            expect("contract_end within 60 days", &[1, 5, 7]),
            expect("contract_end within last 60 days", &[3, 5, 6]),
            expect("plan = gold or plan contains PLUS", &[1, 3, 6]),
            expect("not (balance >= 10) and plan is not empty", &[1, 3, 5, 6, 7, 8]),
            expect("plan = 'O''Brien'", &[8]),
            expect("contract_end > today + 30 and balance > 0", &[2]),
            expect("plan is empty", &[4]),
            expect("lead.attempts = 0 and lead.state = new and lead.time_zone = America/Los_Angeles", &[1, 2, 3, 4, 5, 6, 7, 8]),
            expect("balance < 10 and contract_end within 60 days", &[1, 5]),
        ] {
            let filter = Filter::parse(&f).unwrap();
            let got: Vec<String> = s
                .search_leads(&LeadQuery { list_id: Some(list), filter: Some(f.clone()), today: Some(today), ..Default::default() })
                .await
                .unwrap_or_else(|e| panic!("{:?} {f}: {e}", s.backend()))
                .into_iter()
                .map(|l| l.phone)
                .collect();
            let in_rust: Vec<String> = all.iter().filter(|l| filter.matches(l, today)).map(|l| l.phone.clone()).collect();
            assert_eq!(got, want, "{:?}: {f}", s.backend());
            assert_eq!(in_rust, want, "in Rust: {f}");
        }
        // A bad filter is refused with its position; the list keeps its old one.
        let err = s.set_list_filter(list, "balance <").await.unwrap_err().to_string();
        assert!(err.contains("character 9"), "{err}");
        // The hopper dials only the leads the list's filter selects (today = the centre's date).
        s.set_list_filter(list, "balance < 10 and contract_end within 60 days").await.unwrap();
        let h = Hopper::new(s.clone(), &cfg());
        let got: Vec<String> = h.claim(c, "n1", 10, t0()).await.unwrap().into_iter().map(|x| x.number).collect();
        assert_eq!(got, ["+14155550001", "+14155550005"]);
        // Retries are filtered too: settle one as no-answer, then change the filter so it no
        // longer matches; when due it stays out.
        let ms = t0().timestamp_millis();
        let first = s.search_leads(&LeadQuery { phone: Some("+14155550001".into()), ..Default::default() }).await.unwrap()[0].clone();
        s.record_outcome(&outcome(first.id, &first.phone, "no_answer", ms), ms, chrono_tz::UTC).await.unwrap();
        s.set_list_filter(list, "plan = silver").await.unwrap();
        let later = t0() + chrono::Duration::hours(2);
        let got: Vec<String> = h.claim(c, "n1", 10, later).await.unwrap().into_iter().map(|x| x.number).collect();
        assert_eq!(got, ["+14155550002", "+14155550007"]);
        s.set_list_filter(list, "").await.unwrap();
        let got: Vec<String> = h.claim(c, "n1", 10, later).await.unwrap().into_iter().map(|x| x.number).collect();
        assert_eq!(got[0], "+14155550001", "the retry comes back first once the filter is cleared");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_agent_owned_callback_waits_for_its_agent_until_the_grace_ends() {
    for db in TestDb::all().await {
        let s = &db.store;
        let mut settings = CampaignSettings::default();
        settings.retry.callback_grace_s = 600;
        let c = running(s, "CB", settings).await;
        import(s, c, "L", "phone,tz\n+442079460001,Europe/London\n+442079460002,Europe/London\n+12125550003,America/New_York\n").await;
        let leads = s.search_leads(&LeadQuery { campaign_id: Some(c), ..Default::default() }).await.unwrap();
        let (a, b, ny) = (&leads[0], &leads[1], &leads[2]);
        // Scheduled in the lead's local time: 17:00 in London is 17:00 UTC in January; 12:00
        // in New York is 17:00 UTC too.
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        let cb = s.schedule_callback(a.id, at("2025-01-15 17:00"), Some(7), "asked for Ann", chrono_tz::UTC).await.unwrap();
        assert_eq!(cb.due_at, t0().timestamp_millis());
        s.schedule_callback(b.id, at("2025-01-15 17:00"), None, "", chrono_tz::UTC).await.unwrap();
        let ny_cb = s.schedule_callback(ny.id, at("2025-01-15 12:00"), None, "", chrono_tz::UTC).await.unwrap();
        assert_eq!(ny_cb.due_at, t0().timestamp_millis());
        // Rescheduling replaces the open callback.
        s.schedule_callback(ny.id, at("2025-01-15 13:00"), None, "later", chrono_tz::UTC).await.unwrap();
        let open = s.callbacks(&CallbackQuery { campaign_id: Some(c), ..Default::default() }).await.unwrap();
        assert_eq!(open.len(), 3);
        assert_eq!(open.iter().find(|x| x.lead_id == ny.id).unwrap().due_at, t0().timestamp_millis() + HOUR);

        let h = Hopper::new(s.clone(), &cfg());
        let now = t0() + chrono::Duration::minutes(1);
        // Agent 8 is ready, agent 7 is not: only the callback anyone may take.
        let got = h.claim_for_agents(c, "n1", 10, now, &[8]).await.unwrap();
        assert_eq!(got.iter().map(|x| x.lead.id).collect::<Vec<_>>(), [b.id]);
        assert_eq!(got[0].reserved_for_agent, None);
        // Agent 7 becomes ready: the callback is taken, reserved for them.
        let got = h.claim_for_agents(c, "n1", 10, now, &[7, 8]).await.unwrap();
        assert_eq!((got.len(), got[0].lead.id, got[0].reserved_for_agent), (1, a.id, Some(7)));
        // The node restarts: the lead returns to its callback, still owned by agent 7.
        assert_eq!(h.reconcile_leases("n1", now.timestamp_millis()).await.unwrap(), 2);
        assert_eq!(s.lead(a.id).await.unwrap().state, LeadState::Callback);
        assert!(h.claim_for_agents(c, "n2", 10, now, &[]).await.unwrap().iter().all(|x| x.lead.id != a.id));
        // After the grace anyone may take it, unreserved.
        let late = t0() + chrono::Duration::minutes(11);
        let got = h.claim_for_agents(c, "n3", 10, late, &[8]).await.unwrap();
        let mine = got.iter().find(|x| x.lead.id == a.id).expect("after the grace");
        assert_eq!(mine.reserved_for_agent, None);
        // The agent sets a new callback on the call, for themself only.
        let ms = late.timestamp_millis();
        let mut o = CallOutcome { owner: "n3".into(), agent_id: Some(7), ..outcome(a.id, &a.phone, "answered", ms) };
        o.callback = Some(CallbackRequest { at_local: at("2025-01-16 09:30"), agent_only: true, notes: "after the meeting".into() });
        s.record_outcome(&o, ms, chrono_tz::UTC).await.unwrap();
        let open = s.callbacks(&CallbackQuery { agent_id: Some(7), ..Default::default() }).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].due_at, Utc.with_ymd_and_hms(2025, 1, 16, 9, 30, 0).unwrap().timestamp_millis());
        // A leased lead cannot be rescheduled by hand: its call's outcome decides.
        assert_eq!(s.lead(b.id).await.unwrap().state, LeadState::Hopper);
        assert!(s.schedule_callback(b.id, at("2025-01-20 10:00"), None, "", chrono_tz::UTC).await.is_err());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_abandoned_number_rests_72_hours_in_every_campaign() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c1 = running(s, "One", CampaignSettings::default()).await;
        let c2 = running(s, "Two", CampaignSettings::default()).await;
        import(s, c1, "L", "phone\n+14155550001\n").await;
        import(s, c2, "L", "phone,alt_phone\n+14155550001,\n+14155550002,\n").await;
        let h = Hopper::new(s.clone(), &DialerConfig { lease_s: 60, ..cfg() });
        let got = h.claim(c1, "n1", 1, t0()).await.unwrap();
        let ms = t0().timestamp_millis();
        let mut ab = outcome(got[0].lead.id, &got[0].number, "abandoned", ms);
        ab.answered_by = Some("human".into());
        s.record_outcome(&ab, ms, chrono_tz::UTC).await.unwrap();
        // The other campaign may not ring the same number for 72 hours.
        let other = h.claim(c2, "n1", 5, t0() + chrono::Duration::hours(1)).await.unwrap();
        assert_eq!(other.iter().map(|x| x.number.as_str()).collect::<Vec<_>>(), ["+14155550002"]);
        let rested = s.search_leads(&LeadQuery { campaign_id: Some(c2), phone: Some("+14155550001".into()), ..Default::default() }).await.unwrap();
        assert_eq!((rested[0].state, rested[0].next_due_at), (LeadState::Retry, Some(ms + 72 * HOUR)));
        assert!(h.claim(c2, "n1", 5, t0() + chrono::Duration::hours(71)).await.unwrap().iter().all(|x| x.number != "+14155550001"));
        let back = h.claim(c2, "n1", 5, t0() + chrono::Duration::hours(72)).await.unwrap();
        assert!(back.iter().any(|x| x.number == "+14155550001"), "{back:?}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn windows_follow_each_zone_across_a_dst_change() {
    for db in TestDb::all().await {
        let s = &db.store;
        let mut settings = CampaignSettings::default();
        settings.windows.weekly = ["mon", "tue", "wed", "thu", "fri"].iter().map(|d| (d.to_string(), vec!["09:00-17:00".to_string()])).collect();
        let c = running(s, "DST", settings).await;
        import(s, c, "L", "phone,tz\n+12125550001,America/New_York\n+12125550002,America/New_York\n+442079460003,Europe/London\n+13105550004,America/Los_Angeles\n+13105550005,America/Los_Angeles\n").await;
        // Leases outlast the test's clock jumps, so a claimed lead stays claimed.
        let h = Hopper::new(s.clone(), &DialerConfig { lease_s: 30 * 86_400, ..cfg() });
        let utc = |d: u32, hh: u32, mm: u32| Utc.with_ymd_and_hms(2025, 3, d, hh, mm, 0).unwrap();
        let claim = |at: DateTime<Utc>| {
            let h = h.clone();
            async move { h.claim(c, "n1", 1, at).await.unwrap().into_iter().map(|x| x.number).collect::<Vec<_>>() }
        };
        // Friday 7 March, 13:30 UTC: 08:30 EST in New York (closed), 13:30 in London (open),
        // 05:30 PST in Los Angeles.
        assert_eq!(claim(utc(7, 13, 30)).await, ["+442079460003"]);
        assert!(claim(utc(7, 13, 59)).await.is_empty());
        // 14:00 UTC the same day is 09:00 EST: New York opens.
        assert_eq!(claim(utc(7, 14, 0)).await, ["+12125550001"]);
        // The US moves its clocks on Sunday 9 March; London does not until the 30th. On
        // Monday 13:30 UTC is already 09:30 EDT in New York.
        assert_eq!(claim(utc(10, 13, 30)).await, ["+12125550002"]);
        // Los Angeles: 16:00 UTC is 08:00 PST on Friday (closed) but 09:00 PDT on Monday.
        assert!(claim(utc(7, 16, 59)).await.is_empty());
        assert_eq!(claim(utc(10, 16, 0)).await, ["+13105550004"]);
        // And at Monday 00:30 UTC (Sunday evening in Los Angeles) nothing is open.
        assert!(claim(utc(10, 0, 30)).await.is_empty());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn each_claim_carries_the_caller_id_for_that_call() {
    for db in TestDb::all().await {
        let s = &db.store;
        let pool = vec!["+14155550100".to_string(), "+12125550100".to_string(), "+13125550100".to_string()];
        let mut settings = CampaignSettings::default();
        settings.caller_id = CallerId { mode: CallerIdMode::Pool, numbers: pool.clone() };
        let c = running(s, "Pool", settings.clone()).await;
        import(s, c, "L", "phone\n+16175550001\n+16175550002\n+16175550003\n").await;
        let h = Hopper::new(s.clone(), &cfg());
        let got = h.claim(c, "n1", 3, t0()).await.unwrap();
        let mut ids: Vec<String> = got.iter().map(|x| x.caller_id.clone().unwrap()).collect();
        ids.sort();
        let mut want = pool.clone();
        want.sort();
        assert_eq!(ids, want, "three calls, three numbers of the pool");
        settings.caller_id.mode = CallerIdMode::LocalPresence;
        let lp = running(s, "Local", settings).await;
        import(s, lp, "L", "phone\n+12125550001\n+13125550002\n+16175550003\n").await;
        for x in h.claim(lp, "n1", 3, t0()).await.unwrap() {
            let cid = x.caller_id.unwrap();
            match &x.number[..5] {
                "+1212" | "+1312" => assert_eq!(cid[..5], x.number[..5], "local number for {}", x.number),
                _ => assert!(pool.contains(&cid)),
            }
        }
        db.cleanup().await;
    }
}
