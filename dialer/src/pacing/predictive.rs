//! Pacer's predictive policy.
//!
//! **What it learns** (per campaign, recency-weighted so it follows drift): the shares of
//! dials answered by a person, by a machine, failing, or ringing out; the ring-time
//! distributions of each; how long detection takes; talk and wrap-up time distributions.
//!
//! **What it predicts**, on a grid of the next few seconds:
//! - *supply*: agents free by time t: the ready ones, plus each agent in a call or wrap-up
//!   with the probability that it ends by t *given how long it has already lasted*;
//! - *demand*: people waiting for an agent by time t: those waiting now, plus each call in
//!   flight with the probability that it turns into a person by t *given its age and stage*
//!   (a call that has rung 20 s is unlikely to be answered; one 0.5 s into detection that
//!   is still undecided is probably a person).
//!
//! **How it dials**: it adds calls one at a time while the next call's risk — the chance
//! that, if a person answers it, no agent is free within the connect limit — stays under a
//! margin θ. Supply and demand are sums of independent Bernoulli variables, taken as normal.
//!
//! **The margin** follows the abandon budget: θ rises while the campaign abandons less than
//! its aim (80% of the target) and falls after each abandon; it shrinks further as the
//! remaining budget nears zero. The engine ([`super::CampaignPacer`]) stops all risky
//! dialling when one more abandon would cross the target.

use super::stats::{DecayingHistogram, DecayingRate, lognormal_cdf, normal_cdf};
use super::{CallStage, Explanation, Outcome, PacingInput, PacingSettings, Reason};

/// Grid step, seconds.
const DT: f64 = 0.5;
/// Share of the target the controller aims for, leaving room for chance.
const AIM: f64 = 0.8;
/// Controller gain per human outcome (log-space).
const GAIN: f64 = 0.08;
/// Dials seen before the learned figures are trusted.
const LEARNING_DIALS: u64 = 20;

pub struct Predictive {
    target: f64,
    connect_limit: f64,
    ring_timeout: f64,
    p_human: DecayingRate,
    p_machine: DecayingRate,
    p_failed: DecayingRate,
    human_ring: DecayingHistogram,
    machine_ring: DecayingHistogram,
    failed_after: DecayingHistogram,
    human_verdict: DecayingHistogram,
    machine_verdict: DecayingHistogram,
    /// Dial → human verdict, for calls placed now.
    human_total: DecayingHistogram,
    talk: DecayingHistogram,
    wrap: DecayingHistogram,
    resolved: u64,
    log_theta: f64,
    expected_abandons: f64,
    // Scratch grids, reused between decisions.
    supply_mu: Vec<f64>,
    supply_var: Vec<f64>,
    demand_mu: Vec<f64>,
    demand_var: Vec<f64>,
    new_cdf: Vec<f64>,
}

impl Predictive {
    pub fn new(s: &PacingSettings) -> Predictive {
        let ring_max = s.ring_timeout_s + 1.0;
        Predictive {
            target: s.abandon_target,
            connect_limit: s.connect_limit_s,
            ring_timeout: s.ring_timeout_s,
            p_human: DecayingRate::new(0.2, 20.0, 400.0),
            p_machine: DecayingRate::new(0.15, 20.0, 400.0),
            p_failed: DecayingRate::new(0.05, 20.0, 400.0),
            human_ring: DecayingHistogram::new(DT, ring_max, 300.0).with_prior(5.0, lognormal_cdf(10.0, 5.0)),
            machine_ring: DecayingHistogram::new(DT, ring_max, 300.0).with_prior(5.0, lognormal_cdf(12.0, 5.0)),
            failed_after: DecayingHistogram::new(DT, ring_max, 300.0).with_prior(5.0, lognormal_cdf(4.0, 2.0)),
            human_verdict: DecayingHistogram::new(0.1, 10.0, 300.0).with_prior(5.0, lognormal_cdf(1.0, 0.3)),
            machine_verdict: DecayingHistogram::new(0.1, 10.0, 300.0).with_prior(5.0, lognormal_cdf(3.0, 1.0)),
            human_total: DecayingHistogram::new(DT, ring_max + 10.0, 300.0).with_prior(5.0, lognormal_cdf(11.0, 5.0)),
            talk: DecayingHistogram::new(1.0, 3600.0, 300.0).with_prior(5.0, lognormal_cdf(120.0, 90.0)),
            wrap: DecayingHistogram::new(0.5, 600.0, 200.0).with_prior(3.0, lognormal_cdf(10.0, 3.0)),
            resolved: 0,
            log_theta: 0.05f64.ln(),
            expected_abandons: 0.0,
            supply_mu: Vec::new(),
            supply_var: Vec::new(),
            demand_mu: Vec::new(),
            demand_var: Vec::new(),
            new_cdf: Vec::new(),
        }
    }

