//! WebRTC load tool: N WebRTC agent legs (ICE host candidates, DTLS-SRTP, PCMU) answered
//! by the real `MediaEngine::webrtc_endpoint`, each against a webrtc-rs client peer
//! connection in this process, then held with real RTP both ways at 20 ms. Prints one
//! JSON line.
//!
//! ```text
//! cargo bench -p pacer-media --bench webrtc_load -- [--legs N] [--seconds S] [--concurrency C] [--shards K]
//! ```
//!
//! Each client offers (non-trickle, host candidates on 127.0.0.1), the engine answers, the
//! client applies the answer and both sides wait until connected (ICE + DTLS-SRTP). Legs
//! open C at a time. Then legs 2k and 2k+1 are bridged in the engine, so each client hears
//! the other's packets: every packet carries (magic, stream, send time) in its payload,
//! which crosses the bridge untouched (PCMU both sides), so the far client measures loss
//! and one-way latency through SRTP → engine shard → SRTP. An odd last leg gets a tone.
//!
//! The server side runs on its own tokio runtime (threads `srv-rt`, where webrtc-rs'
//! drivers for the engine's legs live) next to the engine's shards (`pacer-media-*`); the
//! clients run on another (`cli-rt`), so CPU is reported per side. RSS is the process's,
//! clients included. A counting allocator tells allocations per packet on each side.

// The one JSON line has more fields than serde_json's macro expands by default.
#![recursion_limit = "256"]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pacer_media::{Bridge, Endpoint, MediaEngine, MediaEvent, Prompt};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine as RtcMediaEngine};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::time::timeout;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};

const MAGIC: u32 = 0x5041_4345; // "PACE"
const PAYLOAD: usize = 160;
/// Every step of a leg's setup (and of its teardown) is bounded by this.
const STEP: Duration = Duration::from_secs(30);
/// Latency histogram: 100 µs buckets up to 2 s, then one overflow bucket.
const LAT_BUCKET_US: u64 = 100;
const LAT_BUCKETS: usize = 20_000;
const RTP_PORT_MIN: u16 = 34_000;

/// Allocations by the kind of thread that made them: 0 the engine's shards (and the idle
/// main, watchdog and recorder threads), 1 the server runtime, 2 the clients' runtime.
#[repr(align(64))]
struct Padded(AtomicU64);
static ALLOCS: [Padded; 3] = [const { Padded(AtomicU64::new(0)) }; 3];
const SHARD: u8 = 0;
const SERVER: u8 = 1;
const CLIENT: u8 = 2;

thread_local! {
    static KIND: Cell<u8> = const { Cell::new(SHARD) };
}

fn count_alloc() {
    let k = KIND.try_with(|k| k.get()).unwrap_or(SHARD);
    ALLOCS[k as usize].0.fetch_add(1, Relaxed);
}

struct Counting;

// SAFETY: every call goes to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> [u64; 3] {
    std::array::from_fn(|i| ALLOCS[i].0.load(Relaxed))
}

struct Args {
    legs: usize,
    seconds: f64,
    concurrency: usize,
    shards: usize,
}

fn args() -> Args {
    let mut a = Args {
        legs: 500,
        seconds: 10.0,
        concurrency: 16,
        shards: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--legs" => a.legs = val().parse().expect("--legs N"),
            "--seconds" => a.seconds = val().parse().expect("--seconds S"),
            "--concurrency" => a.concurrency = val().parse::<usize>().expect("--concurrency C").max(1),
            "--shards" => a.shards = val().parse().expect("--shards K"),
            // cargo bench passes --bench to every harness.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.legs > 0, "--legs must be at least 1");
    a
}

/// The measurement window and the figures every task adds to.
struct Shared {
    start: Instant,
    /// In ns since `start`: packets sent in [from, to) count.
    from: AtomicU64,
    to: AtomicU64,
    stop: AtomicBool,
    latency: Vec<AtomicU64>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.from.load(Relaxed) && t < self.to.load(Relaxed)
    }
}

