//! One campaign's runner: it owns the campaign's pacing engine, asks it how many calls to
//! start, claims that many leads and starts a call actor for each.
//!
//! Call actors report back (outcomes, talk and wrap times, abandons) over a channel, so
//! the engine has one owner and no lock. The calls in flight live in a small shared table
//! the actors update as their calls move from ringing to detecting to waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pacer_acd::CallId;
use pacer_dialer::pacing::{AbandonFigures, CallInFlight, CallStage, CampaignPacer, Explanation, Outcome, PacingInput, PacingMode, PacingSettings};
use pacer_dialer::store::{Campaign, CampaignStatus, DialMode};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Ctx;
use super::call;
use super::caps::Caps;

/// What a call actor tells its campaign's runner.
#[derive(Debug, Clone, Copy)]
pub enum Report {
    Outcome(Outcome),
    Human { abandoned: bool },
    Talk(f64),
    Wrap(f64),
}

/// One call in flight: when it was dialled, its stage and since when, and the token that
/// asks its actor to hang up while it rings (the pacing engine's advice).
type Entry = (Instant, CallStage, Instant, CancellationToken);

/// Calls of one campaign that are not connected to an agent or over yet. The
/// `pacer_calls_in_flight` gauge of each stage follows the table.
pub struct InFlight {
    calls: Mutex<HashMap<CallId, Entry>>,
    gauge: prometheus::IntGaugeVec,
    campaign: String,
}

fn stage_name(s: CallStage) -> &'static str {
    match s {
        CallStage::Ringing => "ringing",
        CallStage::Detecting => "detecting",
        CallStage::Waiting => "waiting",
    }
}

impl InFlight {
    pub fn new(gauge: prometheus::IntGaugeVec, campaign: &str) -> InFlight {
        InFlight { calls: Mutex::default(), gauge, campaign: campaign.to_string() }
    }

    fn count(&self, stage: CallStage, by: i64) {
        self.gauge.with_label_values(&[&self.campaign, stage_name(stage)]).add(by);
    }

    pub fn insert(&self, id: CallId) {
        let now = Instant::now();
        if self.lock().insert(id, (now, CallStage::Ringing, now, CancellationToken::new())).is_none() {
            self.count(CallStage::Ringing, 1);
        }
    }

    /// The token the engine's advice to hang up the call (while it rings) cancels.
    pub fn hang_up_token(&self, id: CallId) -> Option<CancellationToken> {
        self.lock().get(&id).map(|c| c.3.clone())
    }

    /// Asks the actors of these calls to hang up, if they are still ringing and were not
    /// asked before; returns how many were asked now.
    fn hang_up(&self, ids: impl Iterator<Item = CallId>) -> u64 {
        let calls = self.lock();
        let mut asked = 0;
        for id in ids {
            if let Some(c) = calls.get(&id).filter(|c| c.1 == CallStage::Ringing && !c.3.is_cancelled()) {
                c.3.cancel();
                asked += 1;
            }
        }
        asked
    }

    pub fn stage(&self, id: CallId, stage: CallStage) {
        let mut calls = self.lock();
        if let Some(c) = calls.get_mut(&id) {
            let old = std::mem::replace(&mut c.1, stage);
            c.2 = Instant::now();
            drop(calls);
            self.count(old, -1);
            self.count(stage, 1);
        }
    }

