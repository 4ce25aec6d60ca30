//! `pacer-media`: everything that touches audio.
//!
//! [`MediaEngine`] hands out legs ([`Endpoint`]): plain RTP endpoints on the configured
//! port range (symmetric RTP, G.711 µ-law/A-law, RFC 4733 digits, RTCP or rtcp-mux) and
//! WebRTC endpoints answering a browser's offer (ICE-lite style host candidates,
//! DTLS-SRTP, rtcp-mux). [`MediaEngine::bridge`] connects a customer leg to an agent's
//! persistent leg; re-pointing the agent to the next customer keeps the agent's stream
//! one continuous RTP stream. A [`Bridge`] also takes a supervisor ([`SupervisorMode`])
//! and records the call ([`Recording`], stereo WAV). [`Prompt`]s play into a leg.
//! The crate knows nothing of calls, campaigns or SIP dialogs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pacer_media::MediaError> {
//! let engine = pacer_media::MediaEngine::new(&pacer_config::MediaConfig::default())?;
//! let (customer, agent) = (engine.rtp_endpoint().await?, engine.rtp_endpoint().await?);
//! // ... offer/answer with each far end, then:
//! let bridge = engine.bridge(&customer, &agent)?;
//! let rec = bridge.record("/tmp/call.wav")?;
//! let path = rec.stop().await?;
//! # let _ = path; Ok(()) }
//! ```
//!
//! Packets are handled by one thread per core (a *shard*), each with its own `epoll`
//! loop; all legs of a bridge live on one shard, so the packet path takes no lock and
//! allocates nothing.

pub mod amd;
mod bridge;
mod codec;
mod dtmf;
mod endpoint;
mod engine;
mod leg;
mod metrics;
mod ports;
mod prompt;
mod recorder;
mod rtp;
mod sdp;
mod shard;
mod webrtc;

use std::path::PathBuf;

pub use bridge::{Bridge, Recording, SupervisorMode};
pub use codec::{Codec, FRAME_SAMPLES};
pub use endpoint::Endpoint;
pub use engine::MediaEngine;
pub use leg::{AudioFrame, LegStats, MediaEvent};
pub use prompt::Prompt;

pub(crate) use leg::LegShared;

/// What can go wrong in the media engine. Messages name the thing and the reason.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{0}")]
    Config(String),
    #[error("no free RTP port pair left in {min}..={max} (media.rtp_port_min/rtp_port_max)")]
    PortsExhausted { min: u16, max: u16 },
    #[error("SDP: {0}")]
    Sdp(String),
    #[error("prompt {}: {reason}", path.display())]
    Prompt { path: PathBuf, reason: String },
    #[error("recording {}: {reason}", path.display())]
    Recording { path: PathBuf, reason: String },
    #[error("DTMF: {0}")]
    Dtmf(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("the leg or bridge is closed")]
    Closed,
    #[error("WebRTC: {0}")]
    WebRtc(String),
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}
