//! The live dialer: one runner per running campaign (pacing → hopper → call actors) and
//! one owner task per call (see [`call`]). It joins the crates: the hopper and outcomes
//! from `pacer-dialer`, the SIP gateway, the media engine and the live ACD.
//!
//! A supervisor loop watches the campaigns' status in the store: a campaign that is
//! started gets a runner, one that is paused or stopped loses it (its calls in progress
//! finish normally). The kill switch stops every runner's dialling at once.

pub mod agent_call;
pub mod call;
pub mod campaign;
pub mod caps;
pub mod inbound;
pub mod line;
pub mod metrics;
pub mod settle;
pub mod spool;
pub mod talk;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_tz::Tz;
use pacer_config::Config;
use pacer_dialer::guard::{Guard, Refusal};
use pacer_dialer::hopper::Hopper;
use pacer_dialer::pacing::Explanation;
use pacer_dialer::store::{Campaign, CampaignStatus, KillSwitch, Store};
use pacer_media::{MediaEngine, Prompt};
use pacer_sip::SipGateway;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::acd::LiveAcd;
use crate::cti::desk::Desks;
pub use metrics::DialMetrics;

/// Everything a campaign runner and a call actor reach.
pub struct Ctx {
    pub store: Store,
    pub hopper: Hopper,
    pub sip: Arc<SipGateway>,
    pub media: MediaEngine,
    pub acd: LiveAcd,
    pub desks: Arc<Desks>,
    pub config: Arc<Config>,
    pub metrics: DialMetrics,
    /// This node's name, written into leases.
    pub node: String,
    pub centre_zone: Tz,
    pub recordings: Option<PathBuf>,
    /// Played to a person no agent could take in time (the safe-harbor message).
    pub safe_harbor: Prompt,
    /// Played to a customer on hold.
    pub hold_music: Prompt,
    /// One second of silence (a muted agent).
    pub silence: Prompt,
    /// The kill switch as this node last read it from the store (every second).
    pub kill: Arc<AtomicBool>,
    /// The toll-fraud guard every number is checked against before it is dialled.
    pub guard: Guard,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    pub signing_key: Arc<Vec<u8>>,
    pub public_url: String,
    /// Outcomes the database could not take yet, kept on disk.
    pub spool: spool::Spool,
    /// Ids of calls agents dial themselves (above every campaign's and inbound range).
    pub agent_calls: std::sync::atomic::AtomicU64,
    /// Prompts loaded from campaign files, by path (loaded once).
    prompts: Mutex<HashMap<String, Prompt>>,
}

impl Ctx {
    /// Checks `number` (E.164) against the toll-fraud guard with the campaign's own
    /// prefixes; a refusal is counted (`pacer_calls_blocked_total`) and logged.
    pub fn screen(&self, c: &Campaign, number: &str) -> Result<(), Refusal> {
        self.guard.check_for(number, &c.settings.allowed_destinations).inspect_err(|r| {
            self.metrics.blocked.with_label_values(&[r.label()]).inc();
            tracing::warn!(campaign = %c.name, reason = r.label(), "not dialled: {r}");
        })
    }

    /// True while the kill switch stops dialling.
    pub fn killed(&self) -> bool {
        self.kill.load(Ordering::SeqCst)
    }

    /// The prompt in `path`, loaded and converted once; the built-in safe-harbor message
    /// when the path is empty or the file cannot be read (said in the log).
    pub fn prompt(&self, path: &str) -> Prompt {
        if path.is_empty() {
            return self.safe_harbor.clone();
        }
        if let Some(p) = self.prompts.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return p.clone();
        }
        match Prompt::load(std::path::Path::new(path)) {
            Ok(p) => {
                self.prompts.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), p.clone());
                p
            }
            Err(e) => {
                tracing::warn!(path, error = %e, "cannot load the prompt; playing the built-in message");
                self.safe_harbor.clone()
            }
        }
    }
}

