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
    assert_eq!(store.pending_migrations().await.unwrap(), vec![1]);
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
            settings: serde_json::json!({"abandon_target": 0.03}),
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
