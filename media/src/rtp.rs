//! Sans-I/O RTP pieces: receive statistics (RFC 3550 A.1, A.8) and the outgoing stream
//! that keeps one SSRC, sequence and timestamp line however often its source changes.
//!
//! Time comes in as an argument; nothing here reads the clock or touches a socket.

use std::time::Instant;

/// Length of the fixed RTP header (no CSRCs, no extension), which is all we ever send.
pub const HEADER_LEN: usize = 12;

/// Sequence distance beyond which a packet is taken as a restart, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// Out-of-order distance still counted as late rather than as a restart.
const MAX_MISORDER: u16 = 100;

/// Receive statistics of one incoming stream.
#[derive(Debug, Clone, Default)]
pub struct RxStats {
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    /// Expected and received counts of streams before the current SSRC took over.
    prior_expected: u64,
    prior_received: u64,
    late: u64,
    /// Interarrival jitter in timestamp units, scaled by 16 as in RFC 3550 A.8.
    jitter_q4: u64,
    transit: Option<i64>,
}

/// What [`RxStats::on_packet`] learnt about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next packet, or one after a gap.
    InOrder,
    /// Older than the newest seen: reordered or duplicated.
    Late,
    /// A new SSRC, or a jump so large that the sender must have restarted.
    Restart,
}

impl RxStats {
    /// Accounts one packet. `arrival` is the arrival time in timestamp units (8 kHz).
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, ts: u32, arrival: u64) -> Arrival {
        let kind = match self.ssrc {
            Some(s) if s == ssrc => {
                let delta = seq.wrapping_sub(self.max_seq);
                if delta == 0 {
                    self.late += 1;
                    Arrival::Late
                } else if delta < MAX_DROPOUT {
                    if seq < self.max_seq {
                        self.cycles += 1;
                    }
                    self.max_seq = seq;
                    Arrival::InOrder
                } else if delta > u16::MAX - MAX_MISORDER {
                    self.late += 1;
                    Arrival::Late
                } else {
                    self.restart(ssrc, seq);
                    Arrival::Restart
                }
            }
            _ => {
                self.restart(ssrc, seq);
                Arrival::Restart
            }
        };
        self.received += 1;
        // RFC 3550 A.8: J += (|D| - J) / 16, kept in fixed point.
        let transit = arrival as i64 - ts as i64;
        if let Some(prev) = self.transit
            && kind != Arrival::Restart
        {
            let d = (transit - prev).unsigned_abs().min(1 << 40);
            let j = self.jitter_q4 as i64;
            self.jitter_q4 = (j + ((d << 4) as i64 - j) / 16).max(0) as u64;
        }
        self.transit = Some(transit);
        kind
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        if self.ssrc.is_some() {
            self.prior_expected += self.expected_current();
            self.prior_received += self.received;
        }
        self.ssrc = Some(ssrc);
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.cycles = 0;
        self.received = 0;
        self.transit = None;
    }

    fn expected_current(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let ext_max = ((self.cycles as u64) << 16) + self.max_seq as u64;
        (ext_max + 1).saturating_sub(self.base_seq as u64)
    }

    /// Packets received, every SSRC counted.
    pub fn received(&self) -> u64 {
        self.prior_received + self.received
    }

    /// Packets expected from the sequence numbers minus those received (RFC 3550 A.3;
    /// floored at zero, since duplicates can outnumber losses).
    pub fn lost(&self) -> u64 {
        (self.prior_expected + self.expected_current()).saturating_sub(self.received())
    }

    /// Packets that arrived after a newer one.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Interarrival jitter, in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4) as u32
    }

    /// The SSRC being received, if any.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Highest sequence number seen, extended with the wrap count (for RTCP reports).
    pub fn extended_max(&self) -> u32 {
        (self.cycles << 16) | self.max_seq as u32
    }
}

/// Who is feeding an [`OutStream`]: a bridged peer's stream, or our own generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nobody yet.
    None,
    /// Packets forwarded from another leg (its id) carrying the given SSRC.
    Peer { leg: u64, ssrc: u32 },
    /// Frames we make ourselves: silence, prompts, mixes, DTMF.
    Local,
}

/// Header fields to put on one outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutHeader {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
}

/// The stream a leg sends: one SSRC for the leg's whole life. When the source changes
/// (a bridge re-pointed to the next customer, a prompt starting, the bridge ending), the
/// sequence goes on by one and the timestamp by the wall-clock time that passed (at least
/// one packet's duration), so the receiver hears one continuous stream.
#[derive(Debug, Clone)]
pub struct OutStream {
    ssrc: u32,
    next_seq: u16,
    last_ts: u32,
    last_dur: u32,
    last_at: Option<Instant>,
    source: Source,
    seq_off: u16,
    ts_off: u32,
}

/// Timestamp jump within one source that we take as a sender restart (5 s at 8 kHz).
const MAX_TS_JUMP: u32 = 40_000;

