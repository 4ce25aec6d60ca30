//! WebRTC legs for agents' browsers (and SIP-over-WebSocket phones), on webrtc-rs.
//!
//! webrtc-rs owns the transport (ICE with host candidates, DTLS-SRTP, rtcp-mux); the leg
//! itself lives on a shard like any other, its packets crossing a channel in each
//! direction as plain RTP. The offer is trimmed to PCMU, PCMA and telephone-event/8000
//! before webrtc-rs sees it: Chromium also offers telephone-event/48000, which webrtc-rs
//! would match by name and answer twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT, MediaEngine as RtcMediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::shared::marshal::{Marshal, Unmarshal};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateType,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};

use crate::codec::Codec;
use crate::engine::EngineInner;
use crate::leg::{LegShared, MediaEvent};
use crate::sdp::{self, Negotiated};

use crate::shard::Cmd;
use crate::MediaError;

/// ICE gathering of host candidates is quick; a browser offer that takes longer than this
/// to answer is reported as an error instead of hanging the caller.
const GATHER_LIMIT: Duration = Duration::from_secs(5);
/// Packets queued towards webrtc-rs before new ones are dropped (a stalled connection).
const OUT_DEPTH: usize = 64;

/// Keeps a WebRTC leg's peer connection alive; closing happens when the last holder goes.
#[derive(Clone)]
pub(crate) struct PeerLeg {
    _inner: Arc<PeerInner>,
}

struct PeerInner {
    pc: Arc<dyn PeerConnection>,
    engine: Arc<EngineInner>,
    port: u16,
}

impl Drop for PeerInner {
    fn drop(&mut self) {
        let pc = self.pc.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
        if let Ok(mut p) = self.engine.ctx.ports.lock() {
            p.free(self.port);
        }
    }
}

struct Handler {
    shared: Arc<LegShared>,
    engine: Arc<EngineInner>,
    gathered: mpsc::Sender<()>,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(leg = self.shared.id, ?state, "WebRTC connection state");
        match state {
            RTCPeerConnectionState::Connected => {
                self.connected.store(true, SeqCst);
                self.shared.emit(MediaEvent::Connected);
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed | RTCPeerConnectionState::Disconnected => {
                if self.connected.swap(false, SeqCst) {
                    self.shared.emit(MediaEvent::Disconnected);
                }
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let (shared, engine) = (self.shared.clone(), self.engine.clone());
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(pkt) = ev {
                    let Ok(bytes) = pkt.marshal() else { continue };
                    if shared.closed.load(SeqCst) {
                        break;
                    }
                    engine.ctx.send_to_leg(&shared, Cmd::Inbound { leg: shared.clone(), pkt: bytes.to_vec() });
                }
            }
        });
    }
}

fn codec_params(codec: Codec) -> RTCRtpCodecParameters {
    let mime = match codec {
        Codec::Pcmu => MIME_TYPE_PCMU,
        Codec::Pcma => MIME_TYPE_PCMA,
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec { mime_type: mime.to_owned(), clock_rate: 8000, channels: 1, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] },
        payload_type: codec.payload_type(),
        ..Default::default()
    }
}

/// Keeps only the audio formats we can take (G.711 and telephone-event/8000), so that
/// webrtc-rs' answer is clean whatever the browser prefers.
pub(crate) fn trim_offer(offer: &str) -> String {
    let mut keep: Vec<String> = Vec::new();
    for line in offer.lines() {
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let mut it = rest.splitn(2, ' ');
            let (pt, enc) = (it.next().unwrap_or(""), it.next().unwrap_or("").trim().to_ascii_lowercase());
            if enc.starts_with("pcmu/8000") || enc.starts_with("pcma/8000") || enc == "telephone-event/8000" {
                keep.push(pt.to_string());
            }
        }
    }
    let mut out = String::with_capacity(offer.len());
    let mut in_audio = false;
    for line in offer.lines() {
        if line.starts_with("m=") {
            in_audio = line.starts_with("m=audio");
            if in_audio {
                let parts: Vec<&str> = line.split(' ').collect();
                let mut fmts: Vec<&str> = parts.iter().skip(3).copied().filter(|f| keep.iter().any(|k| k == f) || *f == "0" || *f == "8").collect();
                fmts.dedup();
                out.push_str(&format!("{} {} {} {}\r\n", parts[0], parts.get(1).unwrap_or(&"9"), parts.get(2).unwrap_or(&"UDP/TLS/RTP/SAVPF"), fmts.join(" ")));
                continue;
            }
        }
        if in_audio {
            let pt_of = |prefix: &str| line.strip_prefix(prefix).and_then(|r| r.split([' ', ':']).next());
            if let Some(pt) = pt_of("a=rtpmap:").or(pt_of("a=fmtp:")).or(pt_of("a=rtcp-fb:"))
                && !keep.iter().any(|k| k == pt)
                && pt != "0"
                && pt != "8"
            {
                continue;
            }
        }
        out.push_str(line.trim_end_matches('\r'));
        out.push_str("\r\n");
    }
    out
}

