//! `pacer simulate --from-campaign`: a scenario learned from a campaign's attempts, on
//! SQLite and PostgreSQL.

use pacer_dialer::settings::CampaignSettings;
use pacer_dialer::sim::{self, LearnError, Policy};
use pacer_dialer::store::{DialMode, NewCampaign, Store};
use pacer_dialer::test_support::TestDb;

/// 400 attempts: 120 people (ring 6 s, detected 1.4 s after answer, talk 60/120/180 s,
/// wrap 10 s), 80 machines (ring 10 s, detected after 2.6 s), 40 busy (after 2 s), 160
/// ring-outs.
async fn seed_history(store: &Store, campaign: i64) {
    let list = store.create_list(campaign, "history", 0).await.unwrap();
    let t0 = 1_700_000_000_000i64;
    for i in 0..400i64 {
        let lead: i64 = sqlx::query_scalar(
            "INSERT INTO leads (list_id, campaign_id, phone, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(list.id)
        .bind(campaign)
        .bind(format!("+1202555{i:04}"))
        .bind(t0)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let start = t0 + i * 60_000;
        let (outcome, by, answered, ended, connected, talk, wrap): (&str, Option<&str>, Option<i64>, i64, Option<i64>, f64, f64) = match i % 10 {
            0..=2 => ("answered", Some("human"), Some(start + 6000), start + 200_000, Some(start + 7600), [60.0, 120.0, 180.0][(i / 10 % 3) as usize], 10.0),
            3 | 4 => ("machine", Some("machine"), Some(start + 10_000), start + 13_000, None, 0.0, 0.0),
            5 => ("busy", None, None, start + 2000, None, 0.0, 0.0),
            _ => ("no_answer", None, None, start + 25_000, None, 0.0, 0.0),
        };
        let verdict = match by {
            Some("human") => answered.map(|a| a + 1400),
            Some(_) => answered.map(|a| a + 2600),
            None => None,
        };
        sqlx::query(
            "INSERT INTO lead_attempts (lead_id, campaign_id, phone, started_at, answered_at, connected_at, ended_at, outcome, answered_by, talk_s, wrap_s, verdict_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(lead)
        .bind(campaign)
        .bind(format!("+1202555{i:04}"))
        .bind(start)
        .bind(answered)
        .bind(connected)
        .bind(ended)
        .bind(outcome)
        .bind(by)
        .bind(talk)
        .bind(wrap)
        .bind(verdict)
        .execute(store.pool())
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn learns_shares_and_timings_from_history() {
    for db in TestDb::all().await {
        let s = &db.store;
        let c = s
            .create_campaign(&NewCampaign { name: "Learned".into(), dial_mode: DialMode::Predictive, settings: CampaignSettings::default() })
            .await
            .unwrap();
        match s.learned_scenario(c.id, 0, 10, 1.0).await {
            Err(LearnError::NotEnough { attempts: 0, .. }) => {}
            other => panic!("{:?}: empty history gave {other:?}", s.backend()),
        }
        seed_history(s, c.id).await;
        let sc = s.learned_scenario(c.id, 0, 10, 1.0).await.unwrap();
        let o = &sc.outcomes;
        assert!((o.human - 0.3).abs() < 1e-9, "{o:?}");
        assert!((o.machine - 0.2).abs() < 1e-9, "{o:?}");
        assert!((o.busy - 0.1).abs() < 0.01, "{o:?}");
        assert!((sc.timing.ring_human.mean - 6.0).abs() < 0.01);
        assert!((sc.timing.ring_machine.mean - 10.0).abs() < 0.01);
        assert!((sc.timing.busy_after - 2.0).abs() < 0.01);
        assert!((sc.timing.amd_human_verdict - 1.4).abs() < 1e-9, "{:?}", sc.timing);
        assert!((sc.timing.amd_machine_verdict - 2.6).abs() < 1e-9, "{:?}", sc.timing);
        assert!((sc.timing.talk.mean - 118.5).abs() < 1e-9, "{:?}", sc.timing.talk);
        assert!(sc.timing.talk.sigma_log > 0.1);
        assert_eq!(sc.timing.wrap.mean, 10.0);
        assert_eq!(sc.timing.no_answer_timeout, f64::from(CampaignSettings::default().ring_timeout_s));
        // The learned scenario runs.
        let r = sim::run(&sc, Policy::Progressive, 1);
        assert_eq!(r.agents, 10);
        assert!(r.occupancy > 0.0);
        // Only attempts inside the window count.
        assert!(matches!(s.learned_scenario(c.id, i64::MAX, 10, 1.0).await, Err(LearnError::NotEnough { .. })));
        db.cleanup().await;
    }
}
