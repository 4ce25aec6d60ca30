//! Agents and their state log, on SQLite and (when reachable, always in CI) PostgreSQL.

use std::collections::BTreeMap;

use pacer_dialer::store::{AgentStateRow, NewAgent, StoreError};
use pacer_dialer::test_support::TestDb;

fn change(agent: i64, state: &str, at: i64) -> AgentStateRow {
    AgentStateRow { agent_id: agent, state: state.into(), reason: (state == "not_ready").then(|| "lunch".into()), call_id: None, at }
}

#[tokio::test]
async fn agents_round_trip_and_bad_input_is_refused() {
    for db in TestDb::all().await {
        let s = &db.store;
        let new = NewAgent {
            username: "alice".into(),
            name: "Alice".into(),
            password_hash: "$argon2id$hash".into(),
            skills: BTreeMap::from([("spanish".into(), 7)]),
            campaigns: vec![3],
            rank: 2,
        };
        let a = s.create_agent(&new).await.unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.skills["spanish"], 7);
        assert_eq!(a.campaigns, vec![3]);
        assert!(a.active);
        assert_eq!(s.agent_by_username("alice").await.unwrap().unwrap(), a);
        assert_eq!(s.agent_by_username("bob").await.unwrap(), None);
        assert!(matches!(s.create_agent(&new).await, Err(StoreError::Conflict { .. })));
        let bad = NewAgent { username: "bad name@x".into(), ..NewAgent::default() };
        assert!(matches!(s.create_agent(&bad).await, Err(StoreError::Invalid(m)) if m.contains("username")));
        let bad = NewAgent { username: "carol".into(), skills: BTreeMap::from([("x".into(), 11)]), ..NewAgent::default() };
        assert!(matches!(s.create_agent(&bad).await, Err(StoreError::Invalid(m)) if m.contains("skills.x")));
        assert_eq!(s.agents().await.unwrap().len(), 1);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn time_per_state_from_the_log_includes_the_state_held_at_the_start() {
    for db in TestDb::all().await {
        let s = &db.store;
        let a = s.create_agent(&NewAgent { username: "a1".into(), ..NewAgent::default() }).await.unwrap().id;
        let b = s.create_agent(&NewAgent { username: "b1".into(), ..NewAgent::default() }).await.unwrap().id;
        s.log_agent_states(&[change(a, "ready", 1_000), change(a, "on_call", 5_000), change(b, "not_ready", 2_000)]).await.unwrap();
        s.log_agent_states(&[change(a, "wrap_up", 65_000), change(a, "ready", 75_000)]).await.unwrap();
        // From 10 s: agent a was on a call since 5 s, agent b not ready since 2 s.
        let t = s.agent_time(None, 10_000, 85_000).await.unwrap();
        assert_eq!(t.len(), 2);
        let ta = t.iter().find(|x| x.agent_id == a).unwrap();
        assert_eq!(ta.seconds["on_call"], 55.0);
        assert_eq!(ta.seconds["wrap_up"], 10.0);
        assert_eq!(ta.seconds["ready"], 10.0);
        let tb = t.iter().find(|x| x.agent_id == b).unwrap();
        assert_eq!(tb.not_ready_reasons["lunch"], 75.0);
        let only_a = s.agent_time(Some(a), 0, 85_000).await.unwrap();
        assert_eq!(only_a.len(), 1);
        assert_eq!(only_a[0].seconds["ready"], 14.0);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn users_have_roles_and_unique_names() {
    use pacer_dialer::store::Role;
    for db in TestDb::all().await {
        let s = &db.store;
        let u = s.create_user("sue", Role::Supervisor, "$argon2id$x").await.unwrap();
        assert_eq!(s.user_by_username("sue").await.unwrap().unwrap(), u);
        assert!(matches!(s.create_user("sue", Role::Admin, "h").await, Err(StoreError::Conflict { .. })));
        assert!(matches!(s.create_user("bad name", Role::Admin, "h").await, Err(StoreError::Invalid(_))));
        assert_eq!(s.users().await.unwrap().len(), 1);
        assert!(Role::Admin > Role::Supervisor && Role::Supervisor > Role::Agent);
        db.cleanup().await;
    }
}
