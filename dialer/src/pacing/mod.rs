//! The pacing engine: how many calls to start now for one campaign, and why.
//!
//! Sans-I/O: the caller feeds [`CampaignPacer::on_outcome`] and friends as calls resolve,
//! and asks [`CampaignPacer::decide`] with a [`PacingInput`] (the ACD's [`AgentView`], the
//! calls in flight with their ages, the campaign's abandon figures, trunk capacity and the
//! current time). The answer is a [`Decision`]: calls to start, the next time to ask, and
//! an [`Explanation`] a manager can read. No clock, no sockets: the live dialer and
//! `pacer simulate` run this same code, one in real time and one in virtual time.
//!
//! Modes ([`PacingMode`]): preview (agents ask for calls; the engine starts none),
//! progressive (one call per ready agent), power (a fixed ratio of calls per ready agent),
//! adaptive (the classic dial-level controller, kept as a baseline), and predictive
//! (Pacer's: see [`predictive`]). Predictive falls back to progressive below
//! `min_agents`, and no mode exceeds `max_lines_per_agent` or the trunk capacity.
//!
//! Predictive may also hang up calls that have rung at least `min_ring_s` (never less than
//! 15 s) when a person answering one would probably find no agent: after each decision,
//! [`CampaignPacer::hang_ups`] lists them (indices into the input's calls), and the dialer
//! cancels them and reports [`Outcome::HungUp`].

mod baselines;
pub mod predictive;
mod risk;
pub mod stats;

use std::time::Duration;

use pacer_acd::AgentView;
use serde::{Deserialize, Serialize};

use baselines::Adaptive;
use predictive::Predictive;

/// When the abandon budget is spent, predictive still dials, beyond one call per ready agent,
/// the calls whose abandon risk is under this. A young campaign (the first few dozen
/// people of a day) spends most of its time there: dialling only progressively cost M
/// about 0.3 point of occupancy over the day.
pub const SPENT_MAX_RISK: f64 = 0.001;

/// How a campaign's dialling is paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum PacingMode {
    Preview,
    Progressive,
    Power { ratio: f64 },
    Adaptive { max_level: f64 },
    Predictive,
}

/// A campaign's pacing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingSettings {
    pub mode: PacingMode,
    /// Abandoned ÷ human-answered the campaign must never exceed (at most 3%).
    pub abandon_target: f64,
    /// Calls in flight per active agent, at most.
    pub max_lines_per_agent: f64,
    /// Fewer active agents than this and predictive dials progressively.
    pub min_agents: u32,
    /// Seconds after the human verdict within which an agent must be connected.
    pub connect_limit_s: f64,
    /// Ring timeout, seconds (never below 15).
    pub ring_timeout_s: f64,
    /// Predictive may hang up a call that has rung this long (never below 15 s) when a
    /// person answering it would probably be abandoned; at `ring_timeout_s` or more,
    /// every call rings to the timeout.
    pub min_ring_s: f64,
    /// Seconds between decisions.
    pub tick_s: f64,
}

impl Default for PacingSettings {
    fn default() -> Self {
        PacingSettings {
            mode: PacingMode::Predictive,
            abandon_target: 0.03,
            max_lines_per_agent: 5.0,
            min_agents: 3,
            connect_limit_s: 2.0,
            ring_timeout_s: 25.0,
            min_ring_s: 15.0,
            tick_s: 0.5,
        }
    }
}

/// Where a call in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStage {
    /// Dialled, not answered yet.
    Ringing,
    /// Answered; answering-machine detection is running.
    Detecting,
    /// A person answered and waits for an agent.
    Waiting,
}

/// A call the campaign started that has not been connected or ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallInFlight {
    /// Seconds since it was dialled.
    pub age_s: f64,
    pub stage: CallStage,
    /// Seconds since it entered its stage.
    pub stage_age_s: f64,
}

/// Abandoned and human-answered calls over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AbandonFigures {
    pub human: u64,
    pub abandoned: u64,
}

impl AbandonFigures {
    pub fn rate(&self) -> f64 {
        if self.human == 0 { 0.0 } else { self.abandoned as f64 / self.human as f64 }
    }