/// One client's counters.
#[derive(Default)]
struct LegCounters {
    /// Packets this client sent whose send time lies in the window.
    sent_in_window: AtomicU64,
    send_errors: AtomicU64,
    /// The partner's packets sent in the window and received here.
    received_in_window: AtomicU64,
    /// Packets received at all (magic or not, any time).
    received_total: AtomicU64,
    /// Audio that is not a partner's tagged packet (engine silence, a tone), received while
    /// the window is open.
    other_in_window: AtomicU64,
    /// Tagged packets naming another stream than the partner's: a crossed bridge.
    wrong_stream: AtomicU64,
}

struct ClientHandler {
    gathered: mpsc::Sender<()>,
    state: watch::Sender<RTCPeerConnectionState>,
    counters: Arc<LegCounters>,
    shared: Arc<Shared>,
    /// Stream id this client expects to hear (its partner's), filled in when bridged.
    partner: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let (c, shared, partner) = (self.counters.clone(), self.shared.clone(), self.partner.clone());
        tokio::spawn(async move {
            loop {
                // Bounded: the loop also ends when the bench stops, whatever webrtc-rs does.
                let ev = match timeout(Duration::from_millis(500), track.poll()).await {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(_) if shared.stop.load(Relaxed) => break,
                    Err(_) => continue,
                };
                let TrackRemoteEvent::OnRtpPacket(pkt) = ev else { continue };
                let now = shared.now();
                c.received_total.fetch_add(1, Relaxed);
                let p = &pkt.payload;
                if p.len() < 16 || u32::from_be_bytes([p[0], p[1], p[2], p[3]]) != MAGIC {
                    if shared.in_window(now) {
                        c.other_in_window.fetch_add(1, Relaxed);
                    }
                    continue;
                }
                let stream = u32::from_be_bytes([p[4], p[5], p[6], p[7]]) as u64;
                if stream != partner.load(Relaxed) {
                    c.wrong_stream.fetch_add(1, Relaxed);
                    continue;
                }
                let sent = u64::from_be_bytes(p[8..16].try_into().unwrap());
                if shared.in_window(sent) {
                    c.received_in_window.fetch_add(1, Relaxed);
                    let b = ((now.saturating_sub(sent) / 1000 / LAT_BUCKET_US) as usize).min(LAT_BUCKETS);
                    shared.latency[b].fetch_add(1, Relaxed);
                }
            }
        });
    }
}

/// A connected leg: the client side and the engine's endpoint.
struct Leg {
    index: usize,
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    ep: Endpoint,
    counters: Arc<LegCounters>,
    partner: Arc<AtomicU64>,
    setup: Duration,
}

async fn step<T, E: std::fmt::Display>(what: &str, f: impl Future<Output = Result<T, E>>) -> Result<T, String> {
    match timeout(STEP, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out")),
    }
}

fn pcmu() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec { mime_type: MIME_TYPE_PCMU.to_owned(), clock_rate: 8000, channels: 1, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] },
        payload_type: 0,
    }
}

