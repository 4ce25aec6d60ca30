//! The adaptive dial-level controller, as classic open-source dialers do it. It is kept
//! as a baseline so every change to the predictive policy is compared in one run.
//!
//! Each second: sample ready agents R and answered calls waiting W (last 15 samples).
//! Every 15 s: `level ← level × (1 + (mean R − mean W) ÷ agents)`, clamped to
//! [1, max level]; halve it when the last minute dropped over half of over 20 calls, or
//! when the campaign (over 50 calls) is above its drop limit. Calls to place =
//! `round(level × (ready + in-call agents)) − (ringing + waiting + in call)`.

use std::collections::VecDeque;

use super::{CallStage, Explanation, PacingInput};

pub(super) struct Adaptive {
    level: f64,
    max_level: f64,
    samples: VecDeque<(u32, u32)>,
    last_sample: f64,
    last_adjust: f64,
    /// (time, humans, abandoned) once a second, for the last-minute drop check.
    history: VecDeque<(f64, u64, u64)>,
}

impl Adaptive {
    pub(super) fn new(max_level: f64) -> Adaptive {
        Adaptive {
            level: 1.0,
            max_level: max_level.max(1.0),
            samples: VecDeque::new(),
            last_sample: f64::NEG_INFINITY,
            last_adjust: 0.0,
            history: VecDeque::new(),
        }
    }

    pub(super) fn decide(&mut self, input: &PacingInput, e: &mut Explanation) -> u32 {
        let now = input.now.as_secs_f64();
        let a = input.agents;
        let waiting = input.calls.iter().filter(|c| c.stage == CallStage::Waiting).count() as u32;
        if now - self.last_sample >= 1.0 {
            self.last_sample = now;
            self.samples.push_back((a.ready, waiting));
            if self.samples.len() > 15 {
                self.samples.pop_front();
            }
            let f = input.since_start;
            self.history.push_back((now, f.human, f.abandoned));
            while self.history.front().is_some_and(|h| now - h.0 > 60.0) {
                self.history.pop_front();
            }
        }
        if now - self.last_adjust >= 15.0 && !self.samples.is_empty() {
            self.last_adjust = now;
            let n = self.samples.len() as f64;
            let mean_r = self.samples.iter().map(|s| f64::from(s.0)).sum::<f64>() / n;
            let mean_w = self.samples.iter().map(|s| f64::from(s.1)).sum::<f64>() / n;
            let agents = f64::from(a.logged_in.max(1));
            self.level = (self.level * (1.0 + (mean_r - mean_w) / agents)).clamp(1.0, self.max_level);
            if let (Some(first), Some(last)) = (self.history.front(), self.history.back()) {
                let (calls, dropped) = (last.1 - first.1, last.2 - first.2);
                if calls > 20 && dropped * 2 > calls {
                    self.level = (self.level / 2.0).max(1.0);
                }
            }
            let f = input.since_start;
            if f.human > 50 && f.rate() > 0.03 {
                self.level = (self.level / 2.0).max(1.0);
            }
        }
        e.margin = self.level;
        let agents_working = f64::from(a.ready + a.reserved) + a.in_call.len() as f64;
        let target = (self.level * agents_working).round() as i64;
        let busy = input.calls.len() as i64 + a.in_call.len() as i64 + i64::from(a.reserved);
        (target - busy).max(0) as u32
    }
}
