//! The pacing simulator behind `pacer simulate`.
//!
//! It runs the **real** pacing engine ([`crate::pacing::CampaignPacer`]) and the **real**
//! ACD ([`pacer_acd::Acd`]) in virtual time, against a simulated carrier (outcomes and
//! timings drawn from a [`Scenario`]) and simulated agents (talk and wrap-up times). The
//! engine sees only what a live dialer sees: agent states and their ages, calls in flight
//! and their stages, and outcomes as they resolve. An 8-hour day takes well under a second.

mod learned;
mod scenario;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use pacer_acd::{Acd, AgentSpec, CallOffer, Routed};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::Serialize;

pub use learned::{LearnError, MIN_ATTEMPTS, MIN_HUMANS};
pub use scenario::Scenario;

use crate::pacing::{AbandonFigures, CallInFlight, CallStage, CampaignPacer, Outcome, PacingInput, PacingMode, PacingSettings};

/// The dialling policies the simulator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Progressive,
    Power,
    Adaptive,
    Predictive,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Progressive, Policy::Power, Policy::Adaptive, Policy::Predictive];

    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::Progressive => "progressive",
            Policy::Power => "power",
            Policy::Adaptive => "adaptive",
            Policy::Predictive => "predictive",
        }
    }
}

/// Figures of one seed's run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SeedResult {
    pub dials: u64,
    pub humans: u64,
    pub abandoned: u64,
    pub connects: u64,
    pub occupancy: f64,
    pub abandon_rate: f64,
    pub idle_wait_per_connect_s: f64,
    /// Late rings hung up on the engine's advice.
    pub hung_up: u64,
}

/// The JSON line `pacer simulate --json` prints (BENCHMARKS.md §1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub policy: Policy,
    pub seeds: u32,
    pub hours: f64,
    pub agents: u32,
    pub occupancy: f64,
    pub abandon_rate: f64,
    pub abandon_rate_worst_seed: f64,
    pub idle_wait_per_connect_s: f64,
    pub dials_per_agent_hour: f64,
    pub connects_per_agent_hour: f64,
}

/// Pacing settings the scenario asks for under `policy`.
pub fn settings_for(s: &Scenario, policy: Policy) -> PacingSettings {
    let p = &s.pacing;
    PacingSettings {
        mode: match policy {
            Policy::Progressive => PacingMode::Progressive,
            Policy::Power => PacingMode::Power { ratio: p.power_ratio },
            Policy::Adaptive => PacingMode::Adaptive { max_level: p.adaptive_max_level },
            Policy::Predictive => PacingMode::Predictive,
        },
        abandon_target: p.abandon_target,
        max_lines_per_agent: p.max_lines_per_agent,
        min_agents: p.min_agents,
        connect_limit_s: s.timing.connect_limit,
        ring_timeout_s: s.timing.no_answer_timeout,
        min_ring_s: p.min_ring,
        ..PacingSettings::default()
    }
}

/// Run `seeds` seeds (in parallel on the machine's cores) and summarise them.
pub fn run(s: &Scenario, policy: Policy, seeds: u32) -> Summary {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(seeds.max(1) as usize);
    let mut results = vec![SeedResult::default(); seeds as usize];
    std::thread::scope(|scope| {
        for (t, chunk) in results.chunks_mut((seeds as usize).div_ceil(threads).max(1)).enumerate() {
            let base = t * (seeds as usize).div_ceil(threads).max(1);
            scope.spawn(move || {
                for (i, r) in chunk.iter_mut().enumerate() {
                    *r = run_seed(s, policy, (base + i) as u64);
                }
            });
        }
    });
    summarise(s, policy, &results)
}

fn summarise(s: &Scenario, policy: Policy, r: &[SeedResult]) -> Summary {
    let n = r.len().max(1) as f64;
    let mean = |f: fn(&SeedResult) -> f64| r.iter().map(f).sum::<f64>() / n;
    let agent_hours = f64::from(s.agents) * s.hours;
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    Summary {
        scenario: s.name.clone(),
        policy,
        seeds: r.len() as u32,
        hours: s.hours,
        agents: s.agents,
        occupancy: round(mean(|x| x.occupancy), 4),
        abandon_rate: round(mean(|x| x.abandon_rate), 4),
        abandon_rate_worst_seed: round(r.iter().map(|x| x.abandon_rate).fold(0.0, f64::max), 4),
        idle_wait_per_connect_s: round(mean(|x| x.idle_wait_per_connect_s), 1),
        dials_per_agent_hour: round(mean(|x| x.dials as f64) / agent_hours, 1),
        connects_per_agent_hour: round(mean(|x| x.connects as f64) / agent_hours, 1),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Human,
    Machine,
    Busy,
    NoAnswer,
}

#[derive(Debug)]
struct Call {
    dialled: f64,
    kind: Kind,
    stage: CallStage,
    stage_since: f64,
    answered: f64,
    /// Detection will (wrongly) call it a machine / a person.
    false_positive: bool,
    false_negative: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick,
    Answer(u64),
    Verdict(u64),
    Resolve(u64),
    ConnectDeadline(u64),
    TalkEnd(u64),
    WrapEnd(u64),
}

struct World<'a> {
    s: &'a Scenario,
    rng: SmallRng,
    now: f64,
    end: f64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    calls: HashMap<u64, Call>,
    next_call: u64,
    acd: Acd,
    pacer: CampaignPacer,
    visible: AbandonFigures,
    r: SeedResult,
    busy_time: f64,
    /// Talk start and wrap-up length of connected calls.
    wrap_of: HashMap<u64, (f64, f64)>,
    ring_human: LogNormal<f64>,
    ring_machine: LogNormal<f64>,
    talk: LogNormal<f64>,
    wrap: Option<LogNormal<f64>>,
}

