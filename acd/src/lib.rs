//! `pacer-acd`: the automatic call distributor, as a sans-I/O state machine.
//!
//! [`Acd`] holds every agent's state (logged out, ready, reserved, on call, wrap-up, not
//! ready) and the queue of answered calls waiting for an agent. Events go in with the current
//! time; [`Acd::poll`] hands out [`Assignment`]s and [`Acd::next_deadline`] says when to call
//! again. It never reads a clock, sleeps or touches a socket, so the live server and
//! `pacer simulate` drive the same code: one in real time, one in virtual time.
//!
//! Routing: a call goes to its owning agent when that agent is ready, otherwise to the
//! longest-idle ready agent with the call's skill at the highest level. Waiting calls are
//! served by priority, then age. [`Acd::view`] is what the pacing engine reads: it never
//! keeps its own copy of agent states.
//!
//! ```
//! use std::time::Duration;
//! use pacer_acd::{Acd, AgentSpec, CallOffer, Routed};
//! let mut acd = Acd::new();
//! acd.add_agent(AgentSpec::new(1));
//! let t = Duration::ZERO;
//! acd.login(1, t).unwrap();
//! acd.set_ready(1, t).unwrap();
//! assert_eq!(acd.offer(CallOffer::new(7), t), Routed::Agent(1));
//! acd.connected(7, t).unwrap();
//! acd.hangup(7, Duration::from_secs(10), Duration::from_secs(60)).unwrap();
//! assert_eq!(acd.view(None).wrap_up.len(), 1);
//! ```

mod state;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use state::{AgentState, NotReadyReason};

/// An agent's identifier.
pub type AgentId = u64;
/// A call's identifier (the application's, opaque to the ACD).
pub type CallId = u64;
/// Time since an arbitrary epoch chosen by the driver (real or virtual).
pub type Time = Duration;

/// What the ACD needs to know about an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    pub id: AgentId,
    /// Skill name → level 1..=10.
    pub skills: BTreeMap<String, u8>,
    /// Campaigns this agent may work; empty means all.
    pub campaigns: Vec<u64>,
    /// Tie-break rank (lower first) when the rule is [`TieBreak::Rank`].
    pub rank: u32,
}

impl AgentSpec {
    pub fn new(id: AgentId) -> AgentSpec {
        AgentSpec { id, skills: BTreeMap::new(), campaigns: Vec::new(), rank: 0 }
    }

    pub fn with_skill(mut self, skill: &str, level: u8) -> AgentSpec {
        self.skills.insert(skill.to_string(), level.clamp(1, 10));
        self
    }

    fn works(&self, campaign: Option<u64>) -> bool {
        campaign.is_none_or(|c| self.campaigns.is_empty() || self.campaigns.contains(&c))
    }
}

/// An answered call that needs an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOffer {
    pub id: CallId,
    pub campaign: Option<u64>,
    /// Required skill; `None` means any agent.
    pub skill: Option<String>,
    /// The customer's dedicated agent, tried first.
    pub owner: Option<AgentId>,
    /// Higher is served first.
    pub priority: i32,
}

impl CallOffer {
    pub fn new(id: CallId) -> CallOffer {
        CallOffer { id, campaign: None, skill: None, owner: None, priority: 0 }
    }
}

/// How ties between equally skilled ready agents are broken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TieBreak {
    /// The agent ready the longest.
    #[default]
    LongestIdle,
    /// The agent with the fewest calls handled so far.
    FewestCalls,
    /// The lowest [`AgentSpec::rank`].
    Rank,
}

/// The result of offering a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// The agent is now reserved for the call.
    Agent(AgentId),
    /// No suitable agent is ready; the call waits in the queue.
    Queued,
}

/// A waiting call given to an agent that became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub call: CallId,
    pub agent: AgentId,
}

/// Refused events: they name the agent or call and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("agent {0} is not known")]
    UnknownAgent(AgentId),
    #[error("call {0} is not known to the ACD")]
    UnknownCall(CallId),
    #[error("agent {agent}: cannot {action} while {state}")]
    BadState { agent: AgentId, action: &'static str, state: &'static str },
}

/// Agents by state, as the pacing engine and the wallboard see them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentView {
    pub logged_in: u32,
    pub ready: u32,
    pub reserved: u32,
    /// Seconds each on-call agent has been on the call.
    pub in_call: Vec<f64>,
    /// Seconds each wrap-up agent has been in wrap-up.
    pub wrap_up: Vec<f64>,
    pub not_ready: u32,
    /// Answered calls waiting for an agent.
    pub waiting: u32,
}