    pub fn remove(&self, id: CallId) {
        let gone = self.lock().remove(&id);
        if let Some((_, stage, _, _)) = gone {
            self.count(stage, -1);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Entry>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The calls as the engine sees them, and their ids in the same order.
    fn snapshot(&self) -> (Vec<CallId>, Vec<CallInFlight>) {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(id, (dialled, stage, since, _))| (*id, CallInFlight { age_s: (now - *dialled).as_secs_f64(), stage: *stage, stage_age_s: (now - *since).as_secs_f64() }))
            .unzip()
    }
}

/// What a call actor needs of its campaign.
pub struct CampaignCtx {
    pub campaign: Mutex<Campaign>,
    pub in_flight: InFlight,
    pub reports: mpsc::UnboundedSender<Report>,
    /// Calls the runner started that have not settled yet, whatever their stage
    /// (ringing to wrap-up): what `max_concurrent_calls` counts.
    pub live: AtomicU32,
}

impl CampaignCtx {
    pub fn campaign(&self) -> Campaign {
        self.campaign.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The pacing settings a campaign's dial mode and settings ask for.
pub fn pacing_settings(c: &Campaign) -> PacingSettings {
    let s = &c.settings;
    PacingSettings {
        mode: match c.dial_mode {
            DialMode::Preview => PacingMode::Preview,
            DialMode::Progressive => PacingMode::Progressive,
            DialMode::Power => PacingMode::Power { ratio: s.power_ratio },
            DialMode::Predictive => PacingMode::Predictive,
        },
        abandon_target: s.abandon_target,
        max_lines_per_agent: s.max_lines_per_agent,
        min_agents: s.min_agents_predictive,
        ring_timeout_s: f64::from(s.ring_timeout_s),
        min_ring_s: f64::from(s.min_ring_s),
        ..PacingSettings::default()
    }
}

pub struct Runner {
    ctx: Arc<Ctx>,
    camp: Arc<CampaignCtx>,
    reports: mpsc::UnboundedReceiver<Report>,
    stop: CancellationToken,
    explain: watch::Sender<Explanation>,
    tasks: TaskTracker,
    next_call: CallId,
}

/// Call ids are unique per process: the campaign id in the high bits keeps them apart.
fn first_call_id(campaign: i64) -> CallId {
    ((campaign as u64) << 40) | 1
}

impl Runner {
    pub fn new(ctx: Arc<Ctx>, campaign: Campaign, stop: CancellationToken, explain: watch::Sender<Explanation>, tasks: TaskTracker) -> Runner {
        let (tx, rx) = mpsc::unbounded_channel();
        let next_call = first_call_id(campaign.id) + (pacer_dialer::store::now_ms() as u64 & 0xff_ffff) * 1000;
        let in_flight = InFlight::new(ctx.metrics.in_flight.clone(), &campaign.name);
        let camp = Arc::new(CampaignCtx { campaign: Mutex::new(campaign), in_flight, reports: tx, live: AtomicU32::new(0) });
        Runner { ctx, camp, reports: rx, stop, explain, tasks, next_call }
    }

    pub fn campaign_ctx(&self) -> Arc<CampaignCtx> {
        self.camp.clone()
    }

    pub async fn run(mut self) {
        let c = self.camp.campaign();
        let name = c.name.clone();
        let span = tracing::info_span!("campaign", campaign = %name);
        let _g = span.enter();
        let mut pacer = CampaignPacer::new(pacing_settings(&c));
        let mut caps = Caps::new(c.settings.max_concurrent_calls, c.settings.max_calls_per_second, Instant::now());
        let (mut since_start, mut rolling) = self.load_abandons(&c).await;
        let mut settings_checked = Instant::now();
        let mut next_ask = Instant::now();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep_until(next_ask) => {}
                r = self.reports.recv() => {
                    if let Some(r) = r {
                        self.apply(&mut pacer, r, &mut since_start, &mut rolling);
                    }
                    while let Ok(r) = self.reports.try_recv() {
                        self.apply(&mut pacer, r, &mut since_start, &mut rolling);
                    }
                    // A call that ended frees a line: ask again soon, not only on the tick.
                    continue;
                }
            }
            if settings_checked.elapsed() > Duration::from_secs(5) {
                settings_checked = Instant::now();
                match self.ctx.store.campaign(c.id).await {
                    Ok(fresh) if fresh.status != CampaignStatus::Running => break,
                    Ok(fresh) => {
                        if pacing_settings(&fresh) != *pacer.settings() {
                            tracing::info!("pacing settings changed; the engine starts over with them");
                            pacer = CampaignPacer::new(pacing_settings(&fresh));
                        }
                        let s = &fresh.settings;
                        if !caps.same_as(s.max_concurrent_calls, s.max_calls_per_second) {
                            caps = Caps::new(s.max_concurrent_calls, s.max_calls_per_second, Instant::now());
                        }
                        *self.camp.campaign.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot re-read the campaign"),
                }
            }
            let decision = self.decide(&mut pacer, since_start, rolling);
            let now = Instant::now();
            next_ask = now + decision.0.max(Duration::from_millis(100));
            if decision.1 > 0 && !self.ctx.killed() {
                // The campaign's own caps bound what the engine asks for.
                let n = caps.admit(decision.1, self.camp.live.load(Ordering::SeqCst), now);
                if n < decision.1 {
                    tracing::debug!(asked = decision.1, admitted = n, "the campaign's call caps hold calls back");
                    if let Some(wait) = caps.next_call_in(now) {
                        next_ask = next_ask.min(now + wait.max(Duration::from_millis(20)));
                    }
                }
                if n > 0 {
                    self.dial(n).await;
                }
            }
        }
        tracing::info!(in_flight = self.camp.in_flight.len(), "campaign runner stopped; calls in progress finish");
        // Outcomes of the calls still running keep reaching the engine until they end, so
        // their abandons are counted in the metrics; nothing else needs the engine now.
        drop(pacer);
    }

    fn apply(&self, pacer: &mut CampaignPacer, r: Report, since_start: &mut AbandonFigures, rolling: &mut AbandonFigures) {
        match r {
            Report::Outcome(o) => pacer.on_outcome(o),
            Report::Human { abandoned } => {
                pacer.on_human_result(abandoned);
                for f in [&mut *since_start, &mut *rolling] {
                    f.human += 1;
                    f.abandoned += u64::from(abandoned);
                }
                let name = self.camp.campaign().name;
                self.ctx.metrics.abandon_rate.with_label_values(&[&name, "since_start"]).set(since_start.rate());
                self.ctx.metrics.abandon_rate.with_label_values(&[&name, "30d"]).set(rolling.rate());
            }
            Report::Talk(s) => pacer.on_talk(s),
            Report::Wrap(s) => pacer.on_wrap(s),
        }
    }

    async fn load_abandons(&self, c: &Campaign) -> (AbandonFigures, AbandonFigures) {
        match self.ctx.store.abandon_stats(c.id, chrono::Utc::now(), self.ctx.centre_zone).await {
            Ok(s) => {
                let f = |r: &pacer_dialer::store::AbandonRate| AbandonFigures { human: r.answered as u64, abandoned: r.abandoned as u64 };
                self.ctx.metrics.abandon_rate.with_label_values(&[&c.name, "today"]).set(s.today.rate);
                (f(&s.since_start), f(&s.last_30_days))
            }
            Err(e) => {
                // Without the history the engine must assume no budget: it dials as if
                // the target were already reached until outcomes come in.
                tracing::warn!(error = %e, "cannot read the abandon figures; pacing starts with no budget");
                (AbandonFigures { human: 0, abandoned: 1 }, AbandonFigures { human: 0, abandoned: 1 })
            }
        }
    }

    /// Asks the engine; returns (when to ask next, calls to start).
    fn decide(&self, pacer: &mut CampaignPacer, since_start: AbandonFigures, rolling: AbandonFigures) -> (Duration, u32) {
        let c = self.camp.campaign();
        let view = self.ctx.acd.view(Some(c.id as u64));
        let (ids, calls) = self.camp.in_flight.snapshot();
        let capacity = self.trunk_capacity(&c);
        let now = self.ctx.acd.now();
        let d = pacer.decide(&PacingInput { now, agents: &view, calls: &calls, since_start, rolling_30d: rolling, trunk_capacity: capacity });
        if !pacer.hang_ups().is_empty() {
            tracing::debug!(calls = pacer.hang_ups().len(), "hanging up late rings a person would probably be abandoned on");
            let n = self.camp.in_flight.hang_up(pacer.hang_ups().iter().map(|&i| ids[i]));
            self.ctx.metrics.hang_ups.with_label_values(&[&c.name]).inc_by(n);
        }
        let e = *pacer.explain();
        let m = &self.ctx.metrics;
        let active = view.logged_in.saturating_sub(view.not_ready).max(1);
        m.dial_level.with_label_values(&[&c.name]).set((calls.len() as u32 + d.dial) as f64 / f64::from(active));
        m.answer_rate.with_label_values(&[&c.name]).set(e.answer_rate);
        m.machine_rate.with_label_values(&[&c.name]).set(e.machine_rate);
        m.expected_agents_free.with_label_values(&[&c.name]).set(e.expected_agents_free_10s);
        m.expected_answers.with_label_values(&[&c.name]).set(e.expected_answers_in_flight);
        m.margin.with_label_values(&[&c.name]).set(e.margin);
        let _ = self.explain.send(e);
        (d.next_at.saturating_sub(now), d.dial)
    }

    /// New calls the campaign's trunks can take now (up trunks only).
    fn trunk_capacity(&self, c: &Campaign) -> u32 {
        let names = call::trunks_of(&self.ctx, c);
        let status = self.ctx.sip.trunk_status();
        names
            .iter()
            .filter_map(|n| status.iter().find(|s| &s.name == n))
            .filter(|s| s.up)
            .map(|s| {
                let max = self.ctx.config.trunks.iter().find(|t| t.name == s.name).map_or(0, |t| t.max_concurrent);
                max.saturating_sub(s.calls)
            })
            .sum()
    }

    async fn dial(&mut self, n: u32) {
        let c = self.camp.campaign();
        let started = std::time::Instant::now();
        // Callbacks owned by an agent wait for that agent to be ready (or their grace).
        let ready: Vec<i64> = self.ctx.acd.ready_agents(Some(c.id as u64)).into_iter().map(|a| a as i64).collect();
        let claimed = self.ctx.hopper.claim_for_agents(c.id, &self.ctx.node, n as usize, chrono::Utc::now(), &ready).await;
        self.ctx.metrics.db_seconds.with_label_values(&["claim"]).observe(started.elapsed().as_secs_f64());
        let claimed = match claimed {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim leads; dialling pauses until the store answers");
                return;
            }
        };
        for lead in claimed {
            let id = self.next_call;
            self.next_call += 1;
            self.camp.in_flight.insert(id);
            self.ctx.metrics.dials.with_label_values(&[&c.name]).inc();
            self.camp.live.fetch_add(1, Ordering::SeqCst);
            let (ctx, camp) = (self.ctx.clone(), self.camp.clone());
            self.tasks.spawn(async move {
                call::run(ctx, camp.clone(), lead, id).await;
                camp.live.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}