fn secs(t: f64) -> Duration {
    Duration::from_secs_f64(t.max(0.0))
}

/// One seed of a scenario under a policy.
pub fn run_seed(s: &Scenario, policy: Policy, seed: u64) -> SeedResult {
    let lognormal_sd = |m: f64, sd: f64| LogNormal::from_mean_cv(m, sd / m).expect("validated lognormal");
    let t = &s.timing;
    let sigma = t.talk.sigma_log;
    let mut w = World {
        s,
        rng: SmallRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed),
        now: 0.0,
        end: s.hours * 3600.0,
        queue: BinaryHeap::new(),
        seq: 0,
        calls: HashMap::new(),
        next_call: 0,
        acd: Acd::new(),
        pacer: CampaignPacer::new(settings_for(s, policy)),
        visible: AbandonFigures::default(),
        r: SeedResult::default(),
        busy_time: 0.0,
        wrap_of: HashMap::new(),
        ring_human: lognormal_sd(t.ring_human.mean, t.ring_human.sd),
        ring_machine: lognormal_sd(t.ring_machine.mean, t.ring_machine.sd),
        talk: LogNormal::new(t.talk.mean.ln() - sigma * sigma / 2.0, sigma).expect("validated talk"),
        wrap: (t.wrap.cv > 0.0).then(|| LogNormal::from_mean_cv(t.wrap.mean, t.wrap.cv).expect("validated wrap")),
    };
    for id in 0..u64::from(s.agents) {
        w.acd.add_agent(AgentSpec::new(id));
        w.acd.login(id, Duration::ZERO).expect("new agent logs in");
        w.acd.set_ready(id, Duration::ZERO).expect("logged-in agent becomes ready");
    }
    w.at(0.0, Ev::Tick);
    while let Some(Reverse((t_ns, _, ev))) = w.queue.pop() {
        w.now = t_ns as f64 / 1e9;
        if w.now > w.end {
            break;
        }
        w.handle(ev);
    }
    let total = f64::from(s.agents) * w.end;
    w.r.occupancy = w.busy_time / total;
    w.r.abandon_rate = if w.r.humans == 0 { 0.0 } else { w.r.abandoned as f64 / w.r.humans as f64 };
    w.r.idle_wait_per_connect_s = if w.r.connects == 0 { 0.0 } else { (total - w.busy_time) / w.r.connects as f64 };
    w.r
}

