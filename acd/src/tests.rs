use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn s(secs: u64) -> Time {
    Duration::from_secs(secs)
}

fn ready_acd(ids: &[AgentId]) -> Acd {
    let mut acd = Acd::new();
    for &id in ids {
        acd.add_agent(AgentSpec::new(id));
        acd.login(id, s(0)).unwrap();
    }
    acd
}

#[test]
fn longest_idle_agent_gets_the_call() {
    let mut acd = ready_acd(&[1, 2, 3]);
    acd.set_ready(2, s(1)).unwrap();
    acd.set_ready(3, s(2)).unwrap();
    acd.set_ready(1, s(3)).unwrap();
    assert_eq!(acd.offer(CallOffer::new(10), s(4)), Routed::Agent(2));
    assert_eq!(acd.offer(CallOffer::new(11), s(4)), Routed::Agent(3));
}

#[test]
fn owner_first_then_highest_skill() {
    let mut acd = Acd::new();
    acd.add_agent(AgentSpec::new(1).with_skill("spanish", 3));
    acd.add_agent(AgentSpec::new(2).with_skill("spanish", 9));
    acd.add_agent(AgentSpec::new(3));
    for id in 1..=3 {
        acd.login(id, s(0)).unwrap();
        acd.set_ready(id, s(id)).unwrap();
    }
    let mut owned = CallOffer::new(10);
    owned.owner = Some(3);
    assert_eq!(acd.offer(owned, s(5)), Routed::Agent(3));
    let mut spanish = CallOffer::new(11);
    spanish.skill = Some("spanish".into());
    assert_eq!(acd.offer(spanish.clone(), s(5)), Routed::Agent(2));
    spanish.id = 12;
    assert_eq!(acd.offer(spanish.clone(), s(5)), Routed::Agent(1));
    spanish.id = 13;
    assert_eq!(acd.offer(spanish, s(5)), Routed::Queued, "agent 3 lacks the skill");
}

#[test]
fn waiting_calls_go_by_priority_then_age_when_agents_free_up() {
    let mut acd = ready_acd(&[1]);
    acd.set_ready(1, s(0)).unwrap();
    assert_eq!(acd.offer(CallOffer::new(1), s(0)), Routed::Agent(1));
    acd.connected(1, s(0)).unwrap();
    assert_eq!(acd.offer(CallOffer::new(2), s(1)), Routed::Queued);
    let mut urgent = CallOffer::new(3);
    urgent.priority = 5;
    assert_eq!(acd.offer(urgent, s(2)), Routed::Queued);
    assert_eq!(acd.view(None).waiting, 2);
    acd.hangup(1, Duration::from_secs(10), s(30)).unwrap();
    assert!(acd.poll(s(35)).is_empty(), "still in wrap-up");
    assert_eq!(acd.next_deadline(), Some(s(40)));
    assert_eq!(acd.poll(s(40)), vec![Assignment { call: 3, agent: 1 }]);
}

#[test]
fn bad_events_are_refused_with_a_reason() {
    let mut acd = ready_acd(&[1]);
    assert_eq!(acd.connected(99, s(0)), Err(AcdError::UnknownCall(99)));
    assert_eq!(acd.set_ready(42, s(0)), Err(AcdError::UnknownAgent(42)));
    acd.set_ready(1, s(0)).unwrap();
    acd.offer(CallOffer::new(5), s(0));
    let err = acd.logout(1, s(1)).unwrap_err();
    assert_eq!(err.to_string(), "agent 1: cannot log out while reserved");
    acd.withdraw(5, s(2)).unwrap();
    assert_eq!(acd.state(1).unwrap().0, &AgentState::Ready);
}

