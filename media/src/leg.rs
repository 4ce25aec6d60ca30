//! What a leg shares between its owner shard and the handles held by the rest of the
//! program: its identity, where it lives, its statistics and its event channel.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::codec::{Codec, FRAME_SAMPLES};
use crate::sdp::Negotiated;

/// Something that happened on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The first RTP packet arrived, from this address (media flows: early media, answer).
    FirstPacket { from: SocketAddr },
    /// An RFC 4733 digit ended (or its packets stopped); `duration` as the sender timed it.
    Dtmf { digit: char, duration: Duration },
    /// No RTP for `media.rtp_timeout_s`: the far end is probably gone.
    RtpTimeout { silent_for: Duration },
    /// RTP came back after a timeout.
    RtpResumed,
    /// A WebRTC leg finished ICE and DTLS: media can flow.
    Connected,
    /// A WebRTC leg failed or was closed by the browser.
    Disconnected,
}

/// 20 ms of decoded audio that arrived on a leg (8 kHz, 16-bit, mono).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AudioFrame {
    pub samples: [i16; FRAME_SAMPLES],
    /// RTP timestamp of the first sample, in the sender's timeline.
    pub rtp_timestamp: u32,
}

impl std::fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioFrame(ts {})", self.rtp_timestamp)
    }
}

/// A snapshot of one leg's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegStats {
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// From sequence gaps, RFC 3550 style (duplicates make up for losses).
    pub packets_lost: u64,
    /// Arrived after a newer packet.
    pub packets_late: u64,
    /// Datagrams dropped as unparseable or from an address we were not latched to.
    pub malformed: u64,
    /// Interarrival jitter (RFC 3550 A.8).
    pub jitter: Duration,
    /// Negotiated codec, once offer/answer is done.
    pub codec: Option<Codec>,
    /// Where this leg sends now (latched address, or the one from SDP).
    pub remote: Option<SocketAddr>,
}

#[derive(Debug, Default)]
pub(crate) struct StatCells {
    pub packets_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub lost: AtomicU64,
    pub late: AtomicU64,
    pub malformed: AtomicU64,
    pub jitter_samples: AtomicU64,
}

/// State shared by a leg's handles and its shard. The shard is the only writer of the
/// counters (relaxed stores, no contention); handles only read.
#[derive(Debug)]
pub(crate) struct LegShared {
    pub id: u64,
    /// Index of the shard the leg lives on (or is travelling to).
    pub shard: AtomicUsize,
    pub closed: AtomicBool,
    pub events: broadcast::Sender<MediaEvent>,
    pub stats: StatCells,
    pub negotiated: Mutex<Option<Negotiated>>,
    pub remote: Mutex<Option<SocketAddr>>,
}

impl LegShared {
    pub fn new(id: u64, shard: usize) -> Self {
        Self {
            id,
            shard: AtomicUsize::new(shard),
            closed: AtomicBool::new(false),
            events: broadcast::channel(64).0,
            stats: StatCells::default(),
            negotiated: Mutex::new(None),
            remote: Mutex::new(None),
        }
    }

    pub fn emit(&self, ev: MediaEvent) {
        // No receiver is fine: nobody asked to hear about this leg.
        let _ = self.events.send(ev);
    }

    pub fn snapshot(&self) -> LegStats {
        let s = &self.stats;
        let neg = self.negotiated.lock().map(|n| n.clone()).unwrap_or(None);
        LegStats {
            packets_received: s.packets_received.load(Relaxed),
            bytes_received: s.bytes_received.load(Relaxed),
            packets_sent: s.packets_sent.load(Relaxed),
            bytes_sent: s.bytes_sent.load(Relaxed),
            packets_lost: s.lost.load(Relaxed),
            packets_late: s.late.load(Relaxed),
            malformed: s.malformed.load(Relaxed),
            jitter: Duration::from_micros(s.jitter_samples.load(Relaxed) * 125),
            codec: neg.as_ref().map(|n| n.codec),
            remote: self.remote.lock().map(|r| *r).unwrap_or(None).or(neg.map(|n| n.remote)),
        }
    }
}
