//! RFC 4733 telephone-events: reading digits out of incoming event packets and making
//! the packets for digits we send. Sans-I/O: packets and ticks in, digits and payloads out.

use std::collections::VecDeque;

/// Samples of tone per digit we send (100 ms), and the pause after it (60 ms).
const TONE_SAMPLES: u32 = 800;
const GAP_TICKS: u8 = 3;
/// RFC 4733 2.5.1.4: the final packet of an event is sent three times.
const END_REPEATS: u8 = 3;

/// The digit of an RFC 4733 event code (0–15; 16, flash, is not a digit).
pub fn event_digit(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// The RFC 4733 event code of a digit (`0-9 * # A-D`, letters in either case).
pub fn digit_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        c @ '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        c @ 'A'..='D' => Some(c as u8 - b'A' + 12),
        _ => None,
    }
}

/// A digit read from the stream, with its duration in samples (8 kHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    pub digit: char,
    pub samples: u32,
}

/// Turns a stream of telephone-event packets into digits, one report per event however
/// many retransmissions and updates it took.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    /// The event under way: its RTP timestamp, code and latest duration.
    current: Option<(u32, u8, u32)>,
    /// Timestamp of the last event reported, to drop its retransmitted end packets.
    reported: Option<u32>,
}

impl DtmfDetector {
    /// Feeds one event packet (its RTP timestamp and payload). Returns at most two digits:
    /// an earlier event whose end packets were all lost, and this one if it ended.
    pub fn on_packet(&mut self, ts: u32, payload: &[u8]) -> [Option<Digit>; 2] {
        let mut out = [None, None];
        if payload.len() < 4 || self.reported == Some(ts) {
            return out;
        }
        let code = payload[0];
        let end = payload[1] & 0x80 != 0;
        let duration = u16::from_be_bytes([payload[2], payload[3]]) as u32;
        if let Some((cur_ts, cur_code, cur_dur)) = self.current
            && cur_ts != ts
        {
            out[0] = self.report(cur_ts, cur_code, cur_dur);
        }
        if end {
            out[1] = self.report(ts, code, duration);
        } else {
            self.current = Some((ts, code, duration));
        }
        out
    }

    /// Reports an event whose end never came (called when event packets stopped).
    pub fn flush(&mut self) -> Option<Digit> {
        let (ts, code, dur) = self.current?;
        self.report(ts, code, dur)
    }

    /// Whether an event is under way.
    pub fn in_event(&self) -> bool {
        self.current.is_some()
    }

    fn report(&mut self, ts: u32, code: u8, samples: u32) -> Option<Digit> {
        self.current = None;
        self.reported = Some(ts);
        event_digit(code).map(|digit| Digit { digit, samples })
    }
}

/// One packet the sender wants out on this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// First packet of the event (marker bit, new timestamp).
    pub start: bool,
    pub payload: [u8; 4],
    /// Audio time the event spans so far, in samples.
    pub covered: u32,
}

#[derive(Debug)]
struct Sending {
    code: u8,
    elapsed: u32,
    ends_sent: u8,
}

/// Sends queued digits as telephone-events, one packet per 20 ms tick.
#[derive(Debug, Default)]
pub struct DtmfSender {
    queue: VecDeque<u8>,
    sending: Option<Sending>,
    gap: u8,
}

impl DtmfSender {
    /// Queues digit event codes.
    pub fn push(&mut self, codes: impl IntoIterator<Item = u8>) {
        self.queue.extend(codes);
    }

    /// Whether anything is being sent or waits.
    pub fn busy(&self) -> bool {
        self.sending.is_some() || !self.queue.is_empty() || self.gap > 0
    }

    /// The event packet for this tick, or `None` when the leg should send audio.
    pub fn tick(&mut self, frame: u32) -> Option<EventPacket> {
        if self.sending.is_none() {
            if self.gap > 0 {
                self.gap -= 1;
                return None;
            }
            let code = self.queue.pop_front()?;
            self.sending = Some(Sending { code, elapsed: 0, ends_sent: 0 });
        }
        let s = self.sending.as_mut()?;
        let start = s.elapsed == 0;
        s.elapsed = (s.elapsed + frame).min(TONE_SAMPLES);
        let end = s.elapsed >= TONE_SAMPLES;
        if end {
            s.ends_sent += 1;
        }
        // Volume 10 (-10 dBm0), the level RFC 4733 examples use.
        let flags = if end { 0x80 } else { 0 } | 10;
        let d = (s.elapsed as u16).to_be_bytes();
        let pkt = EventPacket { start, payload: [s.code, flags, d[0], d[1]], covered: s.elapsed };
        if s.ends_sent >= END_REPEATS {
            self.sending = None;
            self.gap = GAP_TICKS;
        }
        Some(pkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_map_both_ways() {
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(event_digit(digit_event(c).unwrap()), Some(c));
        }
        assert_eq!(digit_event('b'), Some(13));
        assert_eq!(digit_event('x'), None);
        assert_eq!(event_digit(16), None);
    }

    #[test]
    fn sender_output_reads_back_as_the_same_digits() {
        let mut tx = DtmfSender::default();
        tx.push("19#".chars().map(|c| digit_event(c).unwrap()));
        let mut rx = DtmfDetector::default();
        let mut ts = 0u32;
        let mut got = Vec::new();
        let mut packets = 0;
        for _ in 0..100 {
            if let Some(p) = tx.tick(160) {
                packets += 1;
                if p.start {
                    ts += 1000;
                }
                got.extend(rx.on_packet(ts, &p.payload).into_iter().flatten());
            }
        }
        assert!(!tx.busy());
        assert_eq!(got.iter().map(|d| d.digit).collect::<String>(), "19#");
        assert!(got.iter().all(|d| d.samples == 800));
        // 5 packets of tone (the fifth is the end) plus two repeats of the end.
        assert_eq!(packets, 3 * 7);
    }

    #[test]
    fn lost_end_packets_still_report_the_digit_once() {
        let mut rx = DtmfDetector::default();
        assert_eq!(rx.on_packet(100, &[5, 10, 0, 160]), [None, None]);
        assert_eq!(rx.on_packet(100, &[5, 10, 1, 64]), [None, None]);
        // Next event starts: the previous one is reported with its last duration.
        let r = rx.on_packet(900, &[7, 0x8A, 3, 32]);
        assert_eq!(r[0], Some(Digit { digit: '5', samples: 320 }));
        assert_eq!(r[1], Some(Digit { digit: '7', samples: 800 }));
        assert_eq!(rx.on_packet(900, &[7, 0x8A, 3, 32]), [None, None]);
        assert_eq!(rx.on_packet(1700, &[11, 10, 0, 160]), [None, None]);
        assert_eq!(rx.flush(), Some(Digit { digit: '#', samples: 160 }));
        assert_eq!(rx.flush(), None);
        // A short payload is ignored, not misread.
        assert_eq!(rx.on_packet(2000, &[1, 0x80]), [None, None]);
    }
}