    /// Abandons still allowed now without the rate exceeding `target`.
    pub fn budget(&self, target: f64) -> f64 {
        target * self.human as f64 - self.abandoned as f64
    }
}

/// What the engine sees when asked.
#[derive(Debug, Clone, Copy)]
pub struct PacingInput<'a> {
    pub now: Duration,
    pub agents: &'a AgentView,
    pub calls: &'a [CallInFlight],
    /// Since the campaign's start.
    pub since_start: AbandonFigures,
    /// Over the last 30 days (equal to `since_start` for younger campaigns).
    pub rolling_30d: AbandonFigures,
    /// New calls the trunks can take now.
    pub trunk_capacity: u32,
}

/// How a resolved call ended, as the dialer observed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A person answered after `ring_s`; detection took `verdict_s` more.
    Human { ring_s: f64, verdict_s: f64 },
    /// A machine answered after `ring_s`; detection took `verdict_s` more.
    Machine { ring_s: f64, verdict_s: f64 },
    /// Busy, rejected, invalid or congested after `after_s`.
    Failed { after_s: f64 },
    /// Rang out.
    NoAnswer { after_s: f64 },
    /// Still ringing after `after_s` when the dialer hung up on the engine's advice
    /// ([`CampaignPacer::hang_ups`]): what it would have become is not known.
    HungUp { after_s: f64 },
}

/// Why the engine decided what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Preview mode: agents ask for calls.
    Preview,
    /// Progressive (the mode, or the predictive fallback below).
    Progressive,
    /// Predictive with fewer active agents than `min_agents`.
    TooFewAgents,
    /// Predictive still learning the campaign's rates.
    Learning,
    /// The abandon budget is spent: only calls that cannot be abandoned.
    BudgetSpent,
    Power,
    Adaptive,
    /// Predictive: dialled while the next call's abandon risk stayed under the margin.
    Predicted,
    /// A limit (lines per agent or trunk capacity) cut the decision.
    CappedByLines,
    CappedByTrunk,
    /// No agent is logged in and ready or about to be.
    NoAgents,
}

/// The engine's current estimates, for the API and Prometheus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Explanation {
    pub answer_rate: f64,
    pub machine_rate: f64,
    /// Agents expected free within the next 10 s.
    pub expected_agents_free_10s: f64,
    /// Human answers expected from the calls now in flight.
    pub expected_answers_in_flight: f64,
    /// Largest abandon risk accepted for the next call (predictive), or the dial level.
    pub margin: f64,
    pub abandon_rate: f64,
    /// Abandons still allowed within the target.
    pub abandon_budget: f64,
    pub calls_in_flight: u32,
    pub last_dials: u32,
    pub reason: Option<Reason>,
}

/// The engine's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub dial: u32,
    /// Ask again at this time at the latest.
    pub next_at: Duration,
    pub reason: Reason,
}

enum Policy {
    Fixed,
    Adaptive(Adaptive),
    Predictive(Box<Predictive>),
}

/// The pacing engine for one campaign.
pub struct CampaignPacer {
    settings: PacingSettings,
    policy: Policy,
    explanation: Explanation,
    /// The last decision ran the predictive policy (not a fallback).
    last_predicted: bool,
}

impl CampaignPacer {
    pub fn new(mut settings: PacingSettings) -> CampaignPacer {
        settings.abandon_target = settings.abandon_target.clamp(0.0, 0.03);
        settings.ring_timeout_s = settings.ring_timeout_s.max(15.0);
        settings.min_ring_s = settings.min_ring_s.max(15.0);
        let policy = match settings.mode {
            PacingMode::Adaptive { max_level } => Policy::Adaptive(Adaptive::new(max_level)),
            PacingMode::Predictive => Policy::Predictive(Box::new(Predictive::new(&settings))),
            _ => Policy::Fixed,
        };
        CampaignPacer { settings, policy, explanation: Explanation::default(), last_predicted: false }
    }

