//! `pacer-media`: everything that touches audio.
//!
//! RTP endpoints on the configured port range, WebRTC endpoints for agents' browsers, the
//! bridge that connects a customer leg to an agent's persistent leg, recording, prompts,
//! DTMF and answering-machine detection. Settings come from [`pacer_config::MediaConfig`].
//! Not built yet: this crate has no code so far (issue #5).

pub mod amd;
