//! Answering-machine detection (AMD) on the customer's first seconds of audio, and the
//! voicemail beep that says when to leave a message.
//!
//! - [`Detector`]: human / machine / unknown from the audio after answer, with the audio
//!   time the verdict took. A person says a short greeting and waits; a machine talks on.
//! - [`BeepDetector`]: after a machine verdict, when the greeting is over: the end of the
//!   beep, or a silence when there is none.
//! - [`synth`]: procedural speech-like audio (greetings, talk) for the demo's simulated
//!   carrier, which must run where no speech synthesiser is installed.
//!
//! Both detectors are sans-I/O state machines over 8 kHz mono 16-bit PCM: time is the audio
//! fed to them, so they never read a clock, and they allocate nothing per frame.

mod analysis;
mod beep;
mod config;
mod detector;
pub mod synth;

use std::time::Duration;

pub use analysis::SAMPLE_RATE;
pub use beep::{BeepDetector, BeepEvent};
pub use config::{AmdConfig, AmdConfigError, BeepConfig};
pub use detector::Detector;

/// What the detector concluded about the answering party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerdictKind {
    /// A person: connect them to an agent now.
    Human,
    /// An answering machine or voicemail: hang up or wait for the beep, per campaign.
    Machine,
    /// The audio did not tell (silence, or nothing conclusive in time). Campaigns usually
    /// treat it as a person, because hanging up on one is the costlier mistake.
    Unknown,
}

/// Which rule gave the verdict; stable names for logs, CDRs and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Human: a short greeting followed by silence.
    ShortGreeting,
    /// Machine: more voiced greeting than a person says.
    LongGreeting,
    /// Machine: more words than a person's greeting has.
    MaxWords,
    /// Machine: one unbroken sound too long for a word.
    LongWord,
    /// Machine: a beep.
    Beep,
    /// Unknown: nobody spoke.
    InitialSilence,
    /// Unknown: the analysis time ran out.
    TooLong,
    /// Unknown: the audio ended first.
    EndOfAudio,
}

impl Reason {
    /// Snake-case name (as Asterisk's `AMDCAUSE` words, but stable across our versions).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ShortGreeting => "short_greeting",
            Reason::LongGreeting => "long_greeting",
            Reason::MaxWords => "max_words",
            Reason::LongWord => "long_word",
            Reason::Beep => "beep",
            Reason::InitialSilence => "initial_silence",
            Reason::TooLong => "too_long",
            Reason::EndOfAudio => "end_of_audio",
        }
    }
}

/// The detector's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub reason: Reason,
    /// Audio time from the answer (the first sample fed) to the verdict.
    pub after: Duration,
    /// Words (energy bursts) heard in the greeting.
    pub words: u32,
    /// Voiced time of the greeting.
    pub greeting: Duration,
}