/// Opens one leg: client offer → engine answer → both sides connected.
async fn open_leg(index: usize, engine: MediaEngine, srv: tokio::runtime::Handle, shared: Arc<Shared>) -> Result<Leg, String> {
    let t0 = Instant::now();
    let mut media = RtcMediaEngine::default();
    media.register_codec(pcmu(), RtpCodecKind::Audio).map_err(|e| format!("codec: {e}"))?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(|e| format!("interceptors: {e}"))?;
    let (gathered_tx, mut gathered) = mpsc::channel(1);
    let (state_tx, mut state) = watch::channel(RTCPeerConnectionState::New);
    let counters = Arc::new(LegCounters::default());
    let partner = Arc::new(AtomicU64::new(u64::MAX));
    let handler = Arc::new(ClientHandler { gathered: gathered_tx, state: state_tx, counters: counters.clone(), shared, partner: partner.clone() });
    let pc = step(
        "client peer connection",
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(SettingEngineBuilder::new().with_include_loopback_candidate(true).build())
            .with_handler(handler)
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build(),
    )
    .await?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let result = async {
        let ssrc = 0x1000_0000 | index as u32;
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("client-{index}"),
            format!("client-audio-{index}"),
            "client".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: pcmu().rtp_codec,
                ..Default::default()
            }],
        )));
        step("client add_track", pc.add_track(track.clone() as Arc<dyn TrackLocal>)).await?;
        let offer = step("client create_offer", pc.create_offer(None)).await?;
        step("client set_local_description", pc.set_local_description(offer)).await?;
        timeout(STEP, gathered.recv()).await.map_err(|_| "client ICE gathering: timed out".to_string())?;
        let offer = timeout(STEP, pc.local_description()).await.ok().flatten().ok_or("client: no local description")?.sdp;

        // The engine answers on its own runtime, as the server would.
        let answered = srv.spawn(async move {
            let (ep, answer) = engine.webrtc_endpoint(&offer).await.map_err(|e| format!("webrtc_endpoint: {e}"))?;
            let events = ep.events();
            Ok::<_, String>((ep, answer, events))
        });
        let (ep, answer, mut events) = match timeout(STEP, answered).await {
            Ok(Ok(r)) => r?,
            Ok(Err(e)) => return Err(format!("webrtc_endpoint task: {e}")),
            Err(_) => return Err("webrtc_endpoint: timed out".into()),
        };
        let desc = RTCSessionDescription::answer(answer).map_err(|e| format!("reading the answer: {e}"))?;
        step("client set_remote_description", pc.set_remote_description(desc)).await?;

        let client_up = async {
            loop {
                match *state.borrow_and_update() {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    s @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => return Err(format!("client connection {s}")),
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err("client handler gone".to_string());
                }
            }
        };
        let server_up = async {
            loop {
                match events.recv().await {
                    Ok(MediaEvent::Connected) => return Ok(()),
                    Ok(MediaEvent::Disconnected) => return Err("engine leg disconnected".to_string()),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err("engine leg events closed".to_string()),
                }
            }
        };
        match timeout(STEP, async { tokio::try_join!(client_up, server_up) }).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let s = *state.borrow();
                return Err(format!("connecting: timed out (client {s})"));
            }
        }
        Ok((track, ssrc, ep))
    }
    .await;
    match result {
        Ok((track, ssrc, ep)) => Ok(Leg { index, pc, track, ssrc, ep, counters, partner, setup: t0.elapsed() }),
        Err(e) => {
            let _ = timeout(Duration::from_secs(5), pc.close()).await;
            Err(e)
        }
    }
}

/// One client's sender: a PCMU packet every 20 ms, tagged with stream and send time.
async fn send_loop(leg_index: usize, track: Arc<TrackLocalStaticRTP>, ssrc: u32, counters: Arc<LegCounters>, shared: Arc<Shared>, offset: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut seq, mut ts) = (rand_u16(leg_index), 0u32);
    let mut payload = [0xFFu8; PAYLOAD]; // µ-law silence after the tag
    payload[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    payload[4..8].copy_from_slice(&(leg_index as u32).to_be_bytes());
    let mut first = true;
    while !shared.stop.load(Relaxed) {
        tick.tick().await;
        let sent = shared.now();
        payload[8..16].copy_from_slice(&sent.to_be_bytes());
        let pkt = rtc::rtp::packet::Packet {
            header: rtc::rtp::header::Header { version: 2, marker: first, payload_type: 0, sequence_number: seq, timestamp: ts, ssrc, ..Default::default() },
            payload: Bytes::copy_from_slice(&payload),
        };
        first = false;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(PAYLOAD as u32);
        match timeout(Duration::from_millis(200), track.write_rtp(pkt)).await {
            Ok(Ok(())) => {
                if shared.in_window(sent) {
                    counters.sent_in_window.fetch_add(1, Relaxed);
                }
            }
            _ => {
                counters.send_errors.fetch_add(1, Relaxed);
            }
        }
    }
}