#[test]
fn view_reports_elapsed_times() {
    let mut acd = ready_acd(&[1, 2]);
    acd.set_ready(1, s(0)).unwrap();
    acd.set_ready(2, s(0)).unwrap();
    acd.offer(CallOffer::new(1), s(10));
    acd.connected(1, s(10)).unwrap();
    acd.offer(CallOffer::new(2), s(20));
    acd.connected(2, s(20)).unwrap();
    acd.hangup(2, Duration::from_secs(10), s(25)).unwrap();
    let v = acd.view_at(None, Some(s(27)));
    assert_eq!(v.in_call, vec![17.0]);
    assert_eq!(v.wrap_up, vec![2.0]);
    assert_eq!(v.logged_in, 2);
}

#[test]
fn forced_not_ready_waits_for_the_call_to_end() {
    let mut acd = ready_acd(&[1, 2]);
    acd.set_ready(1, s(0)).unwrap();
    acd.offer(CallOffer::new(9), s(1));
    acd.connected(9, s(1)).unwrap();
    acd.force(1, AgentState::NotReady(NotReadyReason::Forced), s(2)).unwrap();
    assert!(matches!(acd.state(1).unwrap().0, AgentState::OnCall(9)), "the customer call is not cut");
    acd.hangup(9, Duration::from_secs(5), s(10)).unwrap();
    acd.poll(s(15));
    assert_eq!(acd.state(1).unwrap().0, &AgentState::NotReady(NotReadyReason::Forced));
    // An idle agent is forced at once; forcing into ready is refused.
    acd.force(2, AgentState::LoggedOut, s(16)).unwrap();
    assert_eq!(acd.state(2).unwrap().0, &AgentState::LoggedOut);
    assert!(acd.force(1, AgentState::Ready, s(17)).is_err());
}

#[test]
fn every_state_change_is_logged_with_its_time() {
    let mut acd = ready_acd(&[1]);
    acd.drain_changes();
    acd.set_ready(1, s(1)).unwrap();
    acd.offer(CallOffer::new(3), s(2));
    acd.connected(3, s(2)).unwrap();
    acd.hangup(3, Duration::from_secs(10), s(60)).unwrap();
    acd.poll(s(75));
    let log: Vec<(&str, &str, u64)> = acd.drain_changes().iter().map(|c| (c.from.name(), c.to.name(), c.at.as_secs())).collect();
    assert_eq!(
        log,
        vec![("not_ready", "ready", 1), ("ready", "reserved", 2), ("reserved", "on_call", 2), ("on_call", "wrap_up", 60), ("wrap_up", "ready", 70)]
    );
    assert!(acd.drain_changes().is_empty());
}

#[derive(Debug, Clone)]
enum Ev {
    Ready(u64),
    NotReady(u64),
    Login(u64),
    Logout(u64),
    Offer(Option<u8>),
    Connect(usize),
    Hangup(usize, u8),
    Withdraw(usize),
    Tick(u8),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        2 => (0u64..6).prop_map(Ev::Ready),
        1 => (0u64..6).prop_map(Ev::NotReady),
        1 => (0u64..6).prop_map(Ev::Login),
        1 => (0u64..6).prop_map(Ev::Logout),
        3 => proptest::option::of(0u8..2).prop_map(Ev::Offer),
        2 => (0usize..8).prop_map(Ev::Connect),
        2 => (0usize..8, 0u8..3).prop_map(|(i, w)| Ev::Hangup(i, w)),
        1 => (0usize..8).prop_map(Ev::Withdraw),
        2 => (1u8..20).prop_map(Ev::Tick),
    ]
}