    pub fn on_outcome(&mut self, o: Outcome) {
        self.resolved += 1;
        let (h, m, f) = match o {
            Outcome::Human { ring_s, verdict_s } => {
                self.human_ring.add(ring_s);
                self.human_verdict.add(verdict_s);
                self.human_total.add(ring_s + verdict_s);
                (true, false, false)
            }
            Outcome::Machine { ring_s, verdict_s } => {
                self.machine_ring.add(ring_s);
                self.machine_verdict.add(verdict_s);
                (false, true, false)
            }
            Outcome::Failed { after_s } => {
                self.failed_after.add(after_s);
                (false, false, true)
            }
            Outcome::NoAnswer { .. } => (false, false, false),
        };
        self.p_human.add(h);
        self.p_machine.add(m);
        self.p_failed.add(f);
    }

    pub fn on_human_result(&mut self, abandoned: bool) {
        let aim = self.target * AIM;
        self.log_theta += GAIN * (aim - if abandoned { 1.0 } else { 0.0 });
        self.log_theta = self.log_theta.clamp(0.001f64.ln(), 0.6f64.ln());
    }

    pub fn on_talk(&mut self, talk_s: f64) {
        self.talk.add(talk_s);
    }

    pub fn on_wrap(&mut self, wrap_s: f64) {
        self.wrap.add(wrap_s);
    }

    /// Abandons expected among the calls now in flight (from the last decision).
    pub fn expected_abandons_in_flight(&self) -> f64 {
        self.expected_abandons
    }

    fn refresh(&mut self) {
        for h in [
            &mut self.human_ring,
            &mut self.machine_ring,
            &mut self.failed_after,
            &mut self.human_verdict,
            &mut self.machine_verdict,
            &mut self.human_total,
            &mut self.talk,
            &mut self.wrap,
        ] {
            h.refresh();
        }
    }