fn rand_u16(i: usize) -> u16 {
    (i as u32).wrapping_mul(2_654_435_761).rotate_right(16) as u16
}

fn percentile_ms(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
}

fn hist_percentile_ms(h: &[u64], p: f64) -> f64 {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let want = ((total - 1) as f64 * p) as u64;
    let mut seen = 0;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen > want {
            return (i as u64 * LAT_BUCKET_US) as f64 / 1000.0;
        }
    }
    f64::NAN
}

struct CpuMark {
    process: f64,
    shards: f64,
    srv: f64,
    cli: f64,
    cores: Vec<(u64, u64)>,
    allocs: [u64; 3],
}

fn cpu_mark() -> CpuMark {
    CpuMark {
        process: common::process_cpu(),
        shards: common::thread_cpu("pacer-media"),
        srv: common::thread_cpu("srv-rt"),
        cli: common::thread_cpu("cli-rt"),
        cores: common::core_times(),
        allocs: allocs(),
    }
}

fn main() {
    let a = args();
    let start = Instant::now();
    // No hangs, whatever happens: a run that outlives this deadline reports and exits.
    let deadline = Duration::from_secs(240) + Duration::from_secs_f64(2.0 * a.seconds) + Duration::from_millis(400 * a.legs as u64);
    let finished = Arc::new(AtomicBool::new(false));
    {
        let finished = finished.clone();
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                while start.elapsed() < deadline {
                    std::thread::sleep(Duration::from_millis(200));
                    if finished.load(Relaxed) {
                        return;
                    }
                }
                println!("{}", serde_json::json!({ "error": format!("watchdog: the run did not finish in {deadline:?}") }));
                std::process::exit(3);
            })
            .unwrap();
    }

    let runtime = |name: &str, kind: u8| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .on_thread_start(move || KIND.with(|k| k.set(kind)))
            .enable_all()
            .build()
            .unwrap()
    };
    let (srv_rt, cli_rt) = (runtime("srv-rt", SERVER), runtime("cli-rt", CLIENT));

    // Every WebRTC leg takes an RTP port pair from the engine's range.
    let cfg = pacer_config::MediaConfig {
        rtp_port_min: RTP_PORT_MIN,
        rtp_port_max: u16::try_from(RTP_PORT_MIN as usize + a.legs * 2 + 63).expect("--legs too large for the port range"),
        rtp_timeout_s: 0,
        ..Default::default()
    };
    let rss0 = common::rss_bytes();
    let engine = MediaEngine::with_shards(&cfg, a.shards).expect("engine");
    let shared = Arc::new(Shared {
        start,
        from: AtomicU64::new(u64::MAX),
        to: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        latency: (0..=LAT_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
    });

    let srv = srv_rt.handle().clone();
    let out = cli_rt.block_on(async {
        // Setup, C legs at a time.
        let setup_start = Instant::now();
        let cpu_setup0 = cpu_mark();
        let gate = Arc::new(Semaphore::new(a.concurrency));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..a.legs {
            let (gate, engine, srv, shared) = (gate.clone(), engine.clone(), srv.clone(), shared.clone());
            set.spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                open_leg(i, engine, srv, shared).await
            });
        }
        let mut legs: Vec<Leg> = Vec::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(leg)) => legs.push(leg),
                Ok(Err(e)) => *failures.entry(e).or_default() += 1,
                Err(e) => *failures.entry(format!("setup task: {e}")).or_default() += 1,
            }
        }
        let setup_s = setup_start.elapsed().as_secs_f64();
        let cpu_setup1 = cpu_mark();
        legs.sort_by_key(|l| l.index);
        let mut setups: Vec<Duration> = legs.iter().map(|l| l.setup).collect();
        let rss_connected = common::rss_bytes();

        // Pairs of connected legs bridged in the engine; an odd last one hears a tone.
        let mut bridges: Vec<Bridge> = Vec::new();
        let mut bridge_errors = 0u64;
        for pair in legs.chunks(2) {
            if let [x, y] = pair {
                match engine.bridge(&x.ep, &y.ep) {
                    Ok(b) => {
                        x.partner.store(y.index as u64, Relaxed);
                        y.partner.store(x.index as u64, Relaxed);
                        bridges.push(b);
                    }
                    Err(_) => bridge_errors += 1,
                }
            }
        }
        let tone = (legs.len() % 2 == 1).then(|| {
            let ep = legs.last().unwrap().ep.clone();
            srv.spawn(async move { ep.play(&Prompt::tone(440.0, 600_000)).await })
        });

        // Connected and bridged but silent (the engine sends its silence): the cost of
        // merely holding the legs (ICE keepalives, RTCP, timers, silence both ways).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_secs = a.seconds.clamp(1.0, 3.0);
        let i0 = cpu_mark();
        tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
        let i1 = cpu_mark();

        // Senders, spread evenly over the 20 ms period as real calls would be.
        let n = legs.len().max(1);
        let senders: Vec<_> = legs
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let offset = Duration::from_micros(20_000 * k as u64 / n as u64);
                tokio::spawn(send_loop(l.index, l.track.clone(), l.ssrc, l.counters.clone(), shared.clone(), offset))
            })
            .collect();
        // Warm up (bridges settling, the shard moves legs), then measure.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let srv_stats0: Vec<_> = legs.iter().map(|l| l.ep.stats()).collect();
        let c0 = cpu_mark();
        let w0 = shared.now();
        shared.to.store(w0 + (a.seconds * 1e9) as u64, Relaxed);
        shared.from.store(w0, Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
        let c1 = cpu_mark();
        let rss_held = common::rss_bytes();
        let threads_held = common::threads();
        let srv_stats1: Vec<_> = legs.iter().map(|l| l.ep.stats()).collect();
        // Let the window's last packets drain.
        tokio::time::sleep(Duration::from_millis(500)).await;
        shared.stop.store(true, Relaxed);

        // Figures.
        let mut sent = 0u64;
        let mut received = 0u64;
        let mut send_errors = 0u64;
        let mut wrong_stream = 0u64;
        let mut other = 0u64;
        let (mut held, mut held_95) = (0usize, 0usize);
        // What one leg receives in the window at the full 50 packets/s.
        let nominal = 50.0 * a.seconds;
        for (k, l) in legs.iter().enumerate() {
            let c = &l.counters;
            received += c.received_in_window.load(Relaxed);
            send_errors += c.send_errors.load(Relaxed);
            wrong_stream += c.wrong_stream.load(Relaxed);
            other += c.other_in_window.load(Relaxed);
            let got = c.received_in_window.load(Relaxed);
            let partner = if k % 2 == 0 { legs.get(k + 1) } else { legs.get(k - 1) };
            match partner {
                Some(p) => {
                    sent += p.counters.sent_in_window.load(Relaxed);
                    if got > 0 {
                        held += 1;
                    }
                    if got as f64 >= 0.95 * nominal {
                        held_95 += 1;
                    }
                }
                // The odd leg: held if the tone reached it.
                None => {
                    let other = c.other_in_window.load(Relaxed);
                    if other > 0 {
                        held += 1;
                    }
                    if other as f64 >= 0.95 * nominal {
                        held_95 += 1;
                    }
                }
            }
        }
        let srv_delta = |f: fn(&pacer_media::LegStats) -> u64| -> u64 {
            srv_stats0.iter().zip(&srv_stats1).map(|(x, y)| f(y).saturating_sub(f(x))).sum()
        };
        let srv_rx = srv_delta(|s| s.packets_received);
        let srv_tx = srv_delta(|s| s.packets_sent);
        let srv_lost = srv_delta(|s| s.packets_lost);
        let lat: Vec<u64> = shared.latency.iter().map(|b| b.load(Relaxed)).collect();
        let secs = a.seconds;
        let connected = legs.len();
        let per_leg_pct = |cores: f64| if connected > 0 { 100.0 * cores / connected as f64 } else { f64::NAN };
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        let win = |f: fn(&CpuMark) -> f64| (f(&c1) - f(&c0)) / secs;
        let (proc_cores, shard_cores, srv_cores, cli_cores) = (win(|m| m.process), win(|m| m.shards), win(|m| m.srv), win(|m| m.cli));
        let setup_cpu = |f: fn(&CpuMark) -> f64| f(&cpu_setup1) - f(&cpu_setup0);
        let busy_cores: f64 = c0.cores.iter().zip(&c1.cores).map(|(x, y)| (y.0 - x.0) as f64 / (y.1 - x.1).max(1) as f64).sum();
        let alloc = |k: u8| (c1.allocs[k as usize] - c0.allocs[k as usize]) as f64;
        let srv_packets = (srv_rx + srv_tx).max(1) as f64;
        let cli_packets = (sent + received + other).max(1) as f64;
        let json = serde_json::json!({
            "legs_requested": a.legs,
            "legs_connected": connected,
            "legs_failed": a.legs - connected,
            "setup_failures": failures,
            "bridges": bridges.len(),
            "bridge_errors": bridge_errors,
            "legs_held": held,
            // Received at least 95 % of the nominal 50 packets/s of partner audio in the window.
            "legs_held_95pct": held_95,
            "concurrency": a.concurrency,
            "shards": a.shards,
            "seconds": secs,
            "setup_wall_s": round3(setup_s),
            "setup_p50_ms": round3(percentile_ms(&mut setups, 0.50)),
            "setup_p99_ms": round3(percentile_ms(&mut setups, 0.99)),
            "setup_max_ms": round3(percentile_ms(&mut setups, 1.0)),
            // CPU seconds spent in setup, per leg connected (handshakes: ECDSA, DTLS).
            "setup_cpu_ms_per_leg_server": round3(1000.0 * (setup_cpu(|m| m.srv) + setup_cpu(|m| m.shards)) / connected.max(1) as f64),
            "setup_cpu_ms_per_leg_client": round3(1000.0 * setup_cpu(|m| m.cli) / connected.max(1) as f64),
            "client_sent_packets_per_s": (sent as f64 / secs).round(),
            // Below 100 the clients (same process, same cores) could not keep up the 20 ms pace.
            "client_send_percent_of_nominal": round3(100.0 * sent as f64 / (nominal * (connected - connected % 2) as f64).max(1.0)),
            "client_received_packets_per_s": (received as f64 / secs).round(),
            "loss": sent.saturating_sub(received),
            "loss_percent": round3(if sent > 0 { 100.0 * sent.saturating_sub(received) as f64 / sent as f64 } else { f64::NAN }),
            // Audio the clients got that was not a partner's packet: the engine's silence
            // when a partner's packet was late (and the odd leg's tone).
            "client_other_packets_per_s": (other as f64 / secs).round(),
            "send_errors": send_errors,
            "wrong_stream": wrong_stream,
            "latency_p50_ms": round3(hist_percentile_ms(&lat, 0.50)),
            "latency_p99_ms": round3(hist_percentile_ms(&lat, 0.99)),
            "engine_received_packets_per_s": (srv_rx as f64 / secs).round(),
            "engine_sent_packets_per_s": (srv_tx as f64 / secs).round(),
            "engine_packets_lost": srv_lost,
            "process_cpu_cores": round3(proc_cores),
            "shard_cpu_cores": round3(shard_cores),
            "server_webrtc_cpu_cores": round3(srv_cores),
            "client_cpu_cores": round3(cli_cores),
            // What else on the machine took CPU in the window (other builds, other runs).
            "other_processes_cpu_cores": round3(busy_cores - proc_cores),
            // The engine's side per packet it handled (in + out), which holds under
            // contention; and what that makes for all legs at the full 50 + 50 packets/s.
            "server_cpu_us_per_engine_packet": round3(1e6 * (shard_cores + srv_cores) * secs / srv_packets),
            "server_cores_needed_at_full_rate": round3((shard_cores + srv_cores) * secs / srv_packets * connected as f64 * 100.0),
            "client_cpu_us_per_client_packet": round3(1e6 * cli_cores * secs / cli_packets),
            "server_runtime_allocs_per_engine_packet": round3(alloc(SERVER) / srv_packets),
            "shard_allocs_per_engine_packet": round3(alloc(SHARD) / srv_packets),
            "client_allocs_per_client_packet": round3(alloc(CLIENT) / cli_packets),
            "cpu_percent_per_core": c0.cores.iter().zip(&c1.cores).map(|(x, y)| (1000.0 * (y.0 - x.0) as f64 / (y.1 - x.1).max(1) as f64).round() / 10.0).collect::<Vec<_>>(),
            // Per connected leg, in % of one core: the whole process (clients included),
            // the engine's side (shards + the runtime where its webrtc-rs legs run), shards alone.
            "process_cpu_percent_per_leg": round3(per_leg_pct(proc_cores)),
            "idle_server_cpu_percent_per_leg": round3(per_leg_pct((i1.shards - i0.shards + i1.srv - i0.srv) / idle_secs)),
            "idle_client_cpu_percent_per_leg": round3(per_leg_pct((i1.cli - i0.cli) / idle_secs)),
            "server_cpu_percent_per_leg": round3(per_leg_pct(shard_cores + srv_cores)),
            "shard_cpu_percent_per_leg": round3(per_leg_pct(shard_cores)),
            // Process RSS growth per leg (KiB); both peers of a leg live in this process.
            "rss_per_leg_kib_connected": round3(rss_connected.saturating_sub(rss0) as f64 / 1024.0 / connected.max(1) as f64),
            "rss_per_leg_kib_held": round3(rss_held.saturating_sub(rss0) as f64 / 1024.0 / connected.max(1) as f64),
            "rss_mib": round3(rss_held as f64 / 1048576.0),
            "threads": threads_held,
        });

        // Teardown, bounded: senders, bridges, engine legs, client connections.
        let teardown = Instant::now();
        for s in &senders {
            s.abort();
        }
        if let Some(t) = tone {
            t.abort();
        }
        drop(bridges);
        let mut closes = tokio::task::JoinSet::new();
        for l in legs {
            l.ep.close();
            drop(l.ep);
            let pc = l.pc;
            closes.spawn(async move { timeout(Duration::from_secs(5), pc.close()).await.is_ok_and(|r| r.is_ok()) });
        }
        let mut close_failures = 0u64;
        let all = timeout(Duration::from_secs(30), async {
            while let Some(r) = closes.join_next().await {
                if !matches!(r, Ok(true)) {
                    close_failures += 1;
                }
            }
        })
        .await;
        if all.is_err() {
            closes.abort_all();
        }
        (json, close_failures, all.is_ok(), teardown)
    });
    let (mut json, close_failures, closed_in_time, teardown) = out;
    drop(engine);
    srv_rt.shutdown_timeout(Duration::from_secs(5));
    cli_rt.shutdown_timeout(Duration::from_secs(5));
    json["teardown_ms"] = serde_json::json!((teardown.elapsed().as_secs_f64() * 1000.0).round());
    json["client_close_failures"] = serde_json::json!(close_failures);
    json["teardown_in_time"] = serde_json::json!(closed_in_time);
    json["wall_s"] = serde_json::json!((start.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    finished.store(true, Relaxed);
    println!("{json}");
}
