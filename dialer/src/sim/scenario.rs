//! Scenario files for `pacer simulate` (the format of BENCHMARKS.md §1).

use serde::{Deserialize, Serialize};

/// A simulated call centre: agents, the carrier's outcome odds and the timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub agents: u32,
    pub hours: f64,
    pub outcomes: Outcomes,
    pub timing: Timing,
    #[serde(default)]
    pub amd: Amd,
    #[serde(default)]
    pub drift: Drift,
    /// Optional pacing settings for the campaign under test.
    #[serde(default)]
    pub pacing: ScenarioPacing,
}

/// Probability of each outcome per dial; the rest ring out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcomes {
    pub human: f64,
    pub machine: f64,
    pub busy: f64,
}

/// Mean and standard deviation of a lognormal, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

/// Mean (seconds) and σ of the log of a lognormal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanSigmaLog {
    pub mean: f64,
    pub sigma_log: f64,
}

/// Mean (seconds) and coefficient of variation; `cv = 0` means fixed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanCv {
    pub mean: f64,
    pub cv: f64,
}

/// Timings, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    pub ring_human: MeanSd,
    pub ring_machine: MeanSd,
    pub busy_after: f64,
    pub no_answer_timeout: f64,
    pub amd_human_verdict: f64,
    pub amd_machine_verdict: f64,
    pub connect_limit: f64,
    pub talk: MeanSigmaLog,
    pub wrap: MeanCv,
}

/// Detection errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Amd {
    /// Share of people taken for machines: hung up on, counted as abandoned.
    pub false_positive: f64,
    /// Share of machines routed to an agent.
    pub false_negative: f64,
    /// Agent time spent on such a machine.
    pub machine_talk: f64,
}

impl Default for Amd {
    fn default() -> Self {
        Amd { false_positive: 0.0, false_negative: 0.0, machine_talk: 8.0 }
    }
}

/// The human rate over the day, piecewise linear between `[hour, rate]` points.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Drift {
    pub human: Vec<[f64; 2]>,
}

/// Pacing settings of the simulated campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScenarioPacing {
    pub abandon_target: f64,
    pub max_lines_per_agent: f64,
    pub min_agents: u32,
    /// Calls per ready agent for the power policy.
    pub power_ratio: f64,
    /// Largest dial level of the adaptive baseline.
    pub adaptive_max_level: f64,
    /// Seconds after which predictive may hang up a ringing call (15 at least; at
    /// `no_answer_timeout` or more, every call rings out).
    pub min_ring: f64,
}

impl Default for ScenarioPacing {
    fn default() -> Self {
        ScenarioPacing { abandon_target: 0.03, max_lines_per_agent: 5.0, min_agents: 3, power_ratio: 2.0, adaptive_max_level: 3.0, min_ring: 15.0 }
    }
}

impl Scenario {
    /// Parse and check a scenario; every problem is reported as `key: reason`.
    pub fn from_toml(text: &str) -> Result<Scenario, Vec<String>> {
        let s: Scenario = toml::from_str(text).map_err(|e| vec![e.to_string().trim().to_string()])?;
        let problems = s.problems();
        if problems.is_empty() { Ok(s) } else { Err(problems) }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut check = |ok: bool, key: &str, reason: &str| {
            if !ok {
                p.push(format!("{key}: {reason}"));
            }
        };
        let prob = |x: f64| (0.0..=1.0).contains(&x);
        check(self.agents > 0, "agents", "must be at least 1");
        check(self.hours > 0.0 && self.hours <= 24.0 * 31.0, "hours", "must be between 0 and 744");
        let o = &self.outcomes;
        check(prob(o.human), "outcomes.human", "must be a probability (0..1)");
        check(prob(o.machine), "outcomes.machine", "must be a probability (0..1)");
        check(prob(o.busy), "outcomes.busy", "must be a probability (0..1)");
        check(o.human + o.machine + o.busy <= 1.0 + 1e-9, "outcomes", "human + machine + busy must not exceed 1");
        let t = &self.timing;
        for (key, v) in [
            ("timing.ring_human.mean", t.ring_human.mean),
            ("timing.ring_machine.mean", t.ring_machine.mean),
            ("timing.busy_after", t.busy_after),
            ("timing.no_answer_timeout", t.no_answer_timeout),
            ("timing.connect_limit", t.connect_limit),
            ("timing.talk.mean", t.talk.mean),
        ] {
            check(v > 0.0 && v.is_finite(), key, "must be greater than 0");
        }
        for (key, v) in [
            ("timing.ring_human.sd", t.ring_human.sd),
            ("timing.ring_machine.sd", t.ring_machine.sd),
            ("timing.amd_human_verdict", t.amd_human_verdict),
            ("timing.amd_machine_verdict", t.amd_machine_verdict),
            ("timing.talk.sigma_log", t.talk.sigma_log),
            ("timing.wrap.mean", t.wrap.mean),
            ("timing.wrap.cv", t.wrap.cv),
        ] {
            check(v >= 0.0 && v.is_finite(), key, "must not be negative");
        }
        check(t.ring_human.mean < t.no_answer_timeout, "timing.ring_human.mean", "must be shorter than no_answer_timeout");
        check(t.ring_machine.mean < t.no_answer_timeout, "timing.ring_machine.mean", "must be shorter than no_answer_timeout");
        check(prob(self.amd.false_positive), "amd.false_positive", "must be a probability (0..1)");
        check(prob(self.amd.false_negative), "amd.false_negative", "must be a probability (0..1)");
        check(self.amd.machine_talk >= 0.0, "amd.machine_talk", "must not be negative");
        for (i, [h, r]) in self.drift.human.iter().enumerate() {
            check(*h >= 0.0 && prob(*r), &format!("drift.human[{i}]"), "needs an hour ≥ 0 and a probability");
            if i > 0 {
                check(*h > self.drift.human[i - 1][0], &format!("drift.human[{i}]"), "hours must increase");
            }
        }
        let pc = &self.pacing;
        check(pc.abandon_target > 0.0 && pc.abandon_target <= 0.03, "pacing.abandon_target", "must be in (0, 0.03]");
        check(pc.max_lines_per_agent >= 1.0, "pacing.max_lines_per_agent", "must be at least 1");
        check(pc.power_ratio >= 1.0, "pacing.power_ratio", "must be at least 1");
        check(pc.adaptive_max_level >= 1.0, "pacing.adaptive_max_level", "must be at least 1");
        check(pc.min_ring >= 15.0, "pacing.min_ring", "must be at least 15 (seconds a call rings before it may be hung up)");
        p
    }

    /// The human rate at `hour`.
    pub fn human_rate(&self, hour: f64) -> f64 {
        let pts = &self.drift.human;
        match pts.len() {
            0 => self.outcomes.human,
            1 => pts[0][1],
            _ => {
                if hour <= pts[0][0] {
                    return pts[0][1];
                }
                for w in pts.windows(2) {
                    let ([h0, r0], [h1, r1]) = (w[0], w[1]);
                    if hour <= h1 {
                        return r0 + (r1 - r0) * (hour - h0) / (h1 - h0);
                    }
                }
                pts[pts.len() - 1][1]
            }
        }
    }
}