/// The parts the dialer is built from.
pub struct Parts {
    pub store: Store,
    pub sip: Arc<SipGateway>,
    pub media: MediaEngine,
    pub acd: LiveAcd,
    pub desks: Arc<Desks>,
    pub config: Arc<Config>,
    pub registry: prometheus::Registry,
    pub node: String,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    pub signing_key: Arc<Vec<u8>>,
    /// Base of the links put in webhooks.
    pub public_url: String,
}

/// The running dialer.
pub struct Dialer {
    ctx: Arc<Ctx>,
    runners: Mutex<HashMap<i64, (CancellationToken, watch::Receiver<Explanation>)>>,
    /// Every campaign that ran on this node, with its calls still in flight.
    campaigns: Mutex<HashMap<i64, Arc<campaign::CampaignCtx>>>,
    stop: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

impl Dialer {
    /// Builds the dialer and starts its supervisor loop. Leases this node left behind (a
    /// crash) are returned to the hopper first.
    pub async fn start(p: Parts) -> anyhow::Result<Arc<Dialer>> {
        let metrics = DialMetrics::new();
        metrics.register(&p.registry)?;
        let guard = Guard::from_config(&p.config.dialer).map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(allowed = ?guard.allowed(), premium = p.config.dialer.allow_premium, "toll-fraud guard");
        // A switch engaged before this node started (or by another node) holds from the
        // first moment: no runner starts before it is read.
        let kill = p.store.kill_switch().await?;
        if kill.on {
            tracing::warn!(by = %kill.changed_by, "the kill switch is on: no call is started until it is released");
        }
        metrics.kill_switch.set(if kill.on { 1.0 } else { 0.0 });
        let hopper = Hopper::new(p.store.clone(), &p.config.dialer);
        // Outcomes a previous run could not write go in first, then its leads go back.
        let spool = spool::Spool::open(&p.config.data_dir).map_err(|e| anyhow::anyhow!("opening the outcome spool in {}: {e}", p.config.data_dir.display()))?;
        let zone: chrono_tz::Tz = p.config.dialer.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
        let replayed = spool.replay(&p.store, zone).await.map_err(|e| anyhow::anyhow!("writing the spooled outcomes: {e}"))?;
        if replayed > 0 {
            tracing::warn!(outcomes = replayed, "wrote outcomes spooled while the database was unreachable");
        }
        let returned = hopper.reconcile_leases(&p.node, pacer_dialer::store::now_ms()).await?;
        if returned > 0 {
            tracing::warn!(leads = returned, node = %p.node, "returned leads this node had claimed before it stopped");
        }
        let recordings = p.config.recordings.enabled.then(|| {
            if p.config.recordings.directory.as_os_str().is_empty() { p.config.data_dir.join("recordings") } else { p.config.recordings.directory.clone() }
        });
        if let Some(dir) = &recordings {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("recordings.directory {}: {e}", dir.display()))?;
        }
        let ctx = Arc::new(Ctx {
            store: p.store,
            hopper,
            sip: p.sip,
            media: p.media,
            acd: p.acd,
            desks: p.desks,
            centre_zone: p.config.dialer.time_zone.parse().unwrap_or(Tz::UTC),
            config: p.config,
            metrics,
            node: p.node,
            recordings,
            safe_harbor: builtin_safe_harbor(),
            hold_music: Prompt::tone(350.0, 2000),
            silence: Prompt::from_pcm(&[0; 8000], 8000).expect("8 kHz PCM is a valid prompt"),
            kill: Arc::new(AtomicBool::new(kill.on)),
            guard,
            webhooks: p.webhooks,
            signing_key: p.signing_key,
            public_url: p.public_url.trim_end_matches('/').to_string(),
            prompts: Mutex::new(HashMap::new()),
            spool,
            agent_calls: std::sync::atomic::AtomicU64::new(3 << 61),
        });
        let dialer = Arc::new(Dialer { ctx, runners: Mutex::new(HashMap::new()), campaigns: Mutex::new(HashMap::new()), stop: CancellationToken::new(), tasks: Default::default() });
        tokio::spawn(dialer.clone().supervise());
        if let Some(rx) = dialer.ctx.sip.take_inbound() {
            tokio::spawn(inbound::run(dialer.ctx.clone(), rx, dialer.tasks.clone()));
        }
        Ok(dialer)
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// The pacing engine's estimates and last reason for a running campaign.
    pub fn explain(&self, campaign: i64) -> Option<Explanation> {
        self.runners.lock().unwrap_or_else(|p| p.into_inner()).get(&campaign).map(|(_, rx)| *rx.borrow())
    }

