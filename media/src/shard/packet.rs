//! The packet path: batch receive, parse, latch, count, then forward, transcode or mix
//! into the bridge's other legs. No allocation and no lock from socket to socket.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::time::Instant;

use quinn_udp::{BATCH_SIZE, RecvMeta, UdpSockRef};

use super::bridge::{self, Role};
use super::leg::LegIo;
use super::{Shard, rtcp};
use crate::codec::Codec;
use crate::rtp::{self, HEADER_LEN, Source};

/// Room for one receive buffer: a GRO batch of datagrams can fill it.
const SLOT: usize = 64 * 1024;
/// Largest payload we handle (anything bigger is not 8 kHz G.711 from a sane sender).
const MAX_SAMPLES: usize = 1500;

pub(crate) struct RecvBufs {
    data: Vec<u8>,
    meta: [RecvMeta; BATCH_SIZE],
}

impl RecvBufs {
    pub fn new() -> Box<Self> {
        Box::new(Self { data: vec![0; SLOT * BATCH_SIZE], meta: [RecvMeta::default(); BATCH_SIZE] })
    }
}

pub(crate) struct Scratch {
    pub out: [u8; HEADER_LEN + MAX_SAMPLES],
    pub pcm: [i16; MAX_SAMPLES],
}

impl Scratch {
    pub fn new() -> Box<Self> {
        Box::new(Self { out: [0; HEADER_LEN + MAX_SAMPLES], pcm: [0; MAX_SAMPLES] })
    }
}