/// Builds the peer connection, answers `offer` and waits for our host candidate.
/// Returns the connection, the channel the shard sends the leg's RTP into, and the answer.
pub(crate) async fn answer(
    engine: Arc<EngineInner>,
    shared: Arc<LegShared>,
    offer: &str,
) -> Result<(PeerLeg, mpsc::Sender<Vec<u8>>, String, Negotiated), MediaError> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: webrtc::error::Error| MediaError::WebRtc(format!("{what}: {e}"))
    };
    let mut media = RtcMediaEngine::default();
    for c in &engine.codecs {
        media.register_codec(codec_params(*c), RtpCodecKind::Audio).map_err(|e| MediaError::WebRtc(e.to_string()))?;
    }
    let te = RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
            clock_rate: 8000,
            channels: 1,
            sdp_fmtp_line: "0-16".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: sdp::TE_PT,
        ..Default::default()
    };
    media.register_codec(te, RtpCodecKind::Audio).map_err(|e| MediaError::WebRtc(e.to_string()))?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(|e| MediaError::WebRtc(e.to_string()))?;
    let mut settings = SettingEngineBuilder::new().with_include_loopback_candidate(engine.bind_ip.is_loopback());
    if engine.sdp_ip != engine.bind_ip {
        settings = settings.with_nat_1to1_ips(vec![engine.sdp_ip.to_string()], RTCIceCandidateType::Host);
    }
    // The port comes from the configured RTP range, so firewalls need one rule for both.
    let port = {
        let mut ports = engine.ctx.ports.lock().map_err(|_| MediaError::Closed)?;
        let (rtp, _rtcp) = ports.allocate()?;
        rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    };
    let (gathered_tx, mut gathered) = mpsc::channel(1);
    let connected = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(Handler { shared: shared.clone(), engine: engine.clone(), gathered: gathered_tx, connected: connected.clone() });
    let free_port = |e: MediaError| {
        if let Ok(mut p) = engine.ctx.ports.lock() {
            p.free(port);
        }
        e
    };
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings.build())
        .with_handler(handler)
        .with_udp_addrs(vec![SocketAddr::new(engine.bind_ip, port)])
        .build()
        .await
        .map_err(err("creating the peer connection"))
        .map_err(free_port)?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let leg = PeerLeg { _inner: Arc::new(PeerInner { pc: pc.clone(), engine: engine.clone(), port }) };

    let first = engine.codecs[0];
    let track_ssrc = (shared.id as u32).wrapping_mul(2_654_435_761) | 1;
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("pacer-{}", shared.id),
        format!("pacer-audio-{}", shared.id),
        "pacer".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(track_ssrc), ..Default::default() },
            codec: codec_params(first).rtp_codec,
            ..Default::default()
        }],
    )));
    pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.map_err(err("adding the audio track"))?;
    let desc = RTCSessionDescription::offer(trim_offer(offer)).map_err(err("reading the offer"))?;
    pc.set_remote_description(desc).await.map_err(err("applying the offer"))?;
    let answer = pc.create_answer(None).await.map_err(err("creating the answer"))?;
    pc.set_local_description(answer).await.map_err(err("applying the answer"))?;
    tokio::time::timeout(GATHER_LIMIT, gathered.recv())
        .await
        .map_err(|_| MediaError::WebRtc(format!("ICE gathering did not complete in {GATHER_LIMIT:?}")))?;
    let answer = pc.local_description().await.ok_or_else(|| MediaError::WebRtc("no local description after answering".into()))?.sdp;

    // What the answer settled, read back with the same SDP code as plain legs.
    let neg = sdp::negotiated_from_answer(&answer, &engine.codecs)?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUT_DEPTH);
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            // A local track refuses writes until DTLS is up: drop until then.
            if !connected.load(SeqCst) {
                continue;
            }
            let mut b = bytes.as_slice();
            let Ok(mut pkt) = rtc::rtp::packet::Packet::unmarshal(&mut b) else { continue };
            pkt.header.ssrc = track_ssrc;
            if track.write_rtp(pkt).await.is_err() {
                tracing::debug!("WebRTC track write failed");
            }
        }
    });
    Ok((leg, tx, answer, neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_offer_is_trimmed_to_g711_and_8k_events() {
        let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\na=rtcp-mux\r\n";
        let t = trim_offer(offer);
        assert!(t.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0 8 126\r\n"), "{t}");
        assert!(!t.contains("opus") && !t.contains("telephone-event/48000") && !t.contains("G722"));
        assert!(t.contains("a=rtpmap:126 telephone-event/8000") && t.contains("a=rtcp-mux") && t.contains("a=group:BUNDLE 0"));
    }
}