#[derive(Debug, Clone)]
struct Agent {
    spec: AgentSpec,
    state: AgentState,
    since: Time,
    calls: u32,
    /// A supervisor's forced state, applied when the agent's current call and wrap-up end.
    forced: Option<AgentState>,
}

/// One agent state change, for the agent time report and the supervisor's live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub agent: AgentId,
    pub from: AgentState,
    pub to: AgentState,
    pub at: Time,
}

#[derive(Debug, Clone)]
struct Waiting {
    offer: CallOffer,
    since: Time,
    seq: u64,
}

/// The ACD state machine. See the crate documentation.
#[derive(Debug, Default)]
pub struct Acd {
    agents: BTreeMap<AgentId, Agent>,
    /// Agent holding each call (reserved or on call).
    call_agent: HashMap<CallId, AgentId>,
    queue: Vec<Waiting>,
    seq: u64,
    tie_break: TieBreak,
    pending: Vec<Assignment>,
    changes: Vec<StateChange>,
}

impl Acd {
    pub fn new() -> Acd {
        Acd::default()
    }

    pub fn with_tie_break(tie_break: TieBreak) -> Acd {
        Acd { tie_break, ..Acd::default() }
    }

    /// Register (or update) an agent; a new agent starts logged out.
    pub fn add_agent(&mut self, spec: AgentSpec) {
        match self.agents.get_mut(&spec.id) {
            Some(a) => a.spec = spec,
            None => {
                let id = spec.id;
                self.agents.insert(id, Agent { spec, state: AgentState::LoggedOut, since: Time::ZERO, calls: 0, forced: None });
            }
        }
    }

    /// An agent's current state and since when.
    pub fn state(&self, agent: AgentId) -> Option<(&AgentState, Time)> {
        self.agents.get(&agent).map(|a| (&a.state, a.since))
    }

    /// The agent holding `call`, if any.
    pub fn agent_of(&self, call: CallId) -> Option<AgentId> {
        self.call_agent.get(&call).copied()
    }

    fn agent_mut(&mut self, id: AgentId) -> Result<&mut Agent, AcdError> {
        self.agents.get_mut(&id).ok_or(AcdError::UnknownAgent(id))
    }

    /// Every state change goes through here, so the change log misses none.
    fn set_state(&mut self, id: AgentId, to: AgentState, at: Time) {
        let a = self.agents.get_mut(&id).expect("callers check the agent exists");
        let from = std::mem::replace(&mut a.state, to.clone());
        a.since = at;
        self.changes.push(StateChange { agent: id, from, to, at });
    }

    /// State changes since the last call, oldest first (to store and to publish).
    pub fn drain_changes(&mut self) -> Vec<StateChange> {
        std::mem::take(&mut self.changes)
    }

    /// A supervisor forces an agent not ready (or logged out). An agent on a call keeps it;
    /// the forced state applies when the call and its wrap-up end.
    pub fn force(&mut self, id: AgentId, to: AgentState, now: Time) -> Result<(), AcdError> {
        if !matches!(to, AgentState::NotReady(_) | AgentState::LoggedOut) {
            return Err(AcdError::BadState { agent: id, action: "be forced into a state other than not ready or logged out", state: self.agent_mut(id)?.state.name() });
        }
        let a = self.agent_mut(id)?;
        if a.state.holds_call() || matches!(a.state, AgentState::WrapUp { .. }) {
            a.forced = Some(to);
        } else {
            a.forced = None;
            self.set_state(id, to, now);
        }
        Ok(())
    }

    /// Where an agent goes when wrap-up ends: a forced state, or ready.
    fn after_wrap(&mut self, id: AgentId) -> AgentState {
        self.agents.get_mut(&id).and_then(|a| a.forced.take()).unwrap_or(AgentState::Ready)
    }

    fn transition(&mut self, id: AgentId, action: &'static str, now: Time, allowed: impl Fn(&AgentState) -> bool, to: AgentState) -> Result<(), AcdError> {
        let a = self.agent_mut(id)?;
        if !allowed(&a.state) {
            return Err(AcdError::BadState { agent: id, action, state: a.state.name() });
        }
        // The agent's own choice replaces a pending forced state.
        a.forced = None;
        self.set_state(id, to, now);
        Ok(())
    }

    /// Log an agent in: not ready (reason `login`) until they choose ready.
    pub fn login(&mut self, id: AgentId, now: Time) -> Result<(), AcdError> {
        self.transition(id, "log in", now, |s| matches!(s, AgentState::LoggedOut), AgentState::NotReady(NotReadyReason::Login))
    }

