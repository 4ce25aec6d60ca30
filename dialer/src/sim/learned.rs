//! Scenarios learned from a campaign's own history, for `pacer simulate --from-campaign`:
//! a manager sees what a setting would give with *their* answer rates, ring times and
//! talk times before changing it live.

use super::scenario::{Amd, Drift, MeanCv, MeanSd, MeanSigmaLog, Outcomes, Scenario, ScenarioPacing, Timing};
use crate::store::{Cdr, CdrQuery, Store, StoreError};

/// Fewest attempts and human answers a learned scenario needs.
pub const MIN_ATTEMPTS: usize = 100;
pub const MIN_HUMANS: usize = 20;
/// Most recent attempts a learned scenario reads.
const MAX_ATTEMPTS: usize = 200_000;

/// Why no scenario could be learned.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "campaign {campaign}: not enough history to learn from ({attempts} attempts and {humans} human answers in the window; at least {MIN_ATTEMPTS} and {MIN_HUMANS} needed)"
    )]
    NotEnough { campaign: i64, attempts: usize, humans: usize },
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, v.sqrt())
}

/// Mean detection time, or `default` when none was recorded.
fn verdict_mean(xs: &[f64], default: f64) -> f64 {
    if xs.is_empty() { default } else { mean_sd(xs).0 }
}

impl Store {
    /// A scenario with the campaign's outcome shares and timings over attempts started at or
    /// after `since_ms`, for `agents` agents over `hours`.
    pub async fn learned_scenario(&self, campaign: i64, since_ms: i64, agents: u32, hours: f64) -> Result<Scenario, LearnError> {
        let c = self.campaign(campaign).await?;
        let settings = &c.settings;
        // The most recent attempts, read through the CDR pages.
        let mut rows: Vec<Cdr> = Vec::new();
        let mut query = CdrQuery { campaign_id: Some(campaign), from: Some(since_ms), limit: Some(10_000), ..CdrQuery::default() };
        loop {
            let page = self.cdrs(&query).await?;
            let Some(last) = page.last() else { break };
            query.after_id = Some(last.id);
            rows.extend(page);
            if rows.len() >= MAX_ATTEMPTS {
                rows.drain(..rows.len() - MAX_ATTEMPTS);
            }
        }
        let (mut humans, mut machines, mut failed) = (0usize, 0usize, 0usize);
        let (mut ring_h, mut ring_m, mut fail_after, mut talk, mut wrap) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut verdict_h, mut verdict_m) = (vec![], vec![]);
        for r in &rows {
            let secs = |t: i64| (t - r.started_at) as f64 / 1000.0;
            // Answer → detection's verdict, when both were recorded.
            let verdict = r.answered_at.zip(r.verdict_at).map(|(a, v)| (v - a) as f64 / 1000.0).filter(|s| *s >= 0.0);
            match r.answered_by.as_deref() {
                Some("human") => {
                    humans += 1;
                    verdict_h.extend(verdict);
                    ring_h.extend(r.answered_at.map(secs));
                    if r.connected_at.is_some() {
                        if r.talk_s > 0.0 {
                            talk.push(r.talk_s);
                        }
                        wrap.push(r.wrap_s);
                    }
                }
                Some("machine") => {
                    machines += 1;
                    verdict_m.extend(verdict);
                    ring_m.extend(r.answered_at.map(secs));
                }
                _ if matches!(r.outcome.as_str(), "busy" | "invalid_number" | "congestion") => {
                    failed += 1;
                    fail_after.extend(r.ended_at.map(secs));
                }
                _ => {}
            }
        }
        let n = rows.len();
        if n < MIN_ATTEMPTS || humans < MIN_HUMANS || talk.is_empty() {
            return Err(LearnError::NotEnough { campaign, attempts: n, humans });
        }
        let share = |k: usize| k as f64 / n as f64;
        let timeout = f64::from(settings.ring_timeout_s);
        let ring = |xs: &[f64], default: f64| {
            let (m, sd) = if xs.is_empty() { (default, default / 2.0) } else { mean_sd(xs) };
            MeanSd { mean: m.clamp(0.5, timeout - 0.5), sd: sd.max(0.1) }
        };
        let logs: Vec<f64> = talk.iter().map(|t| t.ln()).collect();
        let (talk_mean, _) = mean_sd(&talk);
        let (_, sigma_log) = mean_sd(&logs);
        let (wrap_mean, wrap_sd) = mean_sd(&wrap);
        Ok(Scenario {
            name: format!("{} (learned)", c.name),
            agents,
            hours,
            outcomes: Outcomes { human: share(humans), machine: share(machines), busy: share(failed) },
            timing: Timing {
                ring_human: ring(&ring_h, 8.0),
                ring_machine: ring(&ring_m, 12.0),
                busy_after: if fail_after.is_empty() { 3.0 } else { mean_sd(&fail_after).0.max(0.1) },
                no_answer_timeout: timeout,
                // Detection times as recorded (Pacer's defaults for a campaign without
                // them, such as one dialled without detection); the connect limit is Pacer's.
                amd_human_verdict: verdict_mean(&verdict_h, 1.0),
                amd_machine_verdict: verdict_mean(&verdict_m, 3.0),
                connect_limit: 2.0,
                talk: MeanSigmaLog { mean: talk_mean, sigma_log },
                wrap: MeanCv { mean: wrap_mean.max(0.0), cv: if wrap_mean > 0.0 { wrap_sd / wrap_mean } else { 0.0 } },
            },
            amd: Amd::default(),
            drift: Drift::default(),
            pacing: ScenarioPacing {
                abandon_target: settings.abandon_target,
                max_lines_per_agent: settings.max_lines_per_agent,
                min_agents: settings.min_agents_predictive,
                power_ratio: settings.power_ratio.max(1.0),
                min_ring: f64::from(settings.min_ring_s.max(15)),
                ..ScenarioPacing::default()
            },
        })
    }
}
