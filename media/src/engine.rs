//! The media engine: port allocator, shards, recorder thread and the factory of legs.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::codec::Codec;
use crate::endpoint::{Endpoint, EndpointInner, Kind};
use crate::leg::LegShared;
use crate::metrics::Metrics;
use crate::ports::PortAllocator;
use crate::sdp::LocalSdp;
use crate::shard::leg::{Leg, LegIo};
use crate::shard::{self, Cmd, Context};
use crate::{MediaError, recorder};

pub(crate) struct EngineInner {
    pub ctx: Arc<Context>,
    pub codecs: Vec<Codec>,
    /// Address written into SDP and WebRTC candidates.
    pub sdp_ip: IpAddr,
    pub bind_ip: IpAddr,
    next_leg: AtomicU64,
    next_shard: AtomicUsize,
    session_base: u64,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        for s in &self.ctx.shards {
            s.send(Cmd::Shutdown);
        }
    }
}

/// The media engine. Cheap to clone (an `Arc` inside); one per process.
///
/// It hands out legs ([`Endpoint`]) and connects them ([`Bridge`]); it knows nothing of
/// calls, campaigns or SIP dialogs.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaEngine({} shards)", self.inner.ctx.shards.len())
    }
}

impl MediaEngine {
    /// Starts the engine with one shard per core.
    pub fn new(cfg: &pacer_config::MediaConfig) -> Result<MediaEngine, MediaError> {
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self::with_shards(cfg, n)
    }

    /// Starts the engine with `shards` packet threads (benchmarks, small deployments).
    pub fn with_shards(cfg: &pacer_config::MediaConfig, shards: usize) -> Result<MediaEngine, MediaError> {
        let mut codecs = Vec::new();
        for name in &cfg.codecs {
            let c = Codec::from_name(name)
                .ok_or_else(|| MediaError::Config(format!("media.codecs: {name:?} is not supported (PCMU, PCMA)")))?;
            if !codecs.contains(&c) {
                codecs.push(c);
            }
        }
        if codecs.is_empty() {
            return Err(MediaError::Config("media.codecs: at least one of PCMU, PCMA is needed".into()));
        }
        let ports = PortAllocator::new(cfg.rtp_ip, cfg.rtp_port_min, cfg.rtp_port_max)?;
        let metrics = Metrics::new().map_err(|e| MediaError::Config(format!("metrics: {e}")))?;
        let io = |context: &str| {
            let context = context.to_string();
            move |source| MediaError::Io { context, source }
        };
        let writer = recorder::spawn_writer().map_err(io("starting the recorder thread"))?;
        let (handles, parts) = shard::prepare(shards.max(1)).map_err(io("creating media shard polls"))?;
        let ctx = Arc::new(Context {
            shards: handles,
            metrics,
            ports: Mutex::new(ports),
            writer,
            rtp_timeout: (cfg.rtp_timeout_s > 0).then(|| Duration::from_secs(cfg.rtp_timeout_s)),
            epoch: Instant::now(),
        });
        shard::spawn(ctx.clone(), parts).map_err(io("starting media shard threads"))?;
        let session_base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(MediaEngine {
            inner: Arc::new(EngineInner {
                ctx,
                codecs,
                sdp_ip: cfg.public_ip.unwrap_or(cfg.rtp_ip),
                bind_ip: cfg.rtp_ip,
                next_leg: AtomicU64::new(1),
                next_shard: AtomicUsize::new(0),
                session_base,
            }),
        })
    }

