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
//! **The margin** follows the abandon budget (abandons still allowed within the target):
//! θ = θᵢ · exp(k · (budget − reserve) / reserve). The proportional part makes a campaign far
//! under its target dial harder and one near it back off before it crosses; the integral
//! part θᵢ learns, from each person's outcome, the margin at which this campaign abandons
//! exactly its target. When one more abandon would cross the target, the engine
//! ([`super::CampaignPacer`]) dials one call per ready agent plus only the calls whose risk
//! is under [`super::SPENT_MAX_RISK`] (0.1%).
//!
//! **Hanging up late rings**: a call still ringing after `min_ring_s` (15 s at least) has
//! its own risk, the same quantity over *its* answer-time distribution (given its age).
//! Above [`HANG_UP_FACTOR`] × θ it is hung up: a late answer is the hardest to place
//! (its time is spread over the rest of the ring timeout), so shedding the risky ones
//! saves abandons that buy earlier, better-timed calls. On M it is worth about 0.4 point of
//! occupancy at the same abandon rate; its outcome is censored
//! ([`super::Outcome::HungUp`]) and counted by its posterior.

use super::risk;
use super::stats::{DecayingHistogram, DecayingRate, lognormal_cdf};
use super::{CallStage, Explanation, Outcome, PacingInput, PacingSettings, Reason};

/// Grid step of the forecast, seconds. A quarter second (rather than half) places each
/// person's answer and each agent's release closer to their true times: on M it is worth
/// about 0.1 point of occupancy, at twice the arithmetic.
const DT: f64 = 0.25;
/// Bin width of the ring-time histograms, seconds.
const BIN: f64 = 0.5;
/// Share of the target the integral part aims for. The proportional part and the engine's
/// hard stop keep each day under the target; at 0.85 the integral left a tenth of a point
/// of the budget unspent on every scenario.
const AIM: f64 = 0.95;
/// Integral gain per person's outcome (log-space).
const GAIN: f64 = 0.05;
/// Abandons the controller keeps in reserve within the budget.
const RESERVE: f64 = 8.0;
/// Proportional gain on the budget's distance from the reserve.
const KP: f64 = 1.5;
/// Time constant of the dial-rate estimate, seconds.
const RATE_TAU: f64 = 30.0;
/// Share of the recent dial rate counted as calls still to be dialled that may answer before
/// a call placed now. The engine dials less exactly when agents are scarce, so counting
/// the full recent rate overstated that competition and held back calls that were safe.
const FUTURE_SHARE: f64 = 0.25;
/// Half-life of the talk-time histogram, in calls. Whether a call 5 minutes old ends in
/// the next 20 s is decided by the long tail; with a 300-call half-life that tail had too
/// few calls to be estimated well.
const TALK_HALF_LIFE: f64 = 2000.0;
/// A call ringing past `min_ring_s` is hung up when its risk exceeds this many margins. The
/// risk of a late ring is compared with that of a new call, but hanging up also loses the
/// person it may be: on M, 1× hung up too many (91.35% occupancy), 2–3× did best (91.5–91.6%),
/// 6× and more left most late rings up (91.2–91.3%).
pub const HANG_UP_FACTOR: f64 = 3.0;
/// Dials seen before the learned figures are trusted.
const LEARNING_DIALS: u64 = 20;

/// One grid time at which a new call may turn into a person.
struct RiskPoint {
    /// Probability (given a person) that the verdict falls at this time.
    weight: f64,
    /// Probability (given a person) that the verdict falls by this time.
    new_cdf: f64,
    /// Mean and variance of ready − waiting + supply − demand (normal approximation).
    mean: f64,
    var: f64,
    /// Index and offset of the exact CDF of supply − demand, for small teams.
    cdf: Option<(usize, i64)>,
    /// Grid index.
    j: usize,
}

