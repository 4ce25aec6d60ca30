//! RTCP for plain RTP legs: a sender report with one reception block every few seconds,
//! so that carriers' monitoring sees our loss and jitter (RFC 3550 6.4). Built and parsed
//! with webrtc-rs' RTCP types; this is not the packet path, so allocation is fine here.

use std::time::{SystemTime, UNIX_EPOCH};

use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::shared::marshal::Marshal;

use super::leg::Leg;

/// Whether a datagram on a muxed port is RTCP (RFC 5761 4: packet types 192–223).
pub(crate) fn is_rtcp(pkt: &[u8]) -> bool {
    pkt.len() >= 8 && (192..=223).contains(&pkt[1])
}

/// Checks that a datagram on an RTCP port parses as RTCP.
pub(crate) fn valid(pkt: &[u8]) -> bool {
    let mut b = pkt;
    rtc::rtcp::packet::unmarshal(&mut b).is_ok()
}

pub(super) fn report(leg: &Leg) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // NTP time: seconds since 1900 in the high word, the fraction in the low word.
    let ntp_secs = now.as_secs() + 2_208_988_800;
    let ntp_frac = ((now.subsec_nanos() as u64) << 32) / 1_000_000_000;
    let mut reports = Vec::new();
    if let Some(ssrc) = leg.rx.ssrc() {
        let lost = leg.rx.lost().min(0x7F_FFFF) as u32;
        reports.push(ReceptionReport {
            ssrc,
            fraction_lost: 0,
            total_lost: lost,
            last_sequence_number: leg.rx.extended_max(),
            jitter: leg.rx.jitter(),
            last_sender_report: 0,
            delay: 0,
        });
    }
    let sr = SenderReport {
        ssrc: leg.out.ssrc(),
        ntp_time: (ntp_secs << 32) | ntp_frac,
        rtp_time: leg.out.last_ts(),
        packet_count: leg.tx_packets as u32,
        octet_count: leg.tx_bytes.saturating_sub(leg.tx_packets * 12) as u32,
        reports,
        ..Default::default()
    };
    sr.marshal().map(|b| b.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mux_demultiplexing() {
        let rtp = [0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        let rtp_marker_pt0 = [0x80, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(!is_rtcp(&rtp));
        assert!(!is_rtcp(&rtp_marker_pt0));
        let sr = SenderReport { ssrc: 5, ..Default::default() }.marshal().unwrap();
        assert!(is_rtcp(&sr));
        assert!(valid(&sr));
        assert!(!valid(&[0x80, 200, 0]));
    }
}
