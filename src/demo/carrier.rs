//! The demo's simulated carrier: a SIP user agent on loopback (a second `pacer-sip`
//! gateway that takes pacer's INVITEs as inbound calls) which answers as a person or a
//! machine, is busy, or rings out, with the odds and timings of a scenario, and plays
//! speech-like audio over real RTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pacer_config::{SipConfig, TrunkConfig};
use pacer_dialer::sim::Scenario;
use pacer_media::amd::synth;
use pacer_media::{MediaEngine, Prompt};
use pacer_sip::{CallEvent, InboundCall, SipGateway};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::Serialize;
use tracing::debug;

/// What the carrier saw, for the summary and to check the CDRs against.
#[derive(Debug, Default)]
pub struct CarrierCounts {
    pub calls: AtomicU64,
    pub human: AtomicU64,
    pub machine: AtomicU64,
    pub busy: AtomicU64,
    pub rang_out: AtomicU64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CarrierSummary {
    pub calls: u64,
    pub human: u64,
    pub machine: u64,
    pub busy: u64,
    pub rang_out: u64,
}

impl CarrierCounts {
    pub fn summary(&self) -> CarrierSummary {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CarrierSummary { calls: g(&self.calls), human: g(&self.human), machine: g(&self.machine), busy: g(&self.busy), rang_out: g(&self.rang_out) }
    }
}

pub struct Carrier {
    pub gateway: Arc<SipGateway>,
    pub counts: Arc<CarrierCounts>,
}

#[derive(Clone, Copy)]
enum Fate {
    Human,
    Machine,
    Busy,
    RingOut,
}

impl Carrier {
    /// Starts the carrier on a free loopback port; its RTP comes from `media`.
    pub async fn start(scenario: Scenario, media: MediaEngine, seed: u64) -> anyhow::Result<Carrier> {
        let sip = SipConfig { listen_udp: "127.0.0.1:0".parse()?, user_agent: "Pacer-demo-carrier".into(), ..SipConfig::default() };
        // The carrier's view of pacer: a peer whose INVITEs it takes (no keep-alives).
        let peer = TrunkConfig { name: "pacer".into(), host: "127.0.0.1".into(), options_interval_s: 0, inbound_from: vec!["127.0.0.1".into()], ..TrunkConfig::default() };
        let gateway = Arc::new(SipGateway::start(&sip, &[peer]).await?);
        let mut inbound = gateway.take_inbound().expect("a new gateway has its inbound channel");
        let counts = Arc::new(CarrierCounts::default());
        let c = counts.clone();
        let scenario = Arc::new(scenario);
        tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed);
            while let Some(call) = inbound.recv().await {
                c.calls.fetch_add(1, Ordering::Relaxed);
                let o = &scenario.outcomes;
                let x: f64 = rng.random();
                let fate = if x < o.human {
                    Fate::Human
                } else if x < o.human + o.machine {
                    Fate::Machine
                } else if x < o.human + o.machine + o.busy {
                    Fate::Busy
                } else {
                    Fate::RingOut
                };
                let seed = rng.random::<u64>();
                tokio::spawn(answer(call, fate, scenario.clone(), media.clone(), c.clone(), seed));
            }
        });
        Ok(Carrier { gateway, counts })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.gateway.local_addr()
    }
}

/// A ring time from the scenario, kept under the no-answer timeout (as the simulator does).
fn ring_time(rng: &mut SmallRng, mean: f64, sd: f64, timeout: f64) -> Duration {
    let d = LogNormal::from_mean_cv(mean, sd / mean).expect("validated scenario");
    for _ in 0..20 {
        let t = d.sample(rng);
        if t < timeout - 0.5 {
            return Duration::from_secs_f64(t.max(0.2));
        }
    }
    Duration::from_secs_f64((timeout * 0.5).max(0.2))
}

async fn answer(mut call: InboundCall, fate: Fate, s: Arc<Scenario>, media: MediaEngine, counts: Arc<CarrierCounts>, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let t = &s.timing;
    let (ring, counter) = match fate {
        Fate::Busy => {
            tokio::time::sleep(Duration::from_secs_f64(t.busy_after)).await;
            counts.busy.fetch_add(1, Ordering::Relaxed);
            let _ = call.reject(486);
            return;
        }
        Fate::RingOut => {
            let _ = call.ring();
            counts.rang_out.fetch_add(1, Ordering::Relaxed);
            // Ring until pacer cancels (its ring timeout); bounded in case it never does.
            let _ = tokio::time::timeout(Duration::from_secs_f64(t.no_answer_timeout * 4.0), wait_end(&mut call)).await;
            let _ = call.reject(480);
            return;
        }
        Fate::Human => (ring_time(&mut rng, t.ring_human.mean, t.ring_human.sd, t.no_answer_timeout), &counts.human),
        Fate::Machine => (ring_time(&mut rng, t.ring_machine.mean, t.ring_machine.sd, t.no_answer_timeout), &counts.machine),
    };
    let _ = call.ring();
    tokio::select! {
        _ = tokio::time::sleep(ring) => {}
        _ = wait_end(&mut call) => return, // cancelled while ringing
    }
    let leg = match media.rtp_endpoint().await {
        Ok(l) => l,
        Err(e) => {
            debug!(error = %e, "carrier has no media port; refusing");
            let _ = call.reject(503);
            return;
        }
    };
    let sdp = match leg.answer_offer(&String::from_utf8_lossy(&call.sdp_offer)) {
        Ok(a) => a,
        Err(e) => {
            debug!(error = %e, "carrier cannot answer the offer");
            let _ = call.reject(488);
            leg.close();
            return;
        }
    };
    if call.answer(sdp.into_bytes()).is_err() {
        leg.close();
        return;
    }
    counter.fetch_add(1, Ordering::Relaxed);
    let greeting = match fate {
        Fate::Machine => synth::machine_greeting(seed, true),
        _ => synth::human_greeting(seed),
    };
    let talk = async {
        let _ = leg.play(&Prompt::from_pcm(&greeting, 8000).expect("8 kHz PCM is a valid prompt")).await;
        if matches!(fate, Fate::Human) {
            // The person talks with the agent (or listens to the safe-harbor message).
            let mut n = seed;
            loop {
                n = n.wrapping_add(1);
                let _ = leg.play(&Prompt::from_pcm(&synth::speech_like(n, Duration::from_secs(3)), 8000).expect("8 kHz PCM is a valid prompt")).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        } else {
            // A machine records in silence after its beep until hung up on.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = talk => {}
        _ = wait_end(&mut call) => {}
        // Nobody keeps a line open for ever.
        _ = tokio::time::sleep(Duration::from_secs(1800)) => { let _ = call.hangup().await; }
    }
    leg.close();
}

async fn wait_end(call: &mut InboundCall) {
    loop {
        match call.next_event().await {
            Some(CallEvent::HungUp { .. } | CallEvent::Failed { .. }) | None => return,
            Some(_) => {}
        }
    }
}
