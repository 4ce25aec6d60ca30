//! API tokens, web sessions and the audit log, on SQLite and (when reachable, always in
//! CI) PostgreSQL.

use pacer_dialer::store::{AuditEvent, Role, StoreError, now_ms};
use pacer_dialer::test_support::TestDb;

#[tokio::test]
async fn tokens_are_found_by_hash_until_revoked() {
    for db in TestDb::all().await {
        let s = &db.store;
        let u = s.create_user("crm-bot", Role::Manager, "$argon2id$x").await.unwrap();
        let t = s.create_token(u.id, "crm", "hash-1").await.unwrap();
        assert_eq!((t.username.as_str(), t.name.as_str(), t.revoked_at), ("crm-bot", "crm", None));
        let (found, user) = s.use_token("hash-1").await.unwrap().expect("live token");
        assert_eq!((found.id, user.role), (t.id, Role::Manager));
        assert!(s.token(t.id).await.unwrap().last_used_at.is_some(), "use is noted");
        assert_eq!(s.use_token("hash-2").await.unwrap(), None);
        assert!(matches!(s.create_token(u.id, " ", "hash-3").await, Err(StoreError::Invalid(_))));
        assert!(s.revoke_token(t.id).await.unwrap());
        assert!(!s.revoke_token(t.id).await.unwrap(), "already revoked");
        assert_eq!(s.use_token("hash-1").await.unwrap(), None, "a revoked token opens nothing");
        assert!(matches!(s.revoke_token(9999).await, Err(StoreError::NotFound { .. })));
        assert_eq!(s.tokens().await.unwrap().len(), 1);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn sessions_expire_and_end_when_the_role_changes() {
    for db in TestDb::all().await {
        let s = &db.store;
        let u = s.create_user("sue", Role::Supervisor, "$argon2id$x").await.unwrap();
        s.create_session("sid-1", u.id, "csrf-1", now_ms() + 60_000).await.unwrap();
        s.create_session("sid-old", u.id, "csrf-2", now_ms() - 1).await.unwrap();
        let (user, csrf) = s.session("sid-1").await.unwrap().expect("live session");
        assert_eq!((user.username.as_str(), user.role, csrf.as_str()), ("sue", Role::Supervisor, "csrf-1"));
        assert_eq!(s.session("sid-old").await.unwrap(), None, "expired");
        assert_eq!(s.set_user_role(u.id, Role::Manager).await.unwrap().role, Role::Manager);
        assert_eq!(s.session("sid-1").await.unwrap(), None, "a role change ends the user's sessions");
        s.create_session("sid-3", u.id, "c", now_ms() + 60_000).await.unwrap();
        s.end_session("sid-3").await.unwrap();
        assert_eq!(s.session("sid-3").await.unwrap(), None);
        assert!(matches!(s.set_user_role(9999, Role::Admin).await, Err(StoreError::NotFound { .. })));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_audit_log_keeps_every_event_newest_first() {
    for db in TestDb::all().await {
        let s = &db.store;
        let from = now_ms();
        s.audit(&AuditEvent { actor: "ann", action: "login", source: "127.0.0.1", ..Default::default() }).await.unwrap();
        s.audit(&AuditEvent { actor: "ann", action: "api", target: "POST /campaigns/{id}/start", detail: "/api/v1/campaigns/3/start -> 200", source: "" }).await.unwrap();
        let log = s.audit_log(from, 10).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].action, "api");
        assert_eq!(log[1].source, "127.0.0.1");
        assert_eq!(s.audit_log(from, 1).await.unwrap().len(), 1);
        db.cleanup().await;
    }
}
