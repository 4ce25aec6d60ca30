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
    config: AmdConfig,
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
            config,
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
    /// reached; later audio is ignored and [`Detector::verdict`] keeps it. The rest of the
    /// slice that brought the verdict is still analysed, so that
    /// [`BeepDetector::after`](super::BeepDetector::after) can carry on with the next slice.
    pub fn push(&mut self, samples: &[i16]) -> Option<Verdict> {
        if self.verdict.is_some() {
            return None;
        }
        let mut rest = samples;
        let mut reached = None;
        while !rest.is_empty() {
            let Some(frame) = self.analyzer.next_frame(&mut rest) else { continue };
            self.frame += 1;
            let tone = self.tone.update(frame.tone);
            if reached.is_some() {
                continue;
            }
            let beep = matches!(tone, ToneEvent::Ongoing { frames, .. } if frames >= self.limits.beep);
            let decided = if beep {
                Some((VerdictKind::Machine, Reason::Beep))
            } else {
                self.step(frame.voice || frame.tone.is_some())
            };
            if let Some((kind, reason)) = decided {
                reached = self.decide(kind, reason);
            }
        }
        reached
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

    /// What a beep detector carrying on from here needs: the settings, the analysis state
    /// (noise floor, filter, a partial frame, a tone under way) and the frame count.
    pub(crate) fn state(&self) -> (AmdConfig, &Analyzer, &ToneTracker, u32) {
        (self.config, &self.analyzer, &self.tone, self.frame)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amd::synth;

    fn run(config: AmdConfig, audio: &[i16], chunk: usize) -> Verdict {
        let mut d = Detector::new(config);
        audio.chunks(chunk).find_map(|c| d.push(c)).or_else(|| d.finish()).unwrap()
    }

    fn noise(n: usize, amp: i32, seed: u32) -> Vec<i16> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (((s >> 16) as i32 - 32768) * amp / 32768) as i16
            })
            .collect()
    }

    #[test]
    fn the_verdict_does_not_depend_on_how_the_audio_is_cut() {
        for audio in [synth::human_greeting(5), synth::machine_greeting(5, true)] {
            let whole = run(AmdConfig::default(), &audio, audio.len());
            for chunk in [1, 7, 80, 160, 333, 4000] {
                assert_eq!(run(AmdConfig::default(), &audio, chunk), whole, "chunks of {chunk}");
            }
        }
    }

    #[test]
    fn silence_and_steady_noise_are_unknown_at_the_initial_silence_limit() {
        let v = run(AmdConfig::default(), &vec![0; 8000 * 4], 160);
        assert_eq!((v.kind, v.reason, v.after), (VerdictKind::Unknown, Reason::InitialSilence, Duration::from_millis(2500)));
        // Loud line noise (about -25 dBFS) is not a greeting either.
        let v = run(AmdConfig::default(), &noise(8000 * 4, 3000, 1), 160);
        assert_eq!((v.kind, v.reason), (VerdictKind::Unknown, Reason::InitialSilence), "{v:?}");
    }

    #[test]
    fn a_person_is_recognised_in_noise_and_a_machine_is_not_taken_for_one() {
        let h = synth::human_greeting(11);
        let noisy: Vec<i16> = h.iter().zip(noise(h.len(), 400, 2)).map(|(a, b)| a.saturating_add(b)).collect();
        assert_eq!(run(AmdConfig::default(), &noisy, 160).kind, VerdictKind::Human);
        let m = synth::machine_greeting(11, false);
        let noisy: Vec<i16> = m.iter().zip(noise(m.len(), 400, 3)).map(|(a, b)| a.saturating_add(b)).collect();
        assert_eq!(run(AmdConfig::default(), &noisy, 160).kind, VerdictKind::Machine);
    }

    #[test]
    fn a_beep_right_after_answer_is_a_machine() {
        let mut audio = vec![0i16; 1600];
        audio.extend((0..8000).map(|i| (9000.0 * (std::f32::consts::TAU * 1000.0 * i as f32 / 8000.0).sin()) as i16));
        let v = run(AmdConfig::default(), &audio, 160);
        // 200 ms of silence, then 150 ms of tone.
        assert_eq!((v.kind, v.reason, v.after), (VerdictKind::Machine, Reason::Beep, Duration::from_millis(350)));
    }

    #[test]
    fn each_rule_names_itself() {
        // A low hum: loud, but no beep (under 400 Hz).
        let hum: Vec<i16> = (0..8000 * 3).map(|i| (6000.0 * (std::f32::consts::TAU * 150.0 * i as f32 / 8000.0).sin()) as i16).collect();
        // Words that keep coming (200 ms bursts, 150 ms apart): too many of them.
        let mut words = vec![0i16; 800];
        for _ in 0..4 {
            words.extend(&hum[..1600]);
            words.extend(vec![0i16; 1200]);
        }
        let v = run(AmdConfig { max_words: 2, ..AmdConfig::default() }, &words, 160);
        // The third word counts once it has lasted 100 ms: 100 + 2 * 350 + 100 ms.
        assert_eq!((v.kind, v.reason, v.words, v.after), (VerdictKind::Machine, Reason::MaxWords, 3, Duration::from_millis(900)));
        let mut audio = vec![0i16; 800];
        audio.extend(&hum);
        let v = run(AmdConfig { max_word_ms: 1000, greeting_ms: 2500, ..AmdConfig::default() }, &audio, 160);
        assert_eq!((v.kind, v.reason), (VerdictKind::Machine, Reason::LongWord), "{v:?}");
        // Talk that goes on: more greeting than a person says. (A steady hum would not do: a
        // sound that does not vary for a whole noise window becomes the noise floor.)
        let talk = synth::speech_like(2, Duration::from_secs(6));
        let v = run(AmdConfig::default(), &talk, 160);
        assert_eq!((v.kind, v.reason, v.greeting), (VerdictKind::Machine, Reason::LongGreeting, Duration::from_millis(1700)));
        // Nothing decides within the analysis time.
        let v = run(AmdConfig { total_analysis_ms: 600, ..AmdConfig::default() }, &audio, 160);
        assert_eq!((v.kind, v.reason, v.after), (VerdictKind::Unknown, Reason::TooLong, Duration::from_millis(600)));
        // The audio stops first.
        let v = run(AmdConfig::default(), &audio[..4000], 160);
        assert_eq!((v.kind, v.reason, v.after), (VerdictKind::Unknown, Reason::EndOfAudio, Duration::from_millis(500)));
    }

    #[test]
    fn the_verdict_is_given_once_and_kept() {
        let audio = synth::human_greeting(3);
        let mut d = Detector::new(AmdConfig::default());
        let v = audio.chunks(160).find_map(|c| d.push(c)).unwrap();
        assert_eq!(d.push(&audio), None);
        assert_eq!(d.finish(), None);
        assert_eq!(d.verdict(), Some(v));
        assert_eq!(d.elapsed(), v.after);
        assert_eq!(d.push(&[]), None);
    }
}