    /// Calls the last [`decide`](Self::decide) advises hanging up, as indices into its
    /// input's `calls`: ringing for at least `min_ring_s`, and a person answering one now
    /// would more probably be abandoned than the margin allows (predictive only). Cancelling
    /// them trades a few late answers for abandons avoided, and the budget saved lets the
    /// engine dial harder.
    pub fn hang_ups(&self) -> &[usize] {
        match &self.policy {
            Policy::Predictive(p) if self.last_predicted => p.hang_ups(),
            _ => &[],
        }
    }

    pub fn settings(&self) -> &PacingSettings {
        &self.settings
    }

    /// The estimates and reason behind the last decision.
    pub fn explain(&self) -> &Explanation {
        &self.explanation
    }

    /// A call resolved (answered with a verdict, failed or rang out).
    pub fn on_outcome(&mut self, outcome: Outcome) {
        if let Policy::Predictive(p) = &mut self.policy {
            p.on_outcome(outcome);
        }
    }

    /// A person answered and was connected (`abandoned == false`) or abandoned.
    pub fn on_human_result(&mut self, abandoned: bool) {
        if let Policy::Predictive(p) = &mut self.policy {
            p.on_human_result(abandoned);
        }
    }

    /// An agent finished talking after `talk_s`.
    pub fn on_talk(&mut self, talk_s: f64) {
        if let Policy::Predictive(p) = &mut self.policy {
            p.on_talk(talk_s);
        }
    }

    /// An agent finished wrap-up after `wrap_s`.
    pub fn on_wrap(&mut self, wrap_s: f64) {
        if let Policy::Predictive(p) = &mut self.policy {
            p.on_wrap(wrap_s);
        }
    }

    /// How many calls to start now.
    pub fn decide(&mut self, input: &PacingInput) -> Decision {
        let s = &self.settings;
        let a = input.agents;
        let in_flight = input.calls.len() as u32;
        let active = a.logged_in.saturating_sub(a.not_ready);
        // Either window's figures may be the binding one.
        let budget = input.since_start.budget(s.abandon_target).min(input.rolling_30d.budget(s.abandon_target));
        let progressive = a.ready.saturating_sub(in_flight);
        self.last_predicted = false;
        let (want, reason) = match (&mut self.policy, s.mode) {
            (_, PacingMode::Preview) => (0, Reason::Preview),
            (_, PacingMode::Progressive) => (progressive, Reason::Progressive),
            (_, PacingMode::Power { ratio }) => (((ratio * f64::from(a.ready)).round() as u32).saturating_sub(in_flight), Reason::Power),
            (Policy::Adaptive(ad), _) => (ad.decide(input, &mut self.explanation), Reason::Adaptive),
            (Policy::Predictive(p), _) => {
                if active < s.min_agents {
                    (progressive, Reason::TooFewAgents)
                } else if budget < 1.0 + p.expected_abandons_in_flight() {
                    // One more abandon would cross the target: dial only calls that are all but
                    // sure to find an agent (one per ready agent, or a risk under 0.1%).
                    let (safe, _) = p.decide(input, budget, Some(SPENT_MAX_RISK), &mut self.explanation);
                    self.last_predicted = true;
                    (progressive.max(safe), Reason::BudgetSpent)
                } else {
                    self.last_predicted = true;
                    p.decide(input, budget, None, &mut self.explanation)
                }
            }
            (Policy::Fixed, _) => (0, Reason::NoAgents),
        };
        let lines = (s.max_lines_per_agent * f64::from(active)).floor() as u32;
        let mut dial = want;
        let mut reason = reason;
        if active == 0 && dial > 0 {
            dial = 0;
            reason = Reason::NoAgents;
        }
        if in_flight + dial > lines {
            dial = lines.saturating_sub(in_flight);
            reason = Reason::CappedByLines;
        }
        if dial > input.trunk_capacity {
            dial = input.trunk_capacity;
            reason = Reason::CappedByTrunk;
        }
        let e = &mut self.explanation;
        e.abandon_rate = input.since_start.rate().max(input.rolling_30d.rate());
        e.abandon_budget = budget;
        e.calls_in_flight = in_flight;
        e.last_dials = dial;
        e.reason = Some(reason);
        Decision { dial, next_at: input.now + Duration::from_secs_f64(s.tick_s), reason }
    }
}

#[cfg(test)]
mod tests;
