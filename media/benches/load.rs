//! Media load tool: N bridged calls through pacer-media on loopback, real RTP both ways
//! at 20 ms, checked at the far side; then a bare recvmmsg/sendmmsg forwarder under the
//! same load, for the ratio to what the machine can do. Prints one JSON line.
//!
//! ```text
//! cargo bench -p pacer-media --bench load -- [--calls N] [--seconds S] [--shards K] [--record]
//! ```
//!
//! Every generated packet carries (magic, stream, send time) in its payload; the payload
//! crosses the relay untouched (same codec both sides), so the far side measures one-way
//! latency, loss (sent in the window but never received) and reordering per stream.

mod common;

use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const MAGIC: u32 = 0x5041_4345; // "PACE"
const PAYLOAD: usize = 160;
const PKT: usize = 12 + PAYLOAD;
const BATCH: usize = 64;

struct Args {
    calls: usize,
    seconds: f64,
    shards: usize,
    record: bool,
}

fn args() -> Args {
    let mut a = Args {
        calls: 1000,
        seconds: 10.0,
        shards: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        record: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--calls" => a.calls = val().parse().expect("--calls N"),
            "--seconds" => a.seconds = val().parse().expect("--seconds S"),
            "--shards" => a.shards = val().parse().expect("--shards K"),
            "--record" => a.record = true,
            // cargo bench passes --bench to every harness.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// What one receiver learnt in the measurement window.
#[derive(Default)]
struct Tally {
    received: u64,
    reordered: u64,
    latencies_us: Vec<u32>,
}

struct Shared {
    start: Instant,
    /// The measurement window, in ns since `start`: packets sent in [from, to) count.
    from: AtomicU64,
    to: AtomicU64,
    sent_in_window: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.from.load(Relaxed) && t < self.to.load(Relaxed)
    }
}

fn big_buffers(sock: &UdpSocket) {
    let fd = sock.as_raw_fd();
    let size: libc::c_int = 64 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: setsockopt on a valid fd with an int option; failure leaves the default.
        unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, opt, &size as *const _ as *const libc::c_void, size_of::<libc::c_int>() as u32);
        }
    }
}

fn sockaddr(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = a else { panic!("IPv4 only") };
    // SAFETY: plain C struct, all-zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = v4.port().to_be();
    sa.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    sa
}