    /// Log an agent out. Refused while they hold a call.
    pub fn logout(&mut self, id: AgentId, now: Time) -> Result<(), AcdError> {
        self.transition(id, "log out", now, |s| !s.holds_call(), AgentState::LoggedOut)
    }

    /// The agent is ready for calls; a waiting call may be assigned at once (see [`Acd::poll`]).
    pub fn set_ready(&mut self, id: AgentId, now: Time) -> Result<(), AcdError> {
        self.transition(id, "become ready", now, |s| matches!(s, AgentState::NotReady(_) | AgentState::WrapUp { .. } | AgentState::Ready), AgentState::Ready)?;
        self.dispatch(now);
        Ok(())
    }

    /// The agent steps away. Refused while they hold a call (the call ends first).
    pub fn set_not_ready(&mut self, id: AgentId, reason: NotReadyReason, now: Time) -> Result<(), AcdError> {
        self.transition(id, "become not ready", now, |s| !s.holds_call() && !matches!(s, AgentState::LoggedOut), AgentState::NotReady(reason))
    }

    /// Extend an agent's wrap-up to `until` (the caller enforces the campaign's limit).
    pub fn extend_wrap_up(&mut self, id: AgentId, until: Time) -> Result<(), AcdError> {
        let a = self.agent_mut(id)?;
        match &mut a.state {
            AgentState::WrapUp { until: u } => {
                *u = until.max(*u);
                Ok(())
            }
            s => Err(AcdError::BadState { agent: id, action: "extend wrap-up", state: s.name() }),
        }
    }

    /// An answered call needs an agent: reserve one now, or queue the call.
    pub fn offer(&mut self, offer: CallOffer, now: Time) -> Routed {
        if let Some(agent) = self.pick(&offer) {
            self.reserve(agent, offer.id, now);
            return Routed::Agent(agent);
        }
        self.seq += 1;
        self.queue.push(Waiting { offer, since: now, seq: self.seq });
        Routed::Queued
    }

    /// An agent starts a call themselves (preview or manual dial): they are reserved for
    /// it until it is connected or withdrawn. Refused while they hold another call, are in
    /// wrap-up or are logged out.
    pub fn reserve_for(&mut self, agent: AgentId, call: CallId, now: Time) -> Result<(), AcdError> {
        if self.call_agent.contains_key(&call) {
            return Err(AcdError::BadState { agent, action: "start a call with an id in use", state: "reserved" });
        }
        let a = self.agent_mut(agent)?;
        if !matches!(a.state, AgentState::Ready | AgentState::NotReady(_)) {
            return Err(AcdError::BadState { agent, action: "start a call", state: a.state.name() });
        }
        a.forced = None;
        self.reserve(agent, call, now);
        Ok(())
    }

    /// A call left the queue or its reservation without being connected (the customer hung
    /// up, or was abandoned to the safe-harbor message). A reserved agent is ready again.
    pub fn withdraw(&mut self, call: CallId, now: Time) -> Result<(), AcdError> {
        if let Some(pos) = self.queue.iter().position(|w| w.offer.id == call) {
            self.queue.remove(pos);
            return Ok(());
        }
        let agent = self.call_agent.remove(&call).ok_or(AcdError::UnknownCall(call))?;
        let next = self.after_wrap(agent);
        self.set_state(agent, next, now);
        self.dispatch(now);
        Ok(())
    }

    /// The reserved agent's media is bridged to the call: they are on the call.
    pub fn connected(&mut self, call: CallId, now: Time) -> Result<AgentId, AcdError> {
        let agent = *self.call_agent.get(&call).ok_or(AcdError::UnknownCall(call))?;
        self.transition(agent, "connect", now, |s| matches!(s, AgentState::Reserved(c) if *c == call), AgentState::OnCall(call))?;
        Ok(agent)
    }

    /// The call ended: its agent wraps up for `wrap` (zero means ready at once).
    pub fn hangup(&mut self, call: CallId, wrap: Duration, now: Time) -> Result<AgentId, AcdError> {
        let agent = self.call_agent.remove(&call).ok_or(AcdError::UnknownCall(call))?;
        self.agent_mut(agent)?.calls += 1;
        let next = if wrap.is_zero() { self.after_wrap(agent) } else { AgentState::WrapUp { until: now + wrap } };
        self.set_state(agent, next, now);
        self.dispatch(now);
        Ok(agent)
    }