pub struct Predictive {
    target: f64,
    connect_limit: f64,
    ring_timeout: f64,
    min_ring: f64,
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
    /// Recent dials, decayed with `RATE_TAU`, and when they were last decayed.
    recent_dials: f64,
    rate_at: f64,
    log_theta: f64,
    expected_abandons: f64,
    // Scratch space, reused between decisions.
    supply_rows: Vec<f64>,
    demand_rows: Vec<f64>,
    /// Expected people from calls not dialled yet, by grid time.
    future: Vec<f64>,
    pmf_tmp: Vec<f64>,
    new_cdf: Vec<f64>,
    points: Vec<RiskPoint>,
    cdfs: Vec<Vec<f64>>,
    pmf_s: Vec<f64>,
    pmf_d: Vec<f64>,
    /// Ringing calls past `min_ring` (index in the input, demand row), and those to hang up.
    late: Vec<(usize, usize)>,
    hang_up: Vec<usize>,
    risk0: Vec<f64>,
}

impl Predictive {
    pub fn new(s: &PacingSettings) -> Predictive {
        let ring_max = s.ring_timeout_s + 1.0;
        Predictive {
            target: s.abandon_target,
            connect_limit: s.connect_limit_s,
            ring_timeout: s.ring_timeout_s,
            min_ring: s.min_ring_s.max(15.0),
            p_human: DecayingRate::new(0.2, 20.0, 1200.0),
            p_machine: DecayingRate::new(0.15, 20.0, 1200.0),
            p_failed: DecayingRate::new(0.05, 20.0, 1200.0),
            human_ring: DecayingHistogram::new(BIN, ring_max, 300.0).with_prior(5.0, lognormal_cdf(10.0, 5.0)),
            machine_ring: DecayingHistogram::new(BIN, ring_max, 300.0).with_prior(5.0, lognormal_cdf(12.0, 5.0)),
            failed_after: DecayingHistogram::new(BIN, ring_max, 300.0).with_prior(5.0, lognormal_cdf(4.0, 2.0)),
            human_verdict: DecayingHistogram::new(0.1, 10.0, 300.0).with_prior(5.0, lognormal_cdf(1.0, 0.3)),
            machine_verdict: DecayingHistogram::new(0.1, 10.0, 300.0).with_prior(5.0, lognormal_cdf(3.0, 1.0)),
            human_total: DecayingHistogram::new(BIN, ring_max + 10.0, 300.0).with_prior(5.0, lognormal_cdf(11.0, 5.0)),
            talk: DecayingHistogram::new(1.0, 3600.0, TALK_HALF_LIFE).with_prior(5.0, lognormal_cdf(120.0, 90.0)),
            wrap: DecayingHistogram::new(0.5, 600.0, 200.0).with_prior(3.0, lognormal_cdf(10.0, 3.0)),
            resolved: 0,
            recent_dials: 0.0,
            rate_at: 0.0,
            log_theta: 0.05f64.ln(),
            expected_abandons: 0.0,
            supply_rows: Vec::new(),
            demand_rows: Vec::new(),
            future: Vec::new(),
            pmf_tmp: Vec::new(),
            new_cdf: Vec::new(),
            points: Vec::new(),
            cdfs: Vec::new(),
            pmf_s: Vec::new(),
            pmf_d: Vec::new(),
            late: Vec::new(),
            hang_up: Vec::new(),
            risk0: Vec::new(),
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
            Outcome::HungUp { after_s } => {
                // Censored: it would have been each outcome with its posterior at that age.
                self.refresh();
                let (ph, pm, pf) = (self.p_human.value(), self.p_machine.value(), self.p_failed.value());
                let (sh, sm, sf) = (ph * self.human_ring.survival(after_s), pm * self.machine_ring.survival(after_s), pf * self.failed_after.survival(after_s));
                let still = sh + sm + sf + (1.0 - ph - pm - pf).max(0.0);
                if still > 1e-9 {
                    self.p_human.add_share(sh / still);
                    self.p_machine.add_share(sm / still);
                    self.p_failed.add_share(sf / still);
                }
                return;
            }
        };
        self.p_human.add(h);
        self.p_machine.add(m);
        self.p_failed.add(f);
    }

    /// Calls the last decision advises hanging up (indices into its input's calls).
    pub fn hang_ups(&self) -> &[usize] {
        &self.hang_up
    }

