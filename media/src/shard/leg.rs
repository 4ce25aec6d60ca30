//! A leg as its shard owns it: sockets, negotiated media, latching, receive statistics,
//! the outgoing stream and what feeds it when no bridge does (silence, prompts, digits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc as tmpsc, oneshot};

use crate::codec::FRAME_SAMPLES;
use crate::dtmf::{DtmfDetector, DtmfSender};
use crate::leg::{AudioFrame, LegShared, MediaEvent};
use crate::metrics::ShardCounters;
use crate::prompt::Prompt;
use crate::rtp::{self, OutStream, RxStats};
use crate::sdp::Negotiated;

use super::bridge::Role;

/// A leg that a bridge fed this recently needs nothing from our generator.
pub(super) const FED_GRACE: Duration = Duration::from_millis(60);
/// After this long without packets from the latched address, another address may take
/// over (the far end moved, or its NAT binding changed with a new SSRC).
const RELATCH_AFTER: Duration = Duration::from_secs(2);
/// A digit whose packets stop without an end packet is reported after this.
const DTMF_STALE: Duration = Duration::from_millis(500);
/// How often an RTCP report goes out (RFC 3550 suggests 5 s for a two-party session).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) enum LegIo {
    /// A plain RTP leg: its RTP and RTCP sockets and the port pair to give back.
    Udp { rtp: mio::net::UdpSocket, rtcp: mio::net::UdpSocket, state: quinn_udp::UdpSocketState, port: u16 },
    /// A leg whose transport lives elsewhere (WebRTC: DTLS-SRTP in webrtc-rs); plain RTP
    /// packets go out through this channel and come in as shard commands.
    Channel { tx: tmpsc::Sender<Vec<u8>> },
}

pub(super) struct Playback {
    pub prompt: Prompt,
    pub pos: usize,
    pub done: Option<oneshot::Sender<()>>,
}

pub(crate) struct Leg {
    pub shared: Arc<LegShared>,
    pub io: LegIo,
    pub neg: Option<Negotiated>,
    /// Where RTP goes: the latched source address, else the negotiated one.
    pub dest: Option<SocketAddr>,
    pub dest_rtcp: Option<SocketAddr>,
    latched: Option<(SocketAddr, u32)>,
    pub last_rx: Option<Instant>,
    configured_at: Option<Instant>,
    pub rx: RxStats,
    pub out: OutStream,
    pub fed_at: Option<Instant>,
    pub bridge: Option<(usize, Role)>,
    pub(super) play: Option<Playback>,
    pub dtmf_tx: DtmfSender,
    pub dtmf_rx: DtmfDetector,
    dtmf_last: Option<Instant>,
    pub taps: Vec<tmpsc::Sender<AudioFrame>>,
    tap_buf: [i16; FRAME_SAMPLES],
    tap_len: usize,
    tap_ts: u32,
    timed_out: bool,
    next_rtcp: Option<Instant>,
    // Local counters, published to `shared.stats` a few times a second.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub malformed: u64,
    published_lost: u64,
    published_late: u64,
}

impl Leg {
    pub fn new(shared: Arc<LegShared>, io: LegIo, seed: u64) -> Self {
        // RFC 3550 wants unpredictable SSRC and start values; a per-leg seed mixed by
        // splitmix64 is plenty for that (nothing here is a security boundary: SRTP is).
        let r = splitmix(seed);
        Self {
            shared,
            io,
            neg: None,
            dest: None,
            dest_rtcp: None,
            latched: None,
            last_rx: None,
            configured_at: None,
            rx: RxStats::default(),
            out: OutStream::new(r as u32, (r >> 32) as u16, splitmix(r) as u32),
            fed_at: None,
            bridge: None,
            play: None,
            dtmf_tx: DtmfSender::default(),
            dtmf_rx: DtmfDetector::default(),
            dtmf_last: None,
            taps: Vec::new(),
            tap_buf: [0; FRAME_SAMPLES],
            tap_len: 0,
            tap_ts: 0,
            timed_out: false,
            next_rtcp: None,
            tx_packets: 0,
            tx_bytes: 0,
            rx_bytes: 0,
            malformed: 0,
            published_lost: 0,
            published_late: 0,
        }
    }

    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Whether the far end takes audio from us now.
    pub fn sending(&self) -> bool {
        self.neg.as_ref().is_some_and(|n| n.send) && (self.dest.is_some() || matches!(self.io, LegIo::Channel { .. }))
    }

    /// Whether something of our own replaces what a bridge would send here.
    pub fn overridden(&self) -> bool {
        self.play.is_some() || self.dtmf_tx.busy()
    }