    /// Registers the `pacer_media_*` collectors (bounded labels only).
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        self.inner.ctx.metrics.register(registry)
    }

    /// A plain RTP leg on the next free port pair.
    pub async fn rtp_endpoint(&self) -> Result<Endpoint, MediaError> {
        let (rtp, rtcp) = {
            let mut ports = self.inner.ctx.ports.lock().map_err(|_| MediaError::Closed)?;
            let pair = ports.allocate()?;
            self.inner.ctx.metrics.ports_in_use.set(ports.in_use() as i64);
            pair
        };
        let local = rtp.local_addr().map_err(|source| MediaError::Io { context: "RTP socket address".into(), source })?;
        let io_err = |source| MediaError::Io { context: format!("RTP socket {local}"), source };
        let state = quinn_udp::UdpSocketState::new(quinn_udp::UdpSockRef::from(&rtp)).map_err(io_err)?;
        rtcp.set_nonblocking(true).map_err(io_err)?;
        let io = LegIo::Udp {
            rtp: mio::net::UdpSocket::from_std(rtp),
            rtcp: mio::net::UdpSocket::from_std(rtcp),
            state,
            port: local.port(),
        };
        let shared = self.new_shared();
        let sdp = LocalSdp {
            ip: self.inner.sdp_ip,
            port: local.port(),
            session_id: self.inner.session_base.wrapping_mul(1000).wrapping_add(shared.id),
        };
        let kind = Kind::Rtp { sdp, local: SocketAddr::new(self.inner.sdp_ip, local.port()) };
        Ok(self.add_leg(shared, io, kind, "rtp"))
    }

    /// A WebRTC leg answering a browser's offer. The answer is non-trickle: it holds our
    /// host candidate, so the browser needs nothing more from us.
    pub async fn webrtc_endpoint(&self, offer_sdp: &str) -> Result<(Endpoint, String), MediaError> {
        let shared = self.new_shared();
        // Until the leg reaches its shard, a failed or cancelled answer gives its place back.
        let mut placed = Placement { engine: &self.inner, shard: shared.shard.load(SeqCst), armed: true };
        let (pc, tx, answer, neg) = crate::webrtc::answer(self.inner.clone(), shared.clone(), offer_sdp).await?;
        placed.armed = false;
        let ep = self.add_leg(shared, LegIo::Channel { tx }, Kind::WebRtc { answer: answer.clone(), _pc: pc }, "webrtc");
        // After the Add, on the same channel: the shard has the leg when this arrives.
        ep.configure(neg)?;
        Ok((ep, answer))
    }

    fn new_shared(&self) -> Arc<LegShared> {
        let id = self.inner.next_leg.fetch_add(1, SeqCst);
        // The shard with the fewest legs (ties taken in turn). A bridge gathers on its agent
        // leg's shard, so plain round robin could put every bridge on one shard when
        // customer and agent legs alternate.
        let shards = &self.inner.ctx.shards;
        let start = self.inner.next_shard.fetch_add(1, SeqCst);
        let shard = (0..shards.len()).map(|i| (start + i) % shards.len()).min_by_key(|&i| shards[i].legs.load(SeqCst)).unwrap_or(0);
        shards[shard].legs.fetch_add(1, SeqCst);
        Arc::new(LegShared::new(id, shard))
    }

    fn add_leg(&self, shared: Arc<LegShared>, io: LegIo, kind: Kind, label: &str) -> Endpoint {
        let seed = self.inner.session_base ^ (shared.id << 20) ^ (Instant::now().elapsed().as_nanos() as u64);
        let leg = Leg::new(shared.clone(), io, seed);
        self.inner.ctx.metrics.legs.with_label_values(&[label]).inc();
        self.inner.ctx.send_to_leg(&shared, Cmd::Add { leg: Box::new(leg), then: None });
        Endpoint::new(EndpointInner { shared, engine: self.inner.clone(), kind })
    }

    /// Connects two legs both ways: packets are forwarded untouched when the codecs
    /// match (transcoded µ-law⇄A-law when not), with the agent's stream kept continuous.
    /// A leg already in a bridge leaves it (re-pointing an agent to the next customer).
    pub fn bridge(&self, customer: &Endpoint, agent: &Endpoint) -> Result<Bridge, MediaError> {
        Bridge::start(self.inner.clone(), customer, agent)
    }
}

/// A new leg's place in its shard's count, given back on drop unless the leg got there.
struct Placement<'a> {
    engine: &'a EngineInner,
    shard: usize,
    armed: bool,
}

impl Drop for Placement<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.engine.ctx.shards[self.shard].legs.fetch_sub(1, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls whose customer and agent legs are made one after the other must not all end
    /// up on one shard: a bridge gathers on its agent leg's shard, and round robin would
    /// give every agent leg the same one.
    #[tokio::test]
    async fn bridges_spread_over_the_shards() {
        let cfg = pacer_config::MediaConfig { rtp_port_min: 41000, rtp_port_max: 41199, ..Default::default() };
        let engine = MediaEngine::with_shards(&cfg, 2).unwrap();
        let mut calls = Vec::new();
        for _ in 0..10 {
            let c = engine.rtp_endpoint().await.unwrap();
            let a = engine.rtp_endpoint().await.unwrap();
            let b = engine.bridge(&c, &a).unwrap();
            // The customer leg moves to the agent's shard (bounded wait).
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.shared().shard.load(SeqCst) != a.shared().shard.load(SeqCst) {
                assert!(Instant::now() < deadline, "the customer leg never joined its agent's shard");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            calls.push((c, a, b));
        }
        let per_shard: Vec<usize> = engine.inner.ctx.shards.iter().map(|s| s.legs.load(SeqCst)).collect();
        assert_eq!(per_shard.iter().sum::<usize>(), 20);
        assert!(per_shard.iter().all(|&n| n >= 8), "legs per shard: {per_shard:?}");
        let on: Vec<usize> = calls.iter().map(|(_, a, _)| a.shared().shard.load(SeqCst)).collect();
        assert!(on.contains(&0) && on.contains(&1), "bridges' shards: {on:?}");
        // Closed legs leave their shard's count.
        drop(calls);
        let deadline = Instant::now() + Duration::from_secs(5);
        while engine.inner.ctx.shards.iter().any(|s| s.legs.load(SeqCst) != 0) {
            assert!(Instant::now() < deadline, "closed legs still counted");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