    /// Calls of a campaign that are dialling, being detected or waiting for an agent
    /// (connected calls are the agents'). Zero for a campaign that never ran here.
    pub fn calls_in_flight(&self, campaign: i64) -> usize {
        self.campaigns.lock().unwrap_or_else(|p| p.into_inner()).get(&campaign).map_or(0, |c| c.in_flight.len())
    }

    /// Runs a call task that shutdown waits for.
    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(f);
    }

    /// The name of a campaign that ran on this node (metric label).
    pub fn campaign_name(&self, campaign: i64) -> Option<String> {
        self.campaigns.lock().unwrap_or_else(|p| p.into_inner()).get(&campaign).map(|c| c.campaign().name)
    }

    /// Stops (or resumes) dialling for every campaign of every node sharing the database.
    /// Calls in progress go on. This node obeys at once, the others within a second.
    pub async fn set_kill_switch(&self, on: bool, by: &str) -> Result<KillSwitch, pacer_dialer::store::StoreError> {
        let k = self.ctx.store.set_kill_switch(on, by).await?;
        self.obey_kill_switch(&k);
        Ok(k)
    }

    fn obey_kill_switch(&self, k: &KillSwitch) {
        if self.ctx.kill.swap(k.on, Ordering::SeqCst) != k.on {
            tracing::warn!(on = k.on, by = %k.changed_by, "kill switch");
        }
        self.ctx.metrics.kill_switch.set(if k.on { 1.0 } else { 0.0 });
    }

    /// Stops dialling and waits (up to `grace`) for the calls in progress to end and their
    /// outcomes to be written.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        for (_, (token, _)) in self.runners.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            token.cancel();
        }
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(grace_s = grace.as_secs(), "calls still in progress after the grace period");
        }
    }

    /// Starts runners for running campaigns and stops those of campaigns that are not.
    async fn supervise(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // The switch is shared by every node: an unreadable row keeps the last state.
            match self.ctx.store.kill_switch().await {
                Ok(k) => self.obey_kill_switch(&k),
                Err(e) => tracing::warn!(error = %e, on = self.ctx.killed(), "cannot read the kill switch; keeping its last state"),
            }
            let campaigns = match self.ctx.store.campaigns().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read campaigns; dialling continues with what runs");
                    continue;
                }
            };
            let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
            runners.retain(|id, (token, _)| {
                let running = campaigns.iter().any(|c| c.id == *id && c.status == CampaignStatus::Running);
                if !running {
                    token.cancel();
                }
                running
            });
            for c in campaigns.into_iter().filter(|c| c.status == CampaignStatus::Running) {
                if runners.contains_key(&c.id) {
                    continue;
                }
                let token = self.stop.child_token();
                let (tx, rx) = watch::channel(Explanation::default());
                tracing::info!(campaign = %c.name, "campaign runner starting");
                let id = c.id;
                let runner = campaign::Runner::new(self.ctx.clone(), c, token.clone(), tx, self.tasks.clone());
                self.campaigns.lock().unwrap_or_else(|p| p.into_inner()).insert(id, runner.campaign_ctx());
                self.tasks.spawn(runner.run());
                runners.insert(id, (token, rx));
            }
        }
    }
}

/// The built-in safe-harbor message when a campaign has none of its own: a short
/// two-tone announcement signal, so that the called party hears that the call was
/// placed by a system and will not be left in silence.
fn builtin_safe_harbor() -> Prompt {
    Prompt::tone(440.0, 1500)
}