    pub fn configure(&mut self, neg: Negotiated, now: Instant) {
        // A new answer (re-INVITE, new far end) starts latching afresh.
        if self.neg.as_ref().is_none_or(|n| n.remote != neg.remote) {
            self.latched = None;
            self.dest = Some(neg.remote);
            self.dest_rtcp = Some(neg.remote_rtcp);
        }
        self.configured_at = Some(now);
        self.next_rtcp.get_or_insert(now + RTCP_INTERVAL);
        self.neg = Some(neg);
        self.publish_remote();
    }

    fn publish_remote(&self) {
        if let Ok(mut r) = self.shared.remote.lock() {
            *r = self.dest;
        }
    }

    /// Symmetric RTP: send back to where packets come from. Returns false when the packet
    /// should be dropped as coming from a stranger.
    pub fn latch(&mut self, from: SocketAddr, ssrc: u32, now: Instant) -> bool {
        match self.latched {
            Some((addr, _)) if addr == from => true,
            Some((_, s)) if s != ssrc && self.last_rx.is_some_and(|t| now.duration_since(t) < RELATCH_AFTER) => false,
            _ => {
                self.latched = Some((from, ssrc));
                if self.dest != Some(from) {
                    tracing::debug!(leg = self.id(), %from, "latched RTP source");
                    self.dest = Some(from);
                    if self.neg.as_ref().is_some_and(|n| n.rtcp_mux) {
                        self.dest_rtcp = Some(from);
                    } else {
                        self.dest_rtcp = Some(SocketAddr::new(from.ip(), from.port().wrapping_add(1)));
                    }
                    self.publish_remote();
                }
                true
            }
        }
    }

    /// Sends one packet to the far end.
    pub fn transmit(&mut self, pkt: &[u8], c: &mut ShardCounters) {
        let ok = match &self.io {
            LegIo::Udp { rtp, .. } => match self.dest {
                Some(d) => rtp.send_to(pkt, d).is_ok(),
                None => false,
            },
            LegIo::Channel { tx } => tx.try_send(pkt.to_vec()).is_ok(),
        };
        if ok {
            self.tx_packets += 1;
            self.tx_bytes += pkt.len() as u64;
            c.tx_packets += 1;
            c.tx_bytes += pkt.len() as u64;
        }
    }

    /// Feeds decoded audio that arrived to the taps, in 20 ms frames.
    pub fn feed_taps(&mut self, pcm: &[i16], ts: u32, c: &mut ShardCounters) {
        if self.taps.is_empty() {
            return;
        }
        let mut rest = pcm;
        let mut ts = ts;
        while !rest.is_empty() {
            if self.tap_len == 0 {
                self.tap_ts = ts;
            }
            let n = (FRAME_SAMPLES - self.tap_len).min(rest.len());
            self.tap_buf[self.tap_len..self.tap_len + n].copy_from_slice(&rest[..n]);
            self.tap_len += n;
            rest = &rest[n..];
            ts = ts.wrapping_add(n as u32);
            if self.tap_len == FRAME_SAMPLES {
                let frame = AudioFrame { samples: self.tap_buf, rtp_timestamp: self.tap_ts };
                self.taps.retain(|t| match t.try_send(frame) {
                    Ok(()) => true,
                    Err(tmpsc::error::TrySendError::Full(_)) => {
                        c.frames_dropped += 1;
                        true
                    }
                    Err(tmpsc::error::TrySendError::Closed(_)) => false,
                });
                self.tap_len = 0;
            }
        }
    }

    pub fn on_dtmf(&mut self, ts: u32, payload: &[u8], now: Instant, c: &mut ShardCounters) {
        self.dtmf_last = Some(now);
        for d in self.dtmf_rx.on_packet(ts, payload).into_iter().flatten() {
            c.dtmf_rx += 1;
            self.shared.emit(MediaEvent::Dtmf { digit: d.digit, duration: Duration::from_micros(d.samples as u64 * 125) });
        }
    }

