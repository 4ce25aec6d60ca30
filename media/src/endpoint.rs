//! The handle to one media leg.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::dtmf::digit_event;
use crate::engine::EngineInner;
use crate::leg::{AudioFrame, LegShared, LegStats, MediaEvent};
use crate::prompt::Prompt;
use crate::sdp::{LocalSdp, Negotiated};
use crate::shard::Cmd;
use crate::{MediaError, webrtc};

/// Frames a tap holds for a slow reader (one second) before it drops new ones.
const TAP_DEPTH: usize = 50;

pub(crate) enum Kind {
    Rtp { sdp: LocalSdp, local: SocketAddr },
    WebRtc { answer: String, _pc: webrtc::PeerLeg },
}

pub(crate) struct EndpointInner {
    pub shared: Arc<LegShared>,
    pub engine: Arc<EngineInner>,
    pub kind: Kind,
}

impl Drop for EndpointInner {
    fn drop(&mut self) {
        close(&self.engine, &self.shared);
    }
}

fn close(engine: &EngineInner, shared: &Arc<LegShared>) {
    if !shared.closed.swap(true, SeqCst) {
        engine.ctx.send_to_leg(shared, Cmd::Close { leg: shared.clone() });
    }
}

/// One media leg: a plain RTP endpoint (trunks, SIP phones, simulated parties) or a
/// WebRTC endpoint (agents' browsers). Clones are handles to the same leg; `close()`, or
/// dropping the last handle, frees its port.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({}", self.inner.shared.id)?;
        if let Some(a) = self.local_addr() {
            write!(f, " {a}")?;
        }
        f.write_str(")")
    }
}

impl Endpoint {
    pub(crate) fn new(inner: EndpointInner) -> Self {
        Self { inner: Arc::new(inner) }
    }

    pub(crate) fn shared(&self) -> &Arc<LegShared> {
        &self.inner.shared
    }

    /// A number naming this leg in logs.
    pub fn id(&self) -> u64 {
        self.inner.shared.id
    }

    /// The RTP address this leg receives on (`None` for WebRTC legs, whose ICE transport
    /// belongs to webrtc-rs).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.inner.kind {
            Kind::Rtp { local, .. } => Some(*local),
            Kind::WebRtc { .. } => None,
        }
    }

    /// Our SDP offer: the configured codecs in order, telephone-event/8000, ptime 20.
    /// For a WebRTC leg, the answer it gave to the browser.
    pub fn local_offer(&self) -> String {
        match &self.inner.kind {
            Kind::Rtp { sdp, .. } => sdp.offer(&self.inner.engine.codecs),
            Kind::WebRtc { answer, .. } => answer.clone(),
        }
    }

    /// Takes the answer to [`Endpoint::local_offer`]: the remote address and the codec.
    /// May be called again (re-INVITE): the leg follows the new answer.
    pub fn accept_answer(&self, sdp: &str) -> Result<(), MediaError> {
        let Kind::Rtp { sdp: local, .. } = &self.inner.kind else {
            return Err(MediaError::Unsupported("a WebRTC leg negotiates once, in webrtc_endpoint"));
        };
        let neg = local.accept(sdp, &self.inner.engine.codecs)?;
        self.configure(neg)
    }

    /// Answers a remote offer (an inbound call, a re-INVITE); returns our answer.
    pub fn answer_offer(&self, sdp: &str) -> Result<String, MediaError> {
        let Kind::Rtp { sdp: local, .. } = &self.inner.kind else {
            return Err(MediaError::Unsupported("a WebRTC leg negotiates once, in webrtc_endpoint"));
        };
        let (answer, neg) = local.answer(sdp, &self.inner.engine.codecs)?;
        self.configure(neg)?;
        Ok(answer)
    }

    pub(crate) fn configure(&self, neg: Negotiated) -> Result<(), MediaError> {
        self.check_open()?;
        if let Ok(mut n) = self.inner.shared.negotiated.lock() {
            *n = Some(neg.clone());
        }
        self.send(Cmd::Configure { leg: self.inner.shared.clone(), neg });
        Ok(())
    }

    /// Events of this leg: digits, first packet, RTP timeout, WebRTC state.
    pub fn events(&self) -> broadcast::Receiver<MediaEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Decoded 20 ms frames of what arrives on this leg (for AMD and analysis). Frames a
    /// reader leaves for over a second are dropped (and counted), never queued unbounded.
    pub fn tap(&self) -> mpsc::Receiver<AudioFrame> {
        let (tx, rx) = mpsc::channel(TAP_DEPTH);
        self.send(Cmd::Tap { leg: self.inner.shared.clone(), tx });
        rx
    }

    /// Plays a prompt to the far end; resolves when it has played or was stopped. While
    /// it plays it replaces what a bridge sends to this leg. A new `play` stops the last.
    pub async fn play(&self, prompt: &Prompt) -> Result<(), MediaError> {
        self.check_open()?;
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Play { leg: self.inner.shared.clone(), prompt: prompt.clone(), done });
        rx.await.map_err(|_| MediaError::Closed)
    }

    pub fn stop_playback(&self) {
        self.send(Cmd::StopPlay { leg: self.inner.shared.clone() });
    }

    /// Sends digits (`0-9 * # A-D`) as RFC 4733 events, 100 ms each with 60 ms between.
    pub fn send_dtmf(&self, digits: &str) -> Result<(), MediaError> {
        self.check_open()?;
        let codes = digits
            .chars()
            .map(|c| digit_event(c).ok_or_else(|| MediaError::Dtmf(format!("{c:?} in {digits:?} is not a DTMF digit"))))
            .collect::<Result<Vec<u8>, _>>()?;
        let neg = self.inner.shared.negotiated.lock().map(|n| n.clone()).unwrap_or(None);
        match neg {
            None => return Err(MediaError::Dtmf("the leg has no negotiated media yet".into())),
            Some(n) if n.te_pt.is_none() => {
                return Err(MediaError::Dtmf("the far end did not accept telephone-event/8000".into()));
            }
            Some(_) => {}
        }
        self.send(Cmd::Dtmf { leg: self.inner.shared.clone(), codes });
        Ok(())
    }

    /// Counters of this leg (updated by its shard every 100 ms).
    pub fn stats(&self) -> LegStats {
        self.inner.shared.snapshot()
    }

    /// Frees the leg now, whatever other handles exist; later calls fail with `Closed`.
    pub fn close(&self) {
        close(&self.inner.engine, &self.inner.shared);
    }

    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.load(SeqCst)
    }

    fn check_open(&self) -> Result<(), MediaError> {
        if self.is_closed() { Err(MediaError::Closed) } else { Ok(()) }
    }

    fn send(&self, cmd: Cmd) {
        if !self.is_closed() {
            self.inner.engine.ctx.send_to_leg(&self.inner.shared, cmd);
        }
    }
}