impl Shard {
    pub(super) fn on_readable(&mut self, slot: usize, is_rtcp: bool, now: Instant) {
        let Some(mut bufs) = self.bufs.take() else { return };
        while let Some(leg) = self.legs.get(slot) {
            let LegIo::Udp { rtp, rtcp: rtcp_sock, state, .. } = &leg.io else { break };
            if is_rtcp {
                match rtcp_sock.recv_from(&mut bufs.data[..SLOT]) {
                    Ok((n, _)) => {
                        if !rtcp::valid(&bufs.data[..n]) {
                            self.counters.malformed += 1;
                        }
                        continue;
                    }
                    Err(_) => break,
                }
            }
            let RecvBufs { data, meta } = &mut *bufs;
            let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] = {
                let mut chunks = data.chunks_mut(SLOT);
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()))
            };
            let n = match state.recv(UdpSockRef::from(rtp), &mut iovs, meta) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "RTP receive failed");
                    break;
                }
            };
            for (i, m) in meta.iter().take(n).enumerate() {
                let buf = &mut data[i * SLOT..i * SLOT + m.len];
                let stride = if m.stride == 0 { m.len } else { m.stride };
                for dgram in buf.chunks_mut(stride) {
                    self.on_datagram(slot, dgram, Some(m.addr), now);
                }
            }
            // Edge-triggered epoll reports every new arrival, so a batch that came back
            // short means the queue was empty: skip the extra call that would say so.
            if n < BATCH_SIZE {
                break;
            }
        }
        self.bufs = Some(bufs);
    }

    /// One datagram on a leg's RTP port (or, for a WebRTC leg, one decrypted packet).
    pub(super) fn on_datagram(&mut self, slot: usize, pkt: &mut [u8], from: Option<SocketAddr>, now: Instant) {
        let c = &mut self.counters;
        let leg = &mut self.legs[slot];
        if rtcp::is_rtcp(pkt) {
            return;
        }
        let Ok(r) = rtp_rs::RtpReader::new(pkt) else {
            leg.malformed += 1;
            c.malformed += 1;
            return;
        };
        let (ssrc, seq, ts, pt) = (r.ssrc(), u16::from(r.sequence_number()), r.timestamp(), r.payload_type());
        let payload = r.payload();
        if let Some(from) = from
            && !leg.latch(from, ssrc, now)
        {
            leg.malformed += 1;
            c.malformed += 1;
            return;
        }
        leg.on_received(now, from.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))), pkt.len());
        let arrival = (now.saturating_duration_since(self.ctx.epoch).as_micros() as u64) * 8 / 1000;
        leg.rx.on_packet(ssrc, seq, ts, arrival);
        c.rx_packets += 1;
        c.rx_bytes += pkt.len() as u64;
        let Some(neg) = &leg.neg else { return };
        let src = Source::Peer { leg: leg.id(), ssrc };
        if neg.te_pt == Some(pt) {
            leg.on_dtmf(ts, payload, now, c);
            if let Some((b, role)) = leg.bridge {
                self.forward_event(b, role, src, seq, ts, payload, now);
            }
            return;
        }
        let codec_in = if pt == neg.pt { neg.codec } else if let Some(c) = Codec::from_static_pt(pt) { c } else { return };
        let bridge = leg.bridge;
        let needs_pcm = !leg.taps.is_empty()
            || bridge.is_some_and(|(b, _)| self.bridges[b].recorder.is_some() || self.bridges[b].mode.is_some());
        let pcm = &mut self.scratch.pcm;
        let n = if needs_pcm { codec_in.decode_into(payload, pcm) } else { 0 };
        leg.feed_taps(&pcm[..n], ts, c);
        let Some((b, role)) = bridge else { return };
        let br = &mut self.bridges[b];
        let mode = br.mode;
        if let Some(rec) = &mut br.recorder {
            let ch = match role {
                Role::Customer => Some(0),
                Role::Agent => Some(1),
                // Barging makes the supervisor a party of the call: record them with the agent.
                Role::Supervisor => matches!(mode, Some(crate::bridge::SupervisorMode::Barge)).then_some(1),
            };
            if let Some(ch) = ch {
                rec.timeline.write(ch, ssrc, ts, &pcm[..n], now);
            }
        }
        if bridge::is_mixed_in(role, mode) {
            br.store(role, &pcm[..n], now);
        }
        for route in bridge::routes(role, mode).into_iter().flatten() {
            let br = &mut self.bridges[b];
            let Some(ds) = br.slots[route.to as usize] else { continue };
            let dest = &mut self.legs[ds];
            let (Some(dneg), true, false) = (&dest.neg, dest.sending(), dest.overridden()) else { continue };
            let (dcodec, dpt) = (dneg.codec, dneg.pt);
            let out = &mut self.scratch.out;
            let body = &mut out[HEADER_LEN..];
            let mixed = route.mix.and_then(|m| br.take(m, route.to, now));
            let plen = match mixed {
                Some(other) => {
                    for (i, (o, s)) in body.iter_mut().zip(&pcm[..n]).enumerate() {
                        *o = dcodec.encode(s.saturating_add(other.get(i).copied().unwrap_or(0)));
                    }
                    n
                }
                None => {
                    let len = payload.len().min(body.len());
                    body[..len].copy_from_slice(&payload[..len]);
                    codec_in.transcode_in_place(dcodec, &mut body[..len]);
                    len
                }
            };
            let h = dest.out.forward(src, seq, ts, plen as u32, now);
            out[0] = 0x80;
            rtp::rewrite_header(out, dpt, h, dest.out.ssrc());
            dest.transmit(&out[..HEADER_LEN + plen], c);
            dest.fed_at = Some(now);
        }
    }

    /// Passes a telephone-event packet on to the other party, in its payload type.
    #[allow(clippy::too_many_arguments)]
    fn forward_event(&mut self, b: usize, role: Role, src: Source, seq: u16, ts: u32, payload: &[u8], now: Instant) {
        let to = match role {
            Role::Customer => Role::Agent,
            Role::Agent => Role::Customer,
            Role::Supervisor => return,
        };
        let Some(ds) = self.bridges[b].slots[to as usize] else { return };
        let dest = &mut self.legs[ds];
        let (Some(te), true, false) = (dest.neg.as_ref().and_then(|n| n.te_pt), dest.sending(), dest.overridden()) else {
            return;
        };
        let h = dest.out.forward(src, seq, ts, 0, now);
        let out = &mut self.scratch.out;
        let len = payload.len().min(out.len() - HEADER_LEN);
        let n = rtp::write_packet(out, te, h, dest.out.ssrc(), &payload[..len]);
        dest.transmit(&out[..n], &mut self.counters);
        dest.fed_at = Some(now);
    }
}
