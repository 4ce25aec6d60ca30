//! Abandon accounting and reports on SQLite and PostgreSQL.

use chrono::Utc;
use pacer_config::DialerConfig;
use pacer_dialer::hopper::Hopper;
use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::outcome::CallOutcome;
use pacer_dialer::store::{CampaignAction, CdrQuery, DialMode, NewCampaign};
use pacer_dialer::test_support::TestDb;

#[tokio::test]
async fn abandon_rates_penetration_hourly_and_cdrs() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c = s.create_campaign(&NewCampaign { name: "R".into(), dial_mode: DialMode::Predictive, settings: Default::default() }).await.unwrap();
        s.campaign_action(c.id, CampaignAction::Start).await.unwrap();
        let started = s.campaign(c.id).await.unwrap().started_at.unwrap();
        let l = s.create_list(c.id, "L", 0).await.unwrap();
        let csv = (0..10).fold(String::from("phone\n"), |a, i| a + &format!("+1415555020{i}\n"));
        import_csv(s, l.id, std::io::Cursor::new(csv.into_bytes()), ImportOptions { mapping: Mapping::default(), default_country: "US".into() }).await.unwrap();
        let cfg = DialerConfig { legal_window_start: "00:00".into(), legal_window_end: "24:00".into(), ..Default::default() };
        let h = Hopper::new(s.clone(), &cfg);
        let now = Utc::now();
        let got = h.claim(c.id, "n1", 6, now).await.unwrap();
        assert_eq!(got.len(), 6);
        let ms = now.timestamp_millis().max(started);
        // Four humans answered (one of them abandoned), two no-answers.
        for (i, g) in got.iter().enumerate() {
            let (code, human, abandoned) = match i {
                0..=2 => ("answered", true, false),
                3 => ("abandoned", true, true),
                _ => ("no_answer", false, false),
            };
            let o = CallOutcome {
                lead_id: g.lead.id,
                owner: "n1".into(),
                phone: g.number.clone(),
                outcome: code.into(),
                answered_by: human.then(|| "human".to_string()),
                abandoned,
                started_at: ms + i as i64,
                talk_s: if human { 30.0 } else { 0.0 },
                ..Default::default()
            };
            s.record_outcome(&o, ms, chrono_tz::UTC).await.unwrap();
        }
        let st = s.abandon_stats(c.id, now, chrono_tz::UTC).await.unwrap();
        assert_eq!((st.since_start.answered, st.since_start.abandoned), (4, 1));
        assert_eq!(st.since_start.rate, 0.25);
        assert_eq!(st.last_30_days, st.since_start);
        let old = s.abandon_stats(c.id, now + chrono::Duration::days(31), chrono_tz::UTC).await.unwrap();
        assert_eq!(old.last_30_days.answered, 0);

        let p = s.penetration(c.id).await.unwrap();
        assert_eq!((p[0].total, p[0].pending, p[0].retryable, p[0].done), (10, 4, 3, 3), "{p:?}");
        assert_eq!(p[0].penetration, 0.6);

        let sum = s.outcome_summary(c.id, 0, i64::MAX).await.unwrap();
        let answered = sum.iter().find(|r| r.code == "answered").unwrap();
        assert_eq!((answered.calls, answered.talk_s), (3, 90.0));

        let hours = s.hourly(c.id, 0, i64::MAX, chrono_tz::UTC).await.unwrap();
        assert_eq!(hours.iter().map(|h| h.attempts).sum::<i64>(), 6);
        assert_eq!(hours.iter().map(|h| h.contacts).sum::<i64>(), 4);
        assert_eq!(hours.iter().map(|h| h.abandons).sum::<i64>(), 1);

        let cdrs = s.cdrs(&CdrQuery { campaign_id: Some(c.id), outcome: Some("no_answer".into()), ..Default::default() }).await.unwrap();
        assert_eq!(cdrs.len(), 2);
        let ab = s.cdrs(&CdrQuery { phone: Some(got[3].number.clone()), ..Default::default() }).await.unwrap();
        assert!(ab[0].abandoned);
        db.cleanup().await;
    }
}