impl OutStream {
    /// A stream with the given SSRC and random-looking start values (RFC 3550 asks for
    /// random initial sequence and timestamp; the caller supplies them).
    pub fn new(ssrc: u32, first_seq: u16, first_ts: u32) -> Self {
        Self {
            ssrc,
            next_seq: first_seq,
            last_ts: first_ts,
            last_dur: 0,
            last_at: None,
            source: Source::None,
            seq_off: 0,
            ts_off: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Timestamp of the newest packet sent.
    pub fn last_ts(&self) -> u32 {
        self.last_ts
    }

    /// The timestamp the next packet of a new source starts at.
    fn continuation(&self, now: Instant) -> u32 {
        match self.last_at {
            None => self.last_ts,
            Some(at) => {
                let elapsed = now.saturating_duration_since(at);
                let samples = (elapsed.as_micros() as u64 * 8 / 1000).min(u32::MAX as u64) as u32;
                self.last_ts.wrapping_add(samples.max(self.last_dur))
            }
        }
    }

    /// Header for a packet forwarded from `source` with the given incoming sequence and
    /// timestamp, carrying `dur` samples.
    pub fn forward(&mut self, source: Source, seq: u16, ts: u32, dur: u32, now: Instant) -> OutHeader {
        let mut marker = false;
        let restart = self.source != source || {
            let out_ts = ts.wrapping_add(self.ts_off);
            let ts_d = out_ts.wrapping_sub(self.last_ts);
            let seq_d = seq.wrapping_add(self.seq_off).wrapping_sub(self.next_seq);
            (ts_d > MAX_TS_JUMP && ts_d < u32::MAX - MAX_TS_JUMP)
                || (seq_d > MAX_DROPOUT && seq_d < u16::MAX - MAX_MISORDER)
        };
        if restart {
            let start_ts = self.continuation(now);
            self.seq_off = self.next_seq.wrapping_sub(seq);
            self.ts_off = start_ts.wrapping_sub(ts);
            self.source = source;
            marker = true;
        }
        let out_seq = seq.wrapping_add(self.seq_off);
        let out_ts = ts.wrapping_add(self.ts_off);
        // Only a newer packet moves the stream on; a late one keeps its place.
        if out_seq.wrapping_sub(self.next_seq) < MAX_DROPOUT {
            self.next_seq = out_seq.wrapping_add(1);
        }
        if (out_ts.wrapping_sub(self.last_ts) as i32) >= 0 {
            self.last_ts = out_ts;
            self.last_dur = dur;
        }
        self.last_at = Some(now);
        OutHeader { seq: out_seq, ts: out_ts, marker }
    }

    /// Header for a frame we generate, `dur` samples long.
    pub fn local(&mut self, dur: u32, now: Instant) -> OutHeader {
        let (ts, marker) = if self.source == Source::Local && self.last_at.is_some() {
            (self.last_ts.wrapping_add(self.last_dur), false)
        } else {
            (self.continuation(now), true)
        };
        self.source = Source::Local;
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.last_ts = ts;
        self.last_dur = dur;
        self.last_at = Some(now);
        OutHeader { seq, ts, marker }
    }

    /// Header for a packet of a telephone-event we generate: every packet of one event
    /// carries the event's start timestamp (RFC 4733 2.5.1). `start` marks the first.
    /// `covered` is how many samples of audio time the event spans so far, so that audio
    /// after it goes on from its end.
    pub fn local_event(&mut self, start: bool, covered: u32, now: Instant) -> OutHeader {
        let ts = if start {
            if self.source == Source::Local && self.last_at.is_some() {
                self.last_ts.wrapping_add(self.last_dur)
            } else {
                self.continuation(now)
            }
        } else {
            self.last_ts
        };
        self.source = Source::Local;
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.last_ts = ts;
        self.last_dur = covered;
        self.last_at = Some(now);
        OutHeader { seq, ts, marker: start }
    }
}

/// Rewrites the header fields of an RTP packet in place (version 2, at least 12 bytes:
/// the caller has parsed it already).
#[inline]
pub fn rewrite_header(pkt: &mut [u8], pt: u8, h: OutHeader, ssrc: u32) {
    pkt[1] = (pt & 0x7F) | if h.marker { 0x80 } else { 0 };
    pkt[2..4].copy_from_slice(&h.seq.to_be_bytes());
    pkt[4..8].copy_from_slice(&h.ts.to_be_bytes());
    pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Writes a 12-byte header followed by `payload` into `buf`; returns the packet length.
#[inline]
pub fn write_packet(buf: &mut [u8], pt: u8, h: OutHeader, ssrc: u32, payload: &[u8]) -> usize {
    buf[0] = 0x80;
    rewrite_header(buf, pt, h, ssrc);
    buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    HEADER_LEN + payload.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_loss_late_and_wrap() {
        let mut rx = RxStats::default();
        let mut seq = 65530u16;
        for i in 0..20u32 {
            if i == 7 || i == 8 {
                seq = seq.wrapping_add(1);
                continue; // two lost, across the wrap
            }
            assert_ne!(rx.on_packet(1, seq, i * 160, i as u64 * 160), Arrival::Late);
            seq = seq.wrapping_add(1);
        }
        let t = 20 * 160;
        assert_eq!(rx.lost(), 2);
        assert_eq!(rx.received(), 18);
        assert_eq!(rx.jitter(), 0);
        assert_eq!(rx.on_packet(1, seq.wrapping_sub(3), 0, t), Arrival::Late);
        assert_eq!(rx.late(), 1);
        // As in RFC 3550, a late packet counts as received: it filled one of the holes.
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut rx = RxStats::default();
        // Packets every 160 samples, arriving alternately 80 samples early and late.
        for i in 0..400u32 {
            let arrival = (i as u64) * 160 + if i % 2 == 0 { 0 } else { 80 };
            rx.on_packet(7, i as u16, i * 160, arrival);
        }
        // |D| is 80 every time, so J converges to 80.
        assert!((75..=80).contains(&rx.jitter()), "{}", rx.jitter());
    }

    #[test]
    fn new_ssrc_keeps_totals() {
        let mut rx = RxStats::default();
        for i in 0..10u16 {
            rx.on_packet(1, 100 + i, 0, 0);
        }
        assert_eq!(rx.on_packet(2, 5000, 0, 0), Arrival::Restart);
        for i in 1..10u16 {
            rx.on_packet(2, 5000 + i, 0, 0);
        }
        assert_eq!(rx.received(), 20);
        assert_eq!(rx.lost(), 0);
    }

    #[test]
    fn re_pointing_keeps_one_continuous_stream() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut out = OutStream::new(0xABCD, 1000, 50_000);
        // Silence from our generator for 100 ms.
        let mut last = out.local(160, ms(0));
        for i in 1..5 {
            let h = out.local(160, ms(i * 20));
            assert_eq!(h.seq, last.seq.wrapping_add(1));
            assert_eq!(h.ts, last.ts.wrapping_add(160));
            last = h;
        }
        // Customer A arrives 7 ms after the last silence frame: the timestamp goes on by
        // one frame (not by 7 ms, which would overlap the frame already sent).
        let a = Source::Peer { leg: 1, ssrc: 111 };
        let h = out.forward(a, 40_000, 9_999_000, 160, ms(87));
        assert_eq!(h.seq, last.seq.wrapping_add(1));
        assert_eq!(h.ts, last.ts.wrapping_add(160));
        assert!(h.marker);
        last = h;
        for i in 1..50u16 {
            let h = out.forward(a, 40_000 + i, 9_999_000 + i as u32 * 160, 160, ms(87 + i as u64 * 20));
            assert_eq!((h.seq, h.ts, h.marker), (last.seq.wrapping_add(1), last.ts.wrapping_add(160), false));
            last = h;
        }
        // Customer B takes over 300 ms later (the agent was in a short gap): the
        // timestamp advances by the real time that passed.
        let b = Source::Peer { leg: 2, ssrc: 222 };
        let at = 87 + 49 * 20 + 300;
        let h = out.forward(b, 7, 123, 160, ms(at));
        assert_eq!(h.seq, last.seq.wrapping_add(1));
        assert_eq!(h.ts, last.ts.wrapping_add(2400));
        // A lost packet of B shows as a sequence gap to the receiver, as it should.
        let h2 = out.forward(b, 9, 123 + 320, 160, ms(at + 40));
        assert_eq!(h2.seq, h.seq.wrapping_add(2));
        assert_eq!(h2.ts, h.ts.wrapping_add(320));
        // A sender restart within B (huge timestamp jump) is smoothed over too.
        let h3 = out.forward(b, 10, 3_000_000_000, 160, ms(at + 60));
        assert_eq!(h3.seq, h2.seq.wrapping_add(1));
        assert_eq!(h3.ts, h2.ts.wrapping_add(160));
        assert_eq!(out.ssrc(), 0xABCD);
    }

    #[test]
    fn events_share_their_start_timestamp() {
        let t0 = Instant::now();
        let mut out = OutStream::new(1, 0, 0);
        let a = out.local(160, t0);
        let e1 = out.local_event(true, 160, t0 + Duration::from_millis(20));
        let e2 = out.local_event(false, 320, t0 + Duration::from_millis(40));
        assert_eq!(e1.ts, a.ts + 160);
        assert_eq!(e2.ts, e1.ts);
        assert_eq!(e2.seq, e1.seq + 1);
        let b = out.local(160, t0 + Duration::from_millis(60));
        assert_eq!(b.ts, e1.ts + 320);
    }

    #[test]
    fn header_rewrite_round_trips_through_rtp_rs() {
        let mut buf = [0u8; 32];
        let n = write_packet(&mut buf, 8, OutHeader { seq: 513, ts: 77, marker: true }, 9, &[1, 2, 3]);
        let r = rtp_rs::RtpReader::new(&buf[..n]).unwrap();
        assert_eq!((r.payload_type(), u16::from(r.sequence_number()), r.timestamp(), r.ssrc(), r.mark()), (8, 513, 77, 9, true));
        assert_eq!(r.payload(), &[1, 2, 3]);
    }
}