    /// Advance to `now`: wrap-ups that ended make agents ready, and waiting calls get agents.
    /// Returns the assignments made since the last poll (including those made by events).
    pub fn poll(&mut self, now: Time) -> Vec<Assignment> {
        let ended: Vec<(AgentId, Time)> = self
            .agents
            .values()
            .filter_map(|a| match a.state {
                AgentState::WrapUp { until } if until <= now => Some((a.spec.id, until)),
                _ => None,
            })
            .collect();
        for (id, until) in ended {
            let next = self.after_wrap(id);
            self.set_state(id, next, until);
        }
        self.dispatch(now);
        std::mem::take(&mut self.pending)
    }

    /// The next time [`Acd::poll`] has work (the earliest wrap-up end).
    pub fn next_deadline(&self) -> Option<Time> {
        self.agents
            .values()
            .filter_map(|a| match a.state {
                AgentState::WrapUp { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Agents by state for one campaign (or all), and calls waiting.
    pub fn view(&self, campaign: Option<u64>) -> AgentView {
        self.view_at(campaign, None)
    }

    /// Like [`Acd::view`], with elapsed times measured at `now`.
    pub fn view_at(&self, campaign: Option<u64>, now: Option<Time>) -> AgentView {
        let mut v = AgentView::default();
        for a in self.agents.values().filter(|a| a.spec.works(campaign)) {
            let elapsed = now.map(|n| n.saturating_sub(a.since).as_secs_f64()).unwrap_or(0.0);
            match a.state {
                AgentState::LoggedOut => continue,
                AgentState::Ready => v.ready += 1,
                AgentState::Reserved(_) => v.reserved += 1,
                AgentState::OnCall(_) => v.in_call.push(elapsed),
                AgentState::WrapUp { .. } => v.wrap_up.push(elapsed),
                AgentState::NotReady(_) => v.not_ready += 1,
            }
            v.logged_in += 1;
        }
        v.waiting = self.queue.iter().filter(|w| campaign.is_none() || w.offer.campaign == campaign).count() as u32;
        v
    }

    /// Whether the agent may take calls of `campaign`.
    pub fn works(&self, agent: AgentId, campaign: u64) -> bool {
        self.agents.get(&agent).is_some_and(|a| a.spec.works(Some(campaign)))
    }

    /// The agents ready now who work `campaign` (or any campaign).
    pub fn ready_agents(&self, campaign: Option<u64>) -> Vec<AgentId> {
        self.agents.values().filter(|a| matches!(a.state, AgentState::Ready) && a.spec.works(campaign)).map(|a| a.spec.id).collect()
    }

    fn reserve(&mut self, agent: AgentId, call: CallId, now: Time) {
        self.set_state(agent, AgentState::Reserved(call), now);
        self.call_agent.insert(call, agent);
    }

    /// The best ready agent for `offer`, if any.
    fn pick(&self, offer: &CallOffer) -> Option<AgentId> {
        let ready = |a: &&Agent| matches!(a.state, AgentState::Ready) && a.spec.works(offer.campaign);
        if let Some(owner) = offer.owner.and_then(|o| self.agents.get(&o)).filter(ready) {
            return Some(owner.spec.id);
        }
        let level = |a: &Agent| match &offer.skill {
            None => Some(0u8),
            Some(s) => a.spec.skills.get(s).copied(),
        };
        self.agents
            .values()
            .filter(ready)
            .filter_map(|a| level(a).map(|l| (a, l)))
            .min_by(|(a, la), (b, lb)| {
                lb.cmp(la).then_with(|| match self.tie_break {
                    TieBreak::LongestIdle => a.since.cmp(&b.since),
                    TieBreak::FewestCalls => a.calls.cmp(&b.calls).then(a.since.cmp(&b.since)),
                    TieBreak::Rank => a.spec.rank.cmp(&b.spec.rank).then(a.since.cmp(&b.since)),
                })
            })
            .map(|(a, _)| a.spec.id)
    }

    /// Give waiting calls (by priority, then age) to ready agents.
    fn dispatch(&mut self, now: Time) {
        if self.queue.is_empty() {
            return;
        }
        self.queue.sort_by(|a, b| b.offer.priority.cmp(&a.offer.priority).then(a.since.cmp(&b.since)).then(a.seq.cmp(&b.seq)));
        let mut i = 0;
        while i < self.queue.len() {
            match self.pick(&self.queue[i].offer) {
                Some(agent) => {
                    let w = self.queue.remove(i);
                    self.reserve(agent, w.offer.id, now);
                    self.pending.push(Assignment { call: w.offer.id, agent });
                }
                None => i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests;
