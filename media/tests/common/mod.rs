//! Helpers for the media tests: engines on private port ranges, raw RTP phones that
//! record exactly what reaches them, and a tone detector.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pacer_media::{AudioFrame, Endpoint, MediaEngine};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// An engine on its own port range, so tests can run in parallel.
pub fn engine(port_base: u16) -> MediaEngine {
    engine_with(port_base, |_| {})
}

pub fn engine_with(port_base: u16, f: impl FnOnce(&mut pacer_config::MediaConfig)) -> MediaEngine {
    let mut cfg = pacer_config::MediaConfig {
        rtp_port_min: port_base,
        rtp_port_max: port_base + 99,
        ..Default::default()
    };
    f(&mut cfg);
    MediaEngine::with_shards(&cfg, 2).expect("engine")
}

/// Connects two endpoints of ours: `a` offers, `b` answers.
pub fn connect(a: &Endpoint, b: &Endpoint) {
    let answer = b.answer_offer(&a.local_offer()).expect("answer");
    a.accept_answer(&answer).expect("accept");
}

/// Power of `freq` in `s` (Goertzel), normalised so a full-scale sine gives 0.25.
pub fn tone_power(s: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in s {
        let s0 = x as f64 / 32768.0 + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (s.len() as f64).powi(2)
}

/// Whether `freq` is clearly present (a half-scale tone gives about 0.06).
pub fn has_tone(s: &[i16], freq: f64) -> bool {
    tone_power(s, freq) > 0.005
}

/// Collects tapped audio for `d`, skipping the first `skip` to let streams settle.
pub async fn listen(tap: &mut mpsc::Receiver<AudioFrame>, skip: Duration, d: Duration) -> Vec<i16> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < skip + d {
        match tokio::time::timeout(Duration::from_millis(500), tap.recv()).await {
            Ok(Some(f)) if start.elapsed() >= skip => out.extend_from_slice(&f.samples),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => break,
        }
    }
    out
}

/// Waits for an event that `pick` selects, or fails after `limit`.
pub async fn wait_event<T>(
    rx: &mut tokio::sync::broadcast::Receiver<pacer_media::MediaEvent>,
    limit: Duration,
    mut pick: impl FnMut(&pacer_media::MediaEvent) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) => {
                if let Some(t) = pick(&ev) {
                    return Some(t);
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => return None,
        }
    }
}

/// One RTP packet as a raw phone saw it arrive.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub at: Instant,
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub pt: u8,
    pub marker: bool,
    pub first_byte: u8,
    pub len: usize,
}

/// A bare RTP phone on a UDP socket: sends a fixed payload byte every 20 ms (when told
/// to) and records every packet it receives.
pub struct RawPhone {
    pub sock: Arc<UdpSocket>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    sending: Arc<Mutex<Option<(SocketAddr, u8, u8)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RawPhone {
    pub async fn new(ssrc: u32, seq0: u16, ts0: u32) -> RawPhone {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sending: Arc<Mutex<Option<(SocketAddr, u8, u8)>>> = Arc::new(Mutex::new(None));
        let rx = {
            let (sock, seen) = (sock.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                    if let Ok(r) = rtp_rs::RtpReader::new(&buf[..n]) {
                        seen.lock().unwrap().push(Seen {
                            at: Instant::now(),
                            ssrc: r.ssrc(),
                            seq: r.sequence_number().into(),
                            ts: r.timestamp(),
                            pt: r.payload_type(),
                            marker: r.mark(),
                            first_byte: r.payload().first().copied().unwrap_or(0),
                            len: r.payload().len(),
                        });
                    }
                }
            })
        };
        let tx = {
            let (sock, sending) = (sock.clone(), sending.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                let (mut seq, mut ts) = (seq0, ts0);
                let mut buf = [0u8; 200];
                loop {
                    tick.tick().await;
                    let Some((dest, pt, byte)) = *sending.lock().unwrap() else { continue };
                    let payload = [byte; 160];
                    let n = rtp_rs::RtpPacketBuilder::new()
                        .payload_type(pt)
                        .ssrc(ssrc)
                        .sequence(seq.into())
                        .timestamp(ts)
                        .payload(&payload)
                        .build_into(&mut buf)
                        .unwrap();
                    let _ = sock.send_to(&buf[..n], dest).await;
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                }
            })
        };
        RawPhone { sock, seen, sending, tasks: vec![rx, tx] }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// A PCMU offer from this phone (no rtcp-mux: it has no RTCP socket, which is fine).
    pub fn offer(&self) -> String {
        format!(
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n",
            self.addr().port()
        )
    }

    pub fn start_sending(&self, to: SocketAddr, pt: u8, byte: u8) {
        *self.sending.lock().unwrap() = Some((to, pt, byte));
    }

    pub fn stop_sending(&self) {
        *self.sending.lock().unwrap() = None;
    }

    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for RawPhone {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Polls `f` until it is true or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
