//! The human-or-machine decision on the first seconds after answer.

use std::time::Duration;

use super::analysis::{Analyzer, FRAME_MS, ToneEvent, ToneTracker, frames};
use super::config::AmdConfig;
use super::{Reason, Verdict, VerdictKind};

/// Answering-machine detector for one call: feed it the customer's audio from the answer on,
/// and it returns a [`Verdict`] once the audio tells. Sans-I/O: its clock is the audio fed to
/// it (8 kHz mono), so it runs the same in a live call, in a test and in the simulator. It
/// allocates nothing after construction.
///
/// ```
/// use pacer_media::amd::{AmdConfig, Detector, VerdictKind};
/// let mut d = Detector::new(AmdConfig::default());
/// let greeting = pacer_media::amd::synth::human_greeting(7);
/// let verdict = greeting.chunks(160).find_map(|frame| d.push(frame)).unwrap();
/// assert_eq!(verdict.kind, VerdictKind::Human);
/// ```
#[derive(Debug, Clone)]
pub struct Detector {
    analyzer: Analyzer,
    tone: ToneTracker,
    limits: Limits,
    /// Frames analysed so far.
    frame: u32,
    in_greeting: bool,
    in_word: bool,
    /// Voice frames of the current word, not reset by gaps shorter than between words.
    word_voice: u32,
    /// Consecutive voice frames.
    voice_run: u32,
    /// Frames since the last sound of at least [`MIN_SOUND`] frames.
    silence: u32,
    /// Voiced frames since the greeting began.
    greeting_voice: u32,
    words: u32,
    verdict: Option<Verdict>,
}

/// The configuration in frames.
#[derive(Debug, Clone, Copy)]
struct Limits {
    initial_silence: u32,
    greeting: u32,
    after_greeting: u32,
    after_short_greeting: u32,
    short_greeting: u32,
    total: u32,
    min_word: u32,
    between_words: u32,
    max_words: u32,
    max_word: u32,
    beep: u32,
}

/// Frames of voice that end a silence: 20 ms, longer than a click.
const MIN_SOUND: u32 = 2;

impl Detector {
    /// A detector for one call. Check the settings with [`AmdConfig::validate`] when they
    /// are loaded; the detector takes any values without panicking.
    pub fn new(config: AmdConfig) -> Self {
        let limits = Limits {
            initial_silence: frames(config.initial_silence_ms),
            greeting: frames(config.greeting_ms),
            after_greeting: frames(config.after_greeting_silence_ms),
            after_short_greeting: match config.after_short_greeting_silence_ms {
                0 => u32::MAX,
                ms => frames(ms),
            },
            short_greeting: config.short_greeting_ms / FRAME_MS,
            total: frames(config.total_analysis_ms),
            min_word: frames(config.min_word_ms),
            between_words: frames(config.between_words_silence_ms),
            max_words: config.max_words,
            max_word: frames(config.max_word_ms),
            beep: frames(config.beep.min_duration_ms),
        };
        Self {
            analyzer: Analyzer::new(&config),
            tone: ToneTracker::new(&config.beep),
            limits,
            frame: 0,
            in_greeting: false,
            in_word: false,
            word_voice: 0,
            voice_run: 0,
            silence: 0,
            greeting_voice: 0,
            words: 0,
            verdict: None,
        }
    }

    /// Feeds audio (any number of samples; 20 ms = 160). Returns the verdict once, when it is
    /// reached; afterwards the audio is ignored and [`Detector::verdict`] keeps it.
    pub fn push(&mut self, samples: &[i16]) -> Option<Verdict> {
        if self.verdict.is_some() {
            return None;
        }
        let mut rest = samples;
        while !rest.is_empty() {
            let Some(frame) = self.analyzer.next_frame(&mut rest) else { continue };
            self.frame += 1;
            let beep = matches!(self.tone.update(frame.tone), ToneEvent::Ongoing { frames, .. } if frames >= self.limits.beep);
            let decided = if beep {
                Some((VerdictKind::Machine, Reason::Beep))
            } else {
                self.step(frame.voice || frame.tone.is_some())
            };
            if let Some((kind, reason)) = decided {
                return self.decide(kind, reason);
            }
        }
        None
    }

    /// The audio ended (the far end hung up, or the caller stops listening) before a verdict:
    /// returns `Unknown` then, or `None` when the verdict was already given.
    pub fn finish(&mut self) -> Option<Verdict> {
        if self.verdict.is_some() {
            return None;
        }
        self.decide(VerdictKind::Unknown, Reason::EndOfAudio)
    }

    /// The verdict, once reached.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// Audio analysed so far (whole 10 ms frames).
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(u64::from(self.frame) * u64::from(FRAME_MS))
    }

    fn decide(&mut self, kind: VerdictKind, reason: Reason) -> Option<Verdict> {
        let v = Verdict {
            kind,
            reason,
            after: self.elapsed(),
            words: self.words,
            greeting: Duration::from_millis(u64::from(self.greeting_voice) * u64::from(FRAME_MS)),
        };
        tracing::debug!(?kind, reason = reason.as_str(), after_ms = v.after.as_millis() as u64, words = v.words, "amd verdict");
        self.verdict = Some(v);
        self.verdict
    }

    /// One frame of the word and silence bookkeeping (after Asterisk's AMD, whose settings
    /// call-centre staff know), then the rules in order of how sure they are.
    fn step(&mut self, voice: bool) -> Option<(VerdictKind, Reason)> {
        let l = self.limits;
        if voice {
            self.word_voice += 1;
            self.voice_run += 1;
            if self.in_greeting {
                self.greeting_voice += 1;
            }
            if self.word_voice >= l.min_word && !self.in_word {
                self.in_word = true;
                self.words += 1;
                if !self.in_greeting {
                    // The first word opens the greeting, counted from its first frame.
                    self.in_greeting = true;
                    self.greeting_voice = self.word_voice;
                }
            }
            // Short syllables ("this is") break a silence even when they are too short to be
            // words, but a click does not.
            if self.voice_run >= MIN_SOUND {
                self.silence = 0;
            } else {
                self.silence += 1;
            }
        } else {
            self.voice_run = 0;
            self.silence += 1;
            if self.silence >= l.between_words {
                self.in_word = false;
                self.word_voice = 0;
            }
        }

        if self.in_word && self.word_voice >= l.max_word {
            return Some((VerdictKind::Machine, Reason::LongWord));
        }
        if self.words > l.max_words {
            return Some((VerdictKind::Machine, Reason::MaxWords));
        }
        if self.greeting_voice >= l.greeting {
            return Some((VerdictKind::Machine, Reason::LongGreeting));
        }
        if self.in_greeting && !self.in_word {
            let short = self.words <= 1 && self.greeting_voice <= l.short_greeting;
            let needed = if short { l.after_short_greeting.min(l.after_greeting) } else { l.after_greeting };
            if self.silence >= needed {
                return Some((VerdictKind::Human, Reason::ShortGreeting));
            }
        }
        if !self.in_greeting && self.frame >= l.initial_silence {
            return Some((VerdictKind::Unknown, Reason::InitialSilence));
        }
        if self.frame >= l.total {
            return Some((VerdictKind::Unknown, Reason::TooLong));
        }
        None
    }
}