/// sendmmsg of `pkts` to `dests`, BATCH messages per system call.
fn send_batch(sock: &UdpSocket, pkts: &mut [[u8; PKT]], dests: &[libc::sockaddr_in]) {
    let mut done = 0;
    while done < pkts.len() {
        let n = (pkts.len() - done).min(BATCH);
        // SAFETY: iovecs and headers point into live buffers for the duration of the call.
        unsafe {
            let mut iov: [libc::iovec; BATCH] = zeroed();
            let mut hdr: [libc::mmsghdr; BATCH] = zeroed();
            for i in 0..n {
                iov[i] = libc::iovec { iov_base: pkts[done + i].as_mut_ptr() as *mut _, iov_len: PKT };
                hdr[i].msg_hdr.msg_name = &dests[done + i] as *const _ as *mut _;
                hdr[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                hdr[i].msg_hdr.msg_iov = &mut iov[i];
                hdr[i].msg_hdr.msg_iovlen = 1;
            }
            let r = libc::sendmmsg(sock.as_raw_fd(), hdr.as_mut_ptr(), n as u32, 0);
            if r <= 0 {
                return;
            }
            done += r as usize;
        }
    }
}

/// recvmmsg into `bufs` (blocking until at least one, bounded by the read timeout).
fn recv_batch(sock: &UdpSocket, bufs: &mut [[u8; 2048]; BATCH], lens: &mut [usize; BATCH], from: &mut [libc::sockaddr_in; BATCH]) -> usize {
    // SAFETY: as in send_batch; the kernel writes at most the given lengths.
    unsafe {
        let mut iov: [libc::iovec; BATCH] = zeroed();
        let mut hdr: [libc::mmsghdr; BATCH] = zeroed();
        for i in 0..BATCH {
            iov[i] = libc::iovec { iov_base: bufs[i].as_mut_ptr() as *mut _, iov_len: 2048 };
            hdr[i].msg_hdr.msg_name = &mut from[i] as *mut _ as *mut _;
            hdr[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            hdr[i].msg_hdr.msg_iov = &mut iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
        }
        let r = libc::recvmmsg(sock.as_raw_fd(), hdr.as_mut_ptr(), BATCH as u32, libc::MSG_WAITFORONE, std::ptr::null_mut());
        if r <= 0 {
            return 0;
        }
        for i in 0..r as usize {
            lens[i] = hdr[i].msg_len as usize;
        }
        r as usize
    }
}

/// Sends one packet per stream every 20 ms, spread evenly over the period as real calls
/// would be (not in one burst, which would measure queueing instead of the relay).
// `call` indexes three tables (addresses, and per stream sequence and timestamp).
#[allow(clippy::needless_range_loop)]
fn sender(shared: Arc<Shared>, socks: [Arc<UdpSocket>; 2], dests: Vec<[SocketAddr; 2]>) {
    let streams = dests.len() * 2;
    let mut seq = vec![0u16; streams];
    let mut ts = vec![0u32; streams];
    let addrs: Vec<[libc::sockaddr_in; 2]> = dests.iter().map(|d| [sockaddr(d[0]), sockaddr(d[1])]).collect();
    const SLOTS: u32 = 20;
    let period = Duration::from_millis(20);
    let mut next = Instant::now();
    let mut bufs: Vec<[u8; PKT]> = vec![[0u8; PKT]; BATCH * 4];
    let mut dest_buf: Vec<libc::sockaddr_in> = Vec::with_capacity(BATCH * 4);
    while !shared.stop.load(Relaxed) {
        for slot in 0..SLOTS {
            let t = next + period * slot / SLOTS;
            if let Some(d) = t.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let (lo, hi) = (dests.len() * slot as usize / SLOTS as usize, dests.len() * (slot as usize + 1) / SLOTS as usize);
            for side in 0..2 {
                let mut k = 0;
                dest_buf.clear();
                for call in lo..hi {
                    let stream = call * 2 + side;
                    let sent = shared.now();
                    let p = &mut bufs[k];
                    p[0] = 0x80;
                    p[1] = 0;
                    p[2..4].copy_from_slice(&seq[stream].to_be_bytes());
                    p[4..8].copy_from_slice(&ts[stream].to_be_bytes());
                    p[8..12].copy_from_slice(&(stream as u32 + 1).to_be_bytes());
                    p[12..16].copy_from_slice(&MAGIC.to_be_bytes());
                    p[16..20].copy_from_slice(&(stream as u32).to_be_bytes());
                    p[20..28].copy_from_slice(&sent.to_be_bytes());
                    seq[stream] = seq[stream].wrapping_add(1);
                    ts[stream] = ts[stream].wrapping_add(PAYLOAD as u32);
                    if shared.in_window(sent) {
                        shared.sent_in_window.fetch_add(1, Relaxed);
                    }
                    dest_buf.push(addrs[call][side]);
                    k += 1;
                    if k == bufs.len() {
                        send_batch(&socks[side], &mut bufs[..k], &dest_buf);
                        k = 0;
                        dest_buf.clear();
                    }
                }
                send_batch(&socks[side], &mut bufs[..k], &dest_buf);
            }
        }
        next += period;
    }
}

/// Receives on one side; checks order per stream (by the sequence the far side sees)
/// and one-way latency from the send time in the payload.
fn receiver(shared: Arc<Shared>, sock: Arc<UdpSocket>, streams: usize) -> Tally {
    let mut last_seq: Vec<Option<u16>> = vec![None; streams];
    let mut tally = Tally::default();
    let mut bufs = Box::new([[0u8; 2048]; BATCH]);
    let mut lens = [0usize; BATCH];
    // SAFETY: plain C structs.
    let mut from: [libc::sockaddr_in; BATCH] = unsafe { zeroed() };
    while !shared.stop.load(Relaxed) {
        let n = recv_batch(&sock, &mut bufs, &mut lens, &mut from);
        let now = shared.now();
        for i in 0..n {
            let p = &bufs[i][..lens[i]];
            // RTCP, silence before the bridge, or anything not ours.
            if p.len() < 28 || (200..=206).contains(&p[1]) || u32::from_be_bytes([p[12], p[13], p[14], p[15]]) != MAGIC {
                continue;
            }
            let stream = u32::from_be_bytes([p[16], p[17], p[18], p[19]]) as usize;
            let sent = u64::from_be_bytes(p[20..28].try_into().unwrap());
            let seq = u16::from_be_bytes([p[2], p[3]]);
            if stream >= streams {
                continue;
            }
            match last_seq[stream] {
                Some(prev) if (seq.wrapping_sub(prev) as i16) <= 0 => tally.reordered += 1,
                _ => last_seq[stream] = Some(seq),
            }
            if shared.in_window(sent) {
                tally.received += 1;
                tally.latencies_us.push(((now.saturating_sub(sent)) / 1000).min(u32::MAX as u64) as u32);
            }
        }
    }
    tally
}

fn percentile(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

struct Run {
    pps: f64,
    loss: u64,
    sent: u64,
    reordered: u64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_cores: f64,
    core_pct: Vec<f64>,
}

/// Runs the generator against `dests` for the measurement window and collects figures;
/// `cpu_prefix` names the threads whose CPU time is the system under test.
fn measure(socks: &[Arc<UdpSocket>; 2], dests: Vec<[SocketAddr; 2]>, seconds: f64, cpu_prefix: &str) -> Run {
    let streams = dests.len() * 2;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        from: AtomicU64::new(u64::MAX),
        to: AtomicU64::new(u64::MAX),
        sent_in_window: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let rx: Vec<_> = socks
        .iter()
        .map(|s| {
            s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let (sh, s) = (shared.clone(), s.clone());
            std::thread::Builder::new().name("load-rx".into()).spawn(move || receiver(sh, s, streams)).unwrap()
        })
        .collect();
    let tx = {
        let (sh, socks) = (shared.clone(), socks.clone());
        std::thread::Builder::new().name("load-tx".into()).spawn(move || sender(sh, socks, dests)).unwrap()
    };
    // Warm up (latching, bridges settling), then measure.
    std::thread::sleep(Duration::from_secs(2));
    let (c0, t0) = (common::thread_cpu(cpu_prefix), common::core_times());
    let w0 = shared.now();
    shared.to.store(w0 + (seconds * 1e9) as u64, Relaxed);
    shared.from.store(w0, Relaxed);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (c1, t1) = (common::thread_cpu(cpu_prefix), common::core_times());
    // Let the window's last packets drain.
    std::thread::sleep(Duration::from_millis(500));
    shared.stop.store(true, Relaxed);
    tx.join().unwrap();
    let mut tally = Tally::default();
    for h in rx {
        let t = h.join().unwrap();
        tally.received += t.received;
        tally.reordered += t.reordered;
        tally.latencies_us.extend(t.latencies_us);
    }
    let sent = shared.sent_in_window.load(Relaxed);
    Run {
        pps: tally.received as f64 / seconds,
        loss: sent.saturating_sub(tally.received),
        sent,
        reordered: tally.reordered,
        p50_ms: percentile(&mut tally.latencies_us, 0.50),
        p99_ms: percentile(&mut tally.latencies_us, 0.99),
        cpu_cores: (c1 - c0) / seconds,
        core_pct: t0.iter().zip(&t1).map(|(a, b)| 100.0 * (b.0 - a.0) as f64 / (b.1 - a.1).max(1) as f64).collect(),
    }
}

/// The reference: one socket, recvmmsg in, sendmmsg out to the other side.
fn bare_forwarder(stop: Arc<AtomicBool>, sock: UdpSocket, sides: [SocketAddr; 2]) {
    let mut bufs = Box::new([[0u8; 2048]; BATCH]);
    let mut lens = [0usize; BATCH];
    // SAFETY: plain C structs.
    let mut from: [libc::sockaddr_in; BATCH] = unsafe { zeroed() };
    let to = [sockaddr(sides[0]), sockaddr(sides[1])];
    let mut out: Vec<[u8; PKT]> = vec![[0u8; PKT]; BATCH];
    let mut dests = Vec::with_capacity(BATCH);
    while !stop.load(Relaxed) {
        let n = recv_batch(&sock, &mut bufs, &mut lens, &mut from);
        dests.clear();
        for i in 0..n {
            let len = lens[i].min(PKT);
            out[i][..len].copy_from_slice(&bufs[i][..len]);
            // What came from the customer side goes to the agent side, and back.
            let side = usize::from(from[i].sin_port == to[0].sin_port);
            dests.push(to[side]);
        }
        send_batch(&sock, &mut out[..n], &dests);
    }
}

fn main() {
    let a = args();
    let socks: [Arc<UdpSocket>; 2] = std::array::from_fn(|_| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        big_buffers(&s);
        Arc::new(s)
    });
    let side_addr = [socks[0].local_addr().unwrap(), socks[1].local_addr().unwrap()];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // The relay: N calls of two legs each, bridged.
    let cfg = pacer_config::MediaConfig {
        rtp_port_min: 10000,
        rtp_port_max: 10000 + (a.calls as u16) * 4 + 3,
        rtp_timeout_s: 0,
        ..Default::default()
    };
    let rss0 = common::rss_bytes();
    let engine = pacer_media::MediaEngine::with_shards(&cfg, a.shards).expect("engine");
    let rec_dir = tempfile::tempdir().unwrap();
    let offer = |port: u16| {
        format!("v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtcp-mux\r\n")
    };
    let (calls, dests) = rt.block_on(async {
        let mut calls = Vec::new();
        let mut dests = Vec::new();
        // Agents' persistent legs come first (they log in before calls reach them); a
        // bridge runs on its agent leg's shard.
        let mut agents = Vec::new();
        for _ in 0..a.calls {
            agents.push(engine.rtp_endpoint().await.expect("agent leg"));
        }
        for (i, g) in agents.into_iter().enumerate() {
            let c = engine.rtp_endpoint().await.expect("customer leg");
            c.answer_offer(&offer(side_addr[0].port())).unwrap();
            g.answer_offer(&offer(side_addr[1].port())).unwrap();
            let b = engine.bridge(&c, &g).unwrap();
            let r = a.record.then(|| b.record(rec_dir.path().join(format!("call-{i}.wav"))).unwrap());
            dests.push([c.local_addr().unwrap(), g.local_addr().unwrap()]);
            calls.push((c, g, b, r));
        }
        (calls, dests)
    });
    let relay = measure(&socks, dests, a.seconds, "pacer-media");
    let rss1 = common::rss_bytes();
    drop(calls);
    drop(engine);

    // The bare forwarder under the same offered load.
    let fwd = UdpSocket::bind("127.0.0.1:0").unwrap();
    big_buffers(&fwd);
    fwd.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let faddr = fwd.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let fh = {
        let stop = stop.clone();
        std::thread::Builder::new().name("bare-fwd".into()).spawn(move || bare_forwarder(stop, fwd, side_addr)).unwrap()
    };
    let bare = measure(&socks, vec![[faddr, faddr]; a.calls], a.seconds, "bare-fwd");
    stop.store(true, Relaxed);
    fh.join().unwrap();

    let per_core = |r: &Run| if r.cpu_cores > 0.0 { r.pps / r.cpu_cores } else { f64::NAN };
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let out = serde_json::json!({
        "calls": a.calls,
        "shards": a.shards,
        "record": a.record,
        "seconds": a.seconds,
        "packets_per_s": relay.pps.round(),
        "sent": relay.sent,
        // What the generator managed to offer: below calls × 100 it, not the relay, was short of CPU.
        "offered_packets_per_s": (relay.sent as f64 / a.seconds).round(),
        "loss": relay.loss,
        "reordered": relay.reordered,
        "latency_p50_ms": round3(relay.p50_ms),
        "latency_p99_ms": round3(relay.p99_ms),
        "cpu_percent_per_core": relay.core_pct.iter().map(|p| (p * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "relay_cpu_cores": round3(relay.cpu_cores),
        // Per call carried in full (100 packets/s relayed), so a generator that fell short
        // does not flatter the figure.
        "cpu_percent_of_core_per_call": round3(100.0 * relay.cpu_cores / (relay.pps / 100.0).max(1.0)),
        "memory_per_call_kib": round3(rss1.saturating_sub(rss0) as f64 / 1024.0 / a.calls as f64),
        "relay_packets_per_core_s": per_core(&relay).round(),
        "bare_packets_per_s": bare.pps.round(),
        "bare_loss": bare.loss,
        "bare_latency_p50_ms": round3(bare.p50_ms),
        "bare_latency_p99_ms": round3(bare.p99_ms),
        "bare_cpu_cores": round3(bare.cpu_cores),
        "bare_packets_per_core_s": per_core(&bare).round(),
        "relay_vs_bare_per_core": round3(per_core(&relay) / per_core(&bare)),
    });
    println!("{out}");
}