    /// The 20 ms tick: our own audio when nothing else feeds the far end, digits, timeouts
    /// and RTCP. `buf` is scratch space for one packet.
    pub fn tick(&mut self, now: Instant, buf: &mut [u8], c: &mut ShardCounters, rtp_timeout: Option<Duration>) {
        self.check_timeout(now, rtp_timeout, c);
        if self.dtmf_rx.in_event()
            && self.dtmf_last.is_some_and(|t| now.duration_since(t) > DTMF_STALE)
            && let Some(d) = self.dtmf_rx.flush()
        {
            c.dtmf_rx += 1;
            self.shared.emit(MediaEvent::Dtmf { digit: d.digit, duration: Duration::from_micros(d.samples as u64 * 125) });
        }
        if self.next_rtcp.is_some_and(|t| now >= t) {
            self.next_rtcp = Some(now + RTCP_INTERVAL);
            self.send_rtcp();
        }
        let Some(neg) = self.neg.clone() else {
            // Nowhere to play to yet: prompts still take their time, so `play()` resolves.
            self.advance_playback(None);
            return;
        };
        if !self.sending() {
            self.advance_playback(None);
            self.dtmf_tx = DtmfSender::default();
            return;
        }
        let frame = FRAME_SAMPLES as u32;
        if self.dtmf_tx.busy() {
            if let Some(te) = neg.te_pt {
                if let Some(ev) = self.dtmf_tx.tick(frame) {
                    let h = self.out.local_event(ev.start, ev.covered, now);
                    let n = rtp::write_packet(buf, te, h, self.out.ssrc(), &ev.payload);
                    if ev.start {
                        c.dtmf_tx += 1;
                    }
                    self.transmit(&buf[..n], c);
                    return;
                }
            } else {
                self.dtmf_tx = DtmfSender::default();
            }
        }
        if self.play.is_none() && self.fed_at.is_some_and(|t| now.duration_since(t) < FED_GRACE) {
            return;
        }
        let mut payload = [neg.codec.silence(); FRAME_SAMPLES];
        self.advance_playback(Some((neg.codec, &mut payload)));
        let h = self.out.local(frame, now);
        let n = rtp::write_packet(buf, neg.pt, h, self.out.ssrc(), &payload);
        self.transmit(&buf[..n], c);
    }

    /// Moves the prompt on by one frame, encoding it into `into` when given; resolves
    /// `play()` at the end.
    fn advance_playback(&mut self, into: Option<(crate::codec::Codec, &mut [u8; FRAME_SAMPLES])>) {
        let Some(p) = &mut self.play else { return };
        let s = p.prompt.samples();
        let n = FRAME_SAMPLES.min(s.len().saturating_sub(p.pos));
        if let Some((codec, payload)) = into {
            codec.encode_into(&s[p.pos..p.pos + n], payload);
        }
        p.pos += n;
        if p.pos >= s.len() {
            self.stop_playback();
        }
    }

    fn check_timeout(&mut self, now: Instant, limit: Option<Duration>, c: &mut ShardCounters) {
        let (Some(limit), Some(since)) = (limit, self.last_rx.max(self.configured_at)) else { return };
        let silent = now.saturating_duration_since(since);
        if silent >= limit && !self.timed_out {
            self.timed_out = true;
            c.timeouts += 1;
            self.shared.emit(MediaEvent::RtpTimeout { silent_for: silent });
        }
    }

    /// Called for every accepted packet.
    pub fn on_received(&mut self, now: Instant, from: SocketAddr, len: usize) {
        if self.last_rx.is_none() {
            self.shared.emit(MediaEvent::FirstPacket { from });
        }
        if self.timed_out {
            self.timed_out = false;
            self.shared.emit(MediaEvent::RtpResumed);
        }
        self.last_rx = Some(now);
        self.rx_bytes += len as u64;
    }

    fn send_rtcp(&mut self) {
        let (Some(dest), LegIo::Udp { rtp, rtcp, .. }) = (self.dest_rtcp, &self.io) else { return };
        let report = super::rtcp::report(self);
        let sock = if self.neg.as_ref().is_some_and(|n| n.rtcp_mux) { rtp } else { rtcp };
        // RTCP is advisory: a report that cannot go out is simply skipped.
        let _ = sock.send_to(&report, dest);
    }

    /// Publishes the local counters to the handles and the shard totals.
    pub fn publish(&mut self, c: &mut ShardCounters) {
        let s = &self.shared.stats;
        s.packets_received.store(self.rx.received(), Relaxed);
        s.bytes_received.store(self.rx_bytes, Relaxed);
        s.packets_sent.store(self.tx_packets, Relaxed);
        s.bytes_sent.store(self.tx_bytes, Relaxed);
        s.malformed.store(self.malformed, Relaxed);
        s.jitter_samples.store(self.rx.jitter() as u64, Relaxed);
        let lost = self.rx.lost();
        s.lost.store(lost, Relaxed);
        c.lost += lost.saturating_sub(self.published_lost);
        self.published_lost = self.published_lost.max(lost);
        let late = self.rx.late();
        s.late.store(late, Relaxed);
        c.late += late - self.published_late;
        self.published_late = late;
    }

    /// Ends a prompt early: `play()` resolves as if it had finished.
    pub fn stop_playback(&mut self) {
        if let Some(done) = self.play.take().and_then(|mut p| p.done.take()) {
            let _ = done.send(());
        }
    }

    pub(super) fn start_playback(&mut self, prompt: Prompt, done: oneshot::Sender<()>) {
        self.stop_playback();
        self.play = Some(Playback { prompt, pos: 0, done: Some(done) });
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