    /// Calls to start now, and why; fills in the estimates of `e`.
    pub fn decide(&mut self, input: &PacingInput, budget: f64, e: &mut Explanation) -> (u32, Reason) {
        let a = input.agents;
        let in_flight = input.calls.len() as u32;
        if self.resolved < LEARNING_DIALS {
            return (a.ready.saturating_sub(in_flight), Reason::Learning);
        }
        self.refresh();
        let (ph, pm, pf) = (self.p_human.value(), self.p_machine.value(), self.p_failed.value());
        let pna = (1.0 - ph - pm - pf).max(0.0);
        let horizon = self.ring_timeout + self.human_verdict.mean() + 2.0;
        let n = (horizon / DT).ceil() as usize + 1;
        let shift = (self.connect_limit / DT).round() as usize;
        let ns = n + shift;

        // Supply: agents free by each grid time.
        self.supply_mu.clear();
        self.supply_mu.resize(ns, f64::from(a.ready));
        self.supply_var.clear();
        self.supply_var.resize(ns, 0.0);
        let wrap_mean = self.wrap.mean();
        for (list, in_wrap) in [(&a.in_call, false), (&a.wrap_up, true)] {
            for &elapsed in list {
                for j in 0..ns {
                    let t = j as f64 * DT;
                    let p = if in_wrap {
                        self.wrap.ends_within(elapsed, t)
                    } else if t > wrap_mean {
                        self.talk.ends_within(elapsed, t - wrap_mean)
                    } else {
                        0.0
                    };
                    self.supply_mu[j] += p;
                    self.supply_var[j] += p * (1.0 - p);
                }
            }
        }

        // Demand: people needing an agent by each grid time, from the calls in flight.
        self.demand_mu.clear();
        self.demand_mu.resize(n, 0.0);
        self.demand_var.clear();
        self.demand_var.resize(n, 0.0);
        let verdict_mean = self.human_verdict.mean();
        let mut answers_in_flight = 0.0;
        let mut waiting = 0.0;
        for c in input.calls {
            match c.stage {
                CallStage::Waiting => {
                    waiting += 1.0;
                    self.demand_mu.iter_mut().for_each(|d| *d += 1.0);
                    answers_in_flight += 1.0;
                }
                CallStage::Detecting => {
                    let sh = ph * self.human_verdict.survival(c.stage_age_s);
                    let sm = pm * self.machine_verdict.survival(c.stage_age_s);
                    if sh + sm <= 0.0 {
                        continue;
                    }
                    let p_person = sh / (sh + sm);
                    answers_in_flight += p_person;
                    for j in 0..n {
                        let q = p_person * self.human_verdict.ends_within(c.stage_age_s, j as f64 * DT);
                        self.demand_mu[j] += q;
                        self.demand_var[j] += q * (1.0 - q);
                    }
                }
                CallStage::Ringing => {
                    let age = c.age_s;
                    let still = ph * self.human_ring.survival(age)
                        + pm * self.machine_ring.survival(age)
                        + pf * self.failed_after.survival(age)
                        + if age < self.ring_timeout { pna } else { 0.0 };
                    if still <= 1e-9 {
                        continue;
                    }
                    let base = self.human_ring.cdf(age);
                    answers_in_flight += ph * self.human_ring.survival(age) / still;
                    for j in 0..n {
                        let t = j as f64 * DT - verdict_mean;
                        if t <= 0.0 {
                            continue;
                        }
                        let q = (ph * (self.human_ring.cdf(age + t) - base) / still).clamp(0.0, 1.0);
                        self.demand_mu[j] += q;
                        self.demand_var[j] += q * (1.0 - q);
                    }
                }
            }
        }

        // A call placed now becomes a person at each grid time with this distribution.
        self.new_cdf.clear();
        self.new_cdf.extend((0..n).map(|j| self.human_total.cdf(j as f64 * DT)));

        let mut theta = self.log_theta.exp();
        if budget < 5.0 {
            theta *= (budget / 5.0).max(0.0);
        }
        let risk = |k: u32, this: &Self| -> f64 {
            let others = f64::from(k) * ph;
            let mut total = 0.0;
            let mut prev = 0.0;
            for j in 0..n {
                let f = this.new_cdf[j];
                let w = f - prev;
                prev = f;
                if w <= 1e-9 {
                    continue;
                }
                let extra = others * f;
                let margin = this.supply_mu[j + shift] - this.demand_mu[j] - extra;
                let var = this.supply_var[j + shift] + this.demand_var[j] + extra * (1.0 - ph * f) + 0.25;
                total += w * normal_cdf((0.5 - margin) / var.sqrt());
            }
            total / prev.max(1e-9)
        };
        let cap = (4.0 * f64::from(a.logged_in.max(1))) as u32 + 1;
        let mut dial = 0;
        while dial < cap && risk(dial, self) <= theta {
            dial += 1;
        }

        // Abandons expected among people already waiting or about to answer.
        let ten = ((10.0 / DT) as usize).min(ns - 1);
        self.expected_abandons = waiting * 0.5 + (answers_in_flight - waiting).max(0.0) * theta;
        e.answer_rate = ph;
        e.machine_rate = pm;
        e.expected_agents_free_10s = self.supply_mu[ten];
        e.expected_answers_in_flight = answers_in_flight;
        e.margin = theta;
        (dial, Reason::Predicted)
    }
}
