//! The store on SQLite and, when reachable (always in CI), PostgreSQL.

use pacer_dialer::store::{Backend, CampaignStatus, DialMode, NewCampaign, StoreError};
use pacer_dialer::test_support::{TestDb, in_ci};

#[tokio::test]
async fn postgres_is_present_in_ci() {
    let pg = TestDb::postgres().await;
    if in_ci() {
        assert!(pg.is_some());
    }
    if let Some(db) = pg {
        assert_eq!(db.store.backend(), Backend::Postgres);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn migrations_apply_once_and_are_idempotent() {
    for db in TestDb::all().await {
        assert!(db.store.pending_migrations().await.unwrap().is_empty(), "{:?}", db.store.backend());
        db.store.migrate().await.unwrap();
        db.store.ping().await.unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn fresh_database_reports_pending_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/dir/p.db").display());
    let store = pacer_dialer::store::Store::connect(&url, &Default::default()).await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    store.migrate().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
}

#[tokio::test]
async fn campaigns_round_trip_on_both_backends() {
    for db in TestDb::all().await {
        let s = &db.store;
        let new = NewCampaign {
            name: "Renewals Q4".into(),
            dial_mode: DialMode::Predictive,
            settings: Default::default(),
        };
        let c = s.create_campaign(&new).await.unwrap();
        assert_eq!(c.status, CampaignStatus::Draft);
        assert_eq!(s.campaign(c.id).await.unwrap(), c);
        match s.create_campaign(&new).await {
            Err(StoreError::Conflict { what: "campaign", .. }) => {}
            other => panic!("{:?}: duplicate name gave {other:?}", s.backend()),
        }
        s.set_campaign_status(c.id, CampaignStatus::Running).await.unwrap();
        assert_eq!(s.campaigns().await.unwrap()[0].status, CampaignStatus::Running);
        assert!(matches!(s.campaign(c.id + 100).await, Err(StoreError::NotFound { .. })));
        assert!(matches!(s.set_campaign_status(c.id + 100, CampaignStatus::Paused).await, Err(StoreError::NotFound { .. })));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn unsupported_url_is_a_clear_error() {
    let err = pacer_dialer::store::Store::connect("mysql://x", &Default::default()).await.unwrap_err();
    assert!(err.to_string().contains("sqlite: or postgres://"), "{err}");
}

#[tokio::test]
async fn campaign_transitions_follow_the_rules() {
    use pacer_dialer::store::{CampaignAction::*, CampaignUpdate};
    for db in TestDb::all().await {
        let s = &db.store;
        let c = s.create_campaign(&NewCampaign { name: "T".into(), dial_mode: DialMode::Power, settings: Default::default() }).await.unwrap();
        assert!(c.started_at.is_none());
        assert!(matches!(s.campaign_action(c.id, Pause).await, Err(StoreError::Invalid(_))));
        let r = s.campaign_action(c.id, Start).await.unwrap();
        assert_eq!(r.status, CampaignStatus::Running);
        let started = r.started_at.unwrap();
        assert_eq!(s.campaign_action(c.id, Pause).await.unwrap().status, CampaignStatus::Paused);
        assert_eq!(s.campaign_action(c.id, Start).await.unwrap().started_at, Some(started));
        assert!(matches!(s.campaign_action(c.id, Archive).await, Err(StoreError::Invalid(_))));
        assert_eq!(s.campaign_action(c.id, Stop).await.unwrap().status, CampaignStatus::Stopped);
        let mut settings = c.settings.clone();
        settings.wrap_up_s = 5;
        let u = s.update_campaign(c.id, &CampaignUpdate { settings: Some(settings), ..Default::default() }).await.unwrap();
        assert_eq!(u.settings.wrap_up_s, 5);
        assert_eq!(s.campaign_action(c.id, Archive).await.unwrap().status, CampaignStatus::Archived);
        assert!(matches!(s.campaign_action(c.id, Start).await, Err(StoreError::Invalid(_))));
        assert!(matches!(s.update_campaign(c.id, &CampaignUpdate::default()).await, Err(StoreError::Invalid(_))));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_kill_switch_is_one_row_every_store_sees() {
    for db in TestDb::all().await {
        let b = db.store.backend();
        let s = db.store.kill_switch().await.unwrap();
        assert!(!s.on, "{b:?}: off after migration");
        assert_eq!(s.changed_at, 0);
        let set = db.store.set_kill_switch(true, "cli").await.unwrap();
        assert!(set.on && set.changed_at > 0);
        // Another pool on the same database (another node) sees it.
        let other = pacer_dialer::store::Store::connect(&db.url, &Default::default()).await.unwrap();
        let seen = other.kill_switch().await.unwrap();
        assert_eq!(seen, set, "{b:?}");
        other.set_kill_switch(false, "api:node-2").await.unwrap();
        let back = db.store.kill_switch().await.unwrap();
        assert!(!back.on, "{b:?}");
        assert_eq!(back.changed_by, "api:node-2");
        other.close().await;
        db.cleanup().await;
    }
}