proptest! {
    /// Over random event sequences: no agent holds two calls, no ready agent idles while a
    /// call waits for a skill it has, and the pacing view adds up to the agents' states.
    #[test]
    fn acd_invariants_hold(events in proptest::collection::vec(ev(), 1..200)) {
        let skills = ["a", "b"];
        let mut acd = Acd::new();
        for id in 0..6u64 {
            let mut spec = AgentSpec::new(id);
            if id % 2 == 0 { spec = spec.with_skill("a", (id + 1) as u8); }
            if id % 3 == 0 { spec = spec.with_skill("b", 5); }
            acd.add_agent(spec);
        }
        let mut now = Time::ZERO;
        let mut next_call = 0u64;
        let mut live: Vec<CallId> = Vec::new();
        let mut last_state: std::collections::HashMap<AgentId, AgentState> = Default::default();
        for e in events {
            match e {
                Ev::Ready(a) => { let _ = acd.set_ready(a, now); }
                Ev::NotReady(a) => { let _ = acd.set_not_ready(a, NotReadyReason::Break, now); }
                Ev::Login(a) => { let _ = acd.login(a, now); }
                Ev::Logout(a) => { let _ = acd.logout(a, now); }
                Ev::Offer(skill) => {
                    next_call += 1;
                    let mut o = CallOffer::new(next_call);
                    o.skill = skill.map(|i| skills[i as usize].to_string());
                    acd.offer(o, now);
                    live.push(next_call);
                }
                Ev::Connect(i) => { if let Some(c) = live.get(i) { let _ = acd.connected(*c, now); } }
                Ev::Hangup(i, w) => {
                    if i < live.len() && acd.agent_of(live[i]).is_some_and(|a| matches!(acd.state(a).unwrap().0, AgentState::OnCall(_))) {
                        let c = live.remove(i);
                        acd.hangup(c, Duration::from_secs(u64::from(w) * 5), now).unwrap();
                    }
                }
                Ev::Withdraw(i) => { if i < live.len() { let c = live.remove(i); let _ = acd.withdraw(c, now); } }
                Ev::Tick(dt) => { now += Duration::from_secs(u64::from(dt)); }
            }
            acd.poll(now);
            // The change log chains: each change starts where the agent's previous one ended.
            for c in acd.drain_changes() {
                if let Some(prev) = last_state.insert(c.agent, c.to.clone()) {
                    prop_assert_eq!(prev, c.from.clone());
                }
                prop_assert!(c.at <= now);
            }
            for (id, a) in &acd.agents {
                if let Some(s) = last_state.get(id) { prop_assert_eq!(s, &a.state); }
            }

            // One call per agent, and the ACD's call map agrees with agent states.
            let mut seen = HashSet::new();
            for (id, a) in &acd.agents {
                match a.state {
                    AgentState::Reserved(c) | AgentState::OnCall(c) => {
                        prop_assert!(seen.insert(c), "call {} held twice", c);
                        prop_assert_eq!(acd.call_agent.get(&c), Some(id));
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(seen.len(), acd.call_agent.len());
            // No ready agent is skipped while a call waits for a skill they have.
            for w in &acd.queue {
                let skipped = acd.agents.values().any(|a| a.state == AgentState::Ready
                    && w.offer.skill.as_ref().is_none_or(|s| a.spec.skills.contains_key(s)));
                prop_assert!(!skipped, "call {} waits while a suitable agent is ready", w.offer.id);
            }
            // The pacing view adds up.
            let v = acd.view_at(None, Some(now));
            let total = v.ready + v.reserved + v.in_call.len() as u32 + v.wrap_up.len() as u32 + v.not_ready;
            prop_assert_eq!(total, v.logged_in);
            let logged_in = acd.agents.values().filter(|a| a.state != AgentState::LoggedOut).count() as u32;
            prop_assert_eq!(v.logged_in, logged_in);
        }
    }
}

#[test]
fn an_agent_reserved_for_their_own_call_is_not_offered_another() {
    let mut acd = Acd::new();
    acd.add_agent(AgentSpec::new(1));
    let t = Duration::ZERO;
    acd.login(1, t).unwrap();
    acd.set_not_ready(1, NotReadyReason::Other("preview".into()), t).unwrap();
    acd.reserve_for(1, 50, t).unwrap();
    assert_eq!(acd.offer(CallOffer::new(51), t), Routed::Queued);
    assert!(acd.reserve_for(1, 52, t).is_err(), "one call at a time");
    acd.connected(50, t).unwrap();
    acd.hangup(50, Duration::from_secs(5), Duration::from_secs(30)).unwrap();
    assert!(matches!(acd.state(1), Some((AgentState::WrapUp { .. }, _))));
    assert!(acd.reserve_for(1, 53, t).is_err(), "not during wrap-up");
}