impl World<'_> {
    fn at(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(((t * 1e9) as u64, self.seq, ev)));
    }

    fn ring(&mut self, human: bool) -> f64 {
        let timeout = self.s.timing.no_answer_timeout;
        for _ in 0..100 {
            let r = if human { self.ring_human.sample(&mut self.rng) } else { self.ring_machine.sample(&mut self.rng) };
            if r < timeout {
                return r;
            }
        }
        timeout * 0.99
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick => self.tick(),
            Ev::Answer(id) => self.answer(id),
            Ev::Verdict(id) => self.verdict(id),
            Ev::Resolve(id) => {
                if let Some(c) = self.calls.remove(&id) {
                    let after_s = self.now - c.dialled;
                    self.pacer.on_outcome(if c.kind == Kind::Busy { Outcome::Failed { after_s } } else { Outcome::NoAnswer { after_s } });
                }
            }
            Ev::ConnectDeadline(id) => {
                if self.calls.get(&id).is_some_and(|c| c.stage == CallStage::Waiting) {
                    let c = self.calls.remove(&id).expect("present");
                    self.acd.withdraw(id, secs(self.now)).expect("waiting call is queued");
                    self.r.abandoned += 1;
                    if !c.false_negative {
                        self.visible.abandoned += 1;
                        self.pacer.on_human_result(true);
                    }
                }
            }
            Ev::TalkEnd(id) => {
                let (start, wrap) = self.wrap_of.get(&id).copied().unwrap_or((self.now, 0.0));
                self.pacer.on_talk(self.now - start);
                self.acd.hangup(id, secs(wrap), secs(self.now)).expect("connected call has an agent");
                self.at(self.now + wrap, Ev::WrapEnd(id));
            }
            Ev::WrapEnd(id) => {
                if let Some((_, wrap)) = self.wrap_of.remove(&id) {
                    self.pacer.on_wrap(wrap);
                }
            }
        }
        // Wrap-ups that ended free agents; waiting calls get them.
        for a in self.acd.poll(secs(self.now)) {
            self.connect(a.call);
        }
        // Agents' state history is not part of a simulation's figures.
        self.acd.drain_changes();
    }

    fn tick(&mut self) {
        let now = secs(self.now);
        let view = self.acd.view_at(None, Some(now));
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        let calls: Vec<CallInFlight> = ids
            .iter()
            .map(|id| &self.calls[id])
            .map(|c| CallInFlight { age_s: self.now - c.dialled, stage: c.stage, stage_age_s: self.now - c.stage_since })
            .collect();
        let input = PacingInput {
            now,
            agents: &view,
            calls: &calls,
            since_start: self.visible,
            rolling_30d: self.visible,
            trunk_capacity: u32::MAX,
        };
        let d = self.pacer.decide(&input);
        // Late rings the engine advises hanging up: whatever they would have become, they
        // end now (a person among them is never reached, and never abandoned).
        let hang_up: Vec<u64> = self.pacer.hang_ups().iter().map(|&i| ids[i]).collect();
        for id in hang_up {
            if let Some(c) = self.calls.remove(&id) {
                self.r.hung_up += 1;
                self.pacer.on_outcome(Outcome::HungUp { after_s: self.now - c.dialled });
            }
        }
        for _ in 0..d.dial {
            self.dial();
        }
        self.at(d.next_at.as_secs_f64(), Ev::Tick);
    }

    fn dial(&mut self) {
        self.r.dials += 1;
        self.next_call += 1;
        let id = self.next_call;
        let o = &self.s.outcomes;
        let ph = self.s.human_rate(self.now / 3600.0);
        let u: f64 = self.rng.random();
        let kind = if u < ph {
            Kind::Human
        } else if u < ph + o.machine {
            Kind::Machine
        } else if u < ph + o.machine + o.busy {
            Kind::Busy
        } else {
            Kind::NoAnswer
        };
        let t = &self.s.timing;
        let (fp, fnr) = (self.s.amd.false_positive, self.s.amd.false_negative);
        let false_positive = kind == Kind::Human && self.rng.random::<f64>() < fp;
        let false_negative = kind == Kind::Machine && self.rng.random::<f64>() < fnr;
        match kind {
            Kind::Human | Kind::Machine => {
                let ring = self.ring(kind == Kind::Human);
                self.at(self.now + ring, Ev::Answer(id));
            }
            Kind::Busy => self.at(self.now + t.busy_after, Ev::Resolve(id)),
            Kind::NoAnswer => self.at(self.now + t.no_answer_timeout, Ev::Resolve(id)),
        }
        let call = Call { dialled: self.now, kind, stage: CallStage::Ringing, stage_since: self.now, answered: 0.0, false_positive, false_negative };
        self.calls.insert(id, call);
    }

    fn answer(&mut self, id: u64) {
        let t = &self.s.timing;
        let Some(c) = self.calls.get_mut(&id) else { return };
        c.stage = CallStage::Detecting;
        c.stage_since = self.now;
        c.answered = self.now;
        // Detection answers "person" after the human delay, "machine" after the machine delay.
        let says_person = (c.kind == Kind::Human && !c.false_positive) || c.false_negative;
        let delay = if says_person { t.amd_human_verdict } else { t.amd_machine_verdict };
        self.at(self.now + delay, Ev::Verdict(id));
    }

    fn verdict(&mut self, id: u64) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        let ring_s = c.answered - c.dialled;
        let verdict_s = self.now - c.answered;
        if c.kind == Kind::Human {
            self.r.humans += 1;
        }
        let says_person = (c.kind == Kind::Human && !c.false_positive) || c.false_negative;
        if !says_person {
            let c = self.calls.remove(&id).expect("present");
            if c.false_positive {
                // A person hung up on by detection: abandoned, though the dialer never knows.
                self.r.abandoned += 1;
            }
            self.pacer.on_outcome(Outcome::Machine { ring_s, verdict_s });
            return;
        }
        c.stage = CallStage::Waiting;
        c.stage_since = self.now;
        self.pacer.on_outcome(Outcome::Human { ring_s, verdict_s });
        self.visible.human += 1;
        match self.acd.offer(CallOffer::new(id), secs(self.now)) {
            Routed::Agent(_) => self.connect(id),
            Routed::Queued => self.at(self.now + self.s.timing.connect_limit, Ev::ConnectDeadline(id)),
        }
    }

    /// The call's reserved agent takes it: talk, then wrap-up.
    fn connect(&mut self, id: u64) {
        let Some(c) = self.calls.remove(&id) else { return };
        self.acd.connected(id, secs(self.now)).expect("reserved agent connects");
        self.r.connects += 1;
        if !c.false_negative {
            self.pacer.on_human_result(false);
        }
        let talk = if c.false_negative { self.s.amd.machine_talk } else { self.talk.sample(&mut self.rng) };
        let wrap = match &self.wrap {
            Some(d) => d.sample(&mut self.rng),
            None => self.s.timing.wrap.mean,
        };
        self.busy_time += (self.now + talk + wrap).min(self.end) - self.now;
        self.wrap_of.insert(id, (self.now, wrap));
        self.at(self.now + talk, Ev::TalkEnd(id));
    }
}

#[cfg(test)]
mod tests;