    pub fn on_human_result(&mut self, abandoned: bool) {
        self.log_theta += GAIN * (AIM * self.target - if abandoned { 1.0 } else { 0.0 });
        self.log_theta = self.log_theta.clamp(0.005f64.ln(), 0.5f64.ln());
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

    /// Fills `hang_up` with the late rings whose risk, if a person answers, is over `limit`.
    /// `base` is ready − waiting agents now; `n` the forecast's length.
    fn advise_hang_ups(&mut self, base: f64, n: usize, limit: f64) {
        if self.late.is_empty() {
            return;
        }
        // The risk of a person appearing at each grid time (with no new call placed).
        self.risk0.clear();
        for p in &self.points {
            self.risk0.push(match p.cdf {
                Some((idx, offset)) => risk::cdf_at(&self.cdfs[idx], offset, (-base).floor() as i64),
                None => risk::normal_risk(p.mean, p.var),
            });
        }
        for &(call, row) in &self.late {
            // The row is this call's CDF of becoming a person; its steps weigh the risks.
            let r = &self.demand_rows[row * n..(row + 1) * n];
            let (mut num, mut den) = (0.0, 0.0);
            for (p, r0) in self.points.iter().zip(&self.risk0) {
                let q = r[p.j] - if p.j > 0 { r[p.j - 1] } else { 0.0 };
                num += q * r0;
                den += q;
            }
            // A call that can no longer become a person costs nothing to hang up.
            if den <= 1e-9 || num / den > limit {
                self.hang_up.push(call);
            }
        }
    }

    /// Calls to start now, and why; fills in the estimates of `e`. With `max_risk`, the margin
    /// is that risk instead of the one the budget gives.
    pub fn decide(&mut self, input: &PacingInput, budget: f64, max_risk: Option<f64>, e: &mut Explanation) -> (u32, Reason) {
        let a = input.agents;
        let in_flight = input.calls.len() as u32;
        self.hang_up.clear();
        self.late.clear();
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

        // Supply: agents free by each grid time, one row of probabilities per busy agent.
        let wrap_mean = self.wrap.mean();
        let ready = f64::from(a.ready);
        self.supply_rows.clear();
        for (list, in_wrap) in [(&a.in_call, false), (&a.wrap_up, true)] {
            for &elapsed in list {
                for j in 0..ns {
                    let t = j as f64 * DT;
                    self.supply_rows.push(if in_wrap {
                        self.wrap.ends_within(elapsed, t)
                    } else if t > wrap_mean {
                        self.talk.ends_within(elapsed, t - wrap_mean)
                    } else {
                        0.0
                    });
                }
            }
        }

        // Demand: people needing an agent by each grid time, one row per call in flight.
        let verdict_mean = self.human_verdict.mean();
        let mut answers_in_flight = 0.0;
        let mut waiting = 0.0;
        self.demand_rows.clear();
        for (i, c) in input.calls.iter().enumerate() {
            match c.stage {
                CallStage::Waiting => {
                    waiting += 1.0;
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
                        self.demand_rows.push(p_person * self.human_verdict.ends_within(c.stage_age_s, j as f64 * DT));
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
                    if age >= self.min_ring && self.min_ring < self.ring_timeout {
                        self.late.push((i, self.demand_rows.len() / n));
                    }
                    answers_in_flight += ph * self.human_ring.survival(age) / still;
                    for j in 0..n {
                        let t = j as f64 * DT - verdict_mean;
                        let q = if t <= 0.0 { 0.0 } else { ph * (self.human_ring.cdf(age + t) - base) / still };
                        self.demand_rows.push(q.clamp(0.0, 1.0));
                    }
                }
            }
        }
        // Calls this campaign will dial in the coming seconds may answer before a call placed
        // now and take its agent: count them at the recent dial rate.
        let now_s = input.now.as_secs_f64();
        self.recent_dials *= (-(now_s - self.rate_at).max(0.0) / RATE_TAU).exp();
        self.rate_at = now_s;
        let dial_rate = self.recent_dials / RATE_TAU;
        // A call placed now becomes a person at each grid time with this distribution.
        self.new_cdf.clear();
        self.new_cdf.extend((0..n).map(|j| self.human_total.cdf(j as f64 * DT)));
        // Calls dialled u steps from now reach a person by grid time j with the CDF at
        // j − u: the sum over u is a prefix sum of the same CDF (linear, not quadratic).
        self.future.clear();
        let mut prefix = 0.0;
        for j in 0..n {
            self.future.push(prefix * DT * dial_rate * ph * FUTURE_SHARE);
            prefix += self.new_cdf[j];
        }
        let column_sums = |rows: &[f64], width: usize, j: usize| -> (f64, f64) {
            rows.chunks_exact(width).map(|r| r[j]).fold((0.0, 0.0), |(m, v), p| (m + p, v + p * (1.0 - p)))
        };

        let total_new = self.new_cdf[n - 1].max(1e-9);

        // Per grid time where a new call may turn into a person: the weight of that time,
        // and either the exact CDF of (supply − demand) or its mean and variance.
        self.points.clear();
        self.cdfs.clear();
        let (sv, dv) = (column_sums(&self.supply_rows, ns, ns - 1).1, column_sums(&self.demand_rows, n, n - 1).1 + self.future[n - 1]);
        let exact = sv + dv <= risk::EXACT_MAX_VARIANCE;
        let mut prev = 0.0;
        for j in 0..n {
            let w = self.new_cdf[j] - prev;
            prev = self.new_cdf[j];
            // Late rings may answer at any grid time, so all of them are needed then.
            if w < 1e-5 && self.late.is_empty() {
                continue;
            }
            let (sm, svar) = column_sums(&self.supply_rows, ns, j + shift);
            let (dm, dvar) = column_sums(&self.demand_rows, n, j);
            let (dm, dvar) = (dm + self.future[j], dvar + self.future[j]);
            let mut point = RiskPoint { weight: w / total_new, new_cdf: self.new_cdf[j], mean: ready - waiting + sm - dm, var: svar + dvar, cdf: None, j };
            if exact {
                risk::poisson_binomial(self.supply_rows.chunks_exact(ns).map(|r| r[j + shift]), &mut self.pmf_s);
                risk::poisson_binomial(self.demand_rows.chunks_exact(n).map(|r| r[j]), &mut self.pmf_d);
                risk::add_poisson(self.future[j], &mut self.pmf_d, &mut self.pmf_tmp);
                let mut cdf = Vec::new();
                let offset = risk::difference_cdf(&self.pmf_s, &self.pmf_d, &mut cdf);
                point.cdf = Some((self.cdfs.len(), offset));
                self.cdfs.push(cdf);
            }
            self.points.push(point);
        }

        let theta = max_risk.unwrap_or_else(|| (self.log_theta + KP * (budget - RESERVE) / RESERVE).exp().clamp(0.001, 0.6));
        // The risk that a person answering the (k+1)-th new call finds no agent in time.
        let base = ready - waiting;
        let mut binom = Vec::new();
        let mut risk_of = |k: u32, this: &Self| -> f64 {
            let mut total = 0.0;
            for p in &this.points {
                let pi = ph * p.new_cdf;
                total += p.weight
                    * match p.cdf {
                        Some((idx, offset)) => {
                            risk::binomial(k, pi, &mut binom);
                            // Abandoned when ready − waiting + S − D − B ≤ 0, i.e. S − D ≤ B − base.
                            binom
                                .iter()
                                .enumerate()
                                .map(|(b, pb)| pb * risk::cdf_at(&this.cdfs[idx], offset, (b as f64 - base).floor() as i64))
                                .sum::<f64>()
                        }
                        None => {
                            let extra = f64::from(k) * pi;
                            risk::normal_risk(p.mean - extra, p.var + extra * (1.0 - pi))
                        }
                    };
            }
            total
        };
        self.advise_hang_ups(ready - waiting, n, theta * HANG_UP_FACTOR);
        let cap = (4.0 * f64::from(a.logged_in.max(1))) as u32 + 1;
        let mut dial = 0;
        while dial < cap && risk_of(dial, self) <= theta {
            dial += 1;
        }

        self.recent_dials += f64::from(dial);
        // Abandons expected among people already waiting or about to answer.
        let ten = ((10.0 / DT) as usize).min(ns - 1);
        // (The next call's risk is θ at most; the calls before it carry less.)
        self.expected_abandons = waiting * 0.5 + (answers_in_flight - waiting).max(0.0) * theta * 0.5;
        e.answer_rate = ph;
        e.machine_rate = pm;
        e.expected_agents_free_10s = ready + column_sums(&self.supply_rows, ns, ten).0;
        e.expected_answers_in_flight = answers_in_flight;
        e.margin = theta;
        (dial, Reason::Predicted)
    }
}
