//! Prometheus collectors of the media engine. Labels are bounded (direction, kind): per-leg
//! figures are in [`crate::LegStats`], not in label values. Shards count locally and add
//! their totals here once a second, so the packet path touches no shared cache line.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub(crate) struct Metrics {
    pub packets: IntCounterVec,
    pub bytes: IntCounterVec,
    pub lost: IntCounter,
    pub late: IntCounter,
    pub malformed: IntCounter,
    pub jitter: Histogram,
    pub legs: IntGaugeVec,
    pub bridges: IntGauge,
    pub supervised: IntGauge,
    pub recordings: IntGauge,
    pub dtmf: IntCounterVec,
    pub timeouts: IntCounter,
    pub ports_in_use: IntGauge,
    pub frames_dropped: IntCounter,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let dir = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["direction"]);
        Ok(Self {
            packets: dir("pacer_media_packets_total", "RTP packets received (rx) and sent (tx), all legs")?,
            bytes: dir("pacer_media_bytes_total", "RTP bytes received (rx) and sent (tx), all legs")?,
            lost: IntCounter::new("pacer_media_packets_lost_total", "RTP packets lost on the way to us, from sequence gaps")?,
            late: IntCounter::new("pacer_media_packets_late_total", "RTP packets that arrived after a newer one (reordered or duplicated)")?,
            malformed: IntCounter::new("pacer_media_packets_malformed_total", "Datagrams dropped as not RTP/RTCP, or from an address we did not latch to")?,
            jitter: Histogram::with_opts(
                HistogramOpts::new("pacer_media_jitter_seconds", "Interarrival jitter of receiving legs (RFC 3550), sampled once a second per leg")
                    .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]),
            )?,
            legs: IntGaugeVec::new(Opts::new("pacer_media_legs", "Open media legs by kind (rtp, webrtc)"), &["kind"])?,
            bridges: IntGauge::new("pacer_media_bridges", "Bridges connecting a customer to an agent")?,
            supervised: IntGauge::new("pacer_media_supervised_bridges", "Bridges with a supervisor listening, whispering or barging")?,
            recordings: IntGauge::new("pacer_media_recordings", "Recordings being written")?,
            dtmf: dir("pacer_media_dtmf_digits_total", "RFC 4733 digits received (rx) and sent (tx)")?,
            timeouts: IntCounter::new("pacer_media_rtp_timeouts_total", "Legs that stopped receiving RTP for media.rtp_timeout_s")?,
            ports_in_use: IntGauge::new("pacer_media_ports_in_use", "RTP/RTCP port pairs bound from media.rtp_port_min..=rtp_port_max")?,
            frames_dropped: IntCounter::new("pacer_media_tap_frames_dropped_total", "Decoded frames a tap reader did not take in time")?,
        })
    }

    pub fn register(&self, r: &Registry) -> prometheus::Result<()> {
        r.register(Box::new(self.packets.clone()))?;
        r.register(Box::new(self.bytes.clone()))?;
        r.register(Box::new(self.lost.clone()))?;
        r.register(Box::new(self.late.clone()))?;
        r.register(Box::new(self.malformed.clone()))?;
        r.register(Box::new(self.jitter.clone()))?;
        r.register(Box::new(self.legs.clone()))?;
        r.register(Box::new(self.bridges.clone()))?;
        r.register(Box::new(self.supervised.clone()))?;
        r.register(Box::new(self.recordings.clone()))?;
        r.register(Box::new(self.dtmf.clone()))?;
        r.register(Box::new(self.timeouts.clone()))?;
        r.register(Box::new(self.ports_in_use.clone()))?;
        r.register(Box::new(self.frames_dropped.clone()))?;
        Ok(())
    }
}

/// A shard's counts since its last flush into [`Metrics`].
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub lost: u64,
    pub late: u64,
    pub malformed: u64,
    pub dtmf_rx: u64,
    pub dtmf_tx: u64,
    pub timeouts: u64,
    pub frames_dropped: u64,
}

impl ShardCounters {
    pub fn flush(&mut self, m: &Metrics) {
        let c = std::mem::take(self);
        m.packets.with_label_values(&["rx"]).inc_by(c.rx_packets);
        m.packets.with_label_values(&["tx"]).inc_by(c.tx_packets);
        m.bytes.with_label_values(&["rx"]).inc_by(c.rx_bytes);
        m.bytes.with_label_values(&["tx"]).inc_by(c.tx_bytes);
        m.lost.inc_by(c.lost);
        m.late.inc_by(c.late);
        m.malformed.inc_by(c.malformed);
        m.dtmf.with_label_values(&["rx"]).inc_by(c.dtmf_rx);
        m.dtmf.with_label_values(&["tx"]).inc_by(c.dtmf_tx);
        m.timeouts.inc_by(c.timeouts);
        m.frames_dropped.inc_by(c.frames_dropped);
    }
}
