//! When a voicemail greeting is over: the end of its beep, or a silence when it has none.

use std::time::Duration;

use super::analysis::{Analyzer, FRAME_MS, ToneEvent, ToneTracker, frames};
use super::config::AmdConfig;
use super::detector::Detector;

/// Waits for the moment to leave a message on a voicemail: feed it the audio after the
/// machine verdict ([`BeepDetector::after`]) and it says when the beep ended, or that the
/// greeting went silent without one. A beep is one pure tone in
/// `beep.min_hz..=beep.max_hz` lasting at least `beep.min_duration_ms`; vowels hold a pitch
/// for less and are never that pure. Sans-I/O, no allocation after construction.
#[derive(Debug, Clone)]
pub struct BeepDetector {
    analyzer: Analyzer,
    tone: ToneTracker,
    /// Frames analysed so far.
    frame: u32,
    /// Frames with neither voice nor a tone.
    silence: u32,
    min_beep: u32,
    silence_limit: u32,
    max_wait: u32,
    /// The longest tone so far is a beep in progress.
    beeping: bool,
    done: bool,
}

/// What [`BeepDetector`] found. Times are audio time since its first sample, or since the
/// answer when it carries on from a [`Detector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BeepEvent {
    /// The beep ended at `at`: the message can start now.
    Beep { at: Duration, duration: Duration, frequency_hz: f32 },
    /// Neither voice nor tone for `beep.silence_ms` (the greeting ended without a beep);
    /// `at` is when that silence was complete.
    Silence { at: Duration },
    /// `beep.max_wait_ms` of audio without either.
    Timeout { at: Duration },
}

impl BeepEvent {
    /// When the event happened, in audio time.
    pub fn at(&self) -> Duration {
        match *self {
            BeepEvent::Beep { at, .. } | BeepEvent::Silence { at } | BeepEvent::Timeout { at } => at,
        }
    }
}

fn ms(frames: u32) -> Duration {
    Duration::from_millis(u64::from(frames) * u64::from(FRAME_MS))
}

impl BeepDetector {
    /// Uses `config.beep` and the level settings of `config`.
    pub fn new(config: AmdConfig) -> Self {
        Self {
            analyzer: Analyzer::new(&config),
            tone: ToneTracker::new(&config.beep),
            frame: 0,
            silence: 0,
            min_beep: frames(config.beep.min_duration_ms),
            silence_limit: frames(config.beep.silence_ms),
            max_wait: frames(config.beep.max_wait_ms),
            beeping: false,
            done: false,
        }
    }

    /// Carries on from `detector` (after its machine verdict) on the same audio: the next
    /// slice of audio goes here. It keeps the noise floor and a beep already under way (the
    /// detector may have stopped because of it), and its times, like the verdict's, count
    /// from the answer.
    pub fn after(detector: &Detector) -> Self {
        let (config, analyzer, tone, frame) = detector.state();
        let mut b = Self::new(config);
        b.analyzer = analyzer.clone();
        b.tone = tone.clone();
        b.frame = frame;
        b.max_wait = b.max_wait.saturating_add(frame);
        b.beeping = tone.frames() >= b.min_beep;
        b
    }

    /// Feeds audio; returns the event once. Audio after it is ignored.
    pub fn push(&mut self, samples: &[i16]) -> Option<BeepEvent> {
        if self.done {
            return None;
        }
        let mut rest = samples;
        while !rest.is_empty() {
            let Some(frame) = self.analyzer.next_frame(&mut rest) else { continue };
            self.frame += 1;
            let event = match self.tone.update(frame.tone) {
                ToneEvent::Ongoing { frames, .. } => {
                    self.beeping = frames >= self.min_beep;
                    None
                }
                ToneEvent::Ended { frames, hz, ago } if frames >= self.min_beep => Some(BeepEvent::Beep {
                    at: ms(self.frame - ago),
                    duration: ms(frames),
                    frequency_hz: hz,
                }),
                ToneEvent::Ended { .. } => {
                    self.beeping = false;
                    None
                }
                // Possibly one missed frame inside a beep: the tracker will tell.
                ToneEvent::None => None,
            };
            if frame.voice || frame.tone.is_some() {
                self.silence = 0;
            } else {
                self.silence += 1;
            }
            let event = event
                .or_else(|| (!self.beeping && self.silence >= self.silence_limit).then(|| BeepEvent::Silence { at: ms(self.frame) }))
                .or_else(|| (!self.beeping && self.frame >= self.max_wait).then(|| BeepEvent::Timeout { at: ms(self.frame) }));
            if event.is_some() {
                self.done = true;
                return event;
            }
        }
        None
    }

    /// The audio ended: a beep still sounding ends here. `None` otherwise, or when the event
    /// was already given.
    pub fn finish(&mut self) -> Option<BeepEvent> {
        if self.done {
            return None;
        }
        self.done = true;
        match self.tone.flush() {
            // `ago` counts from the end of a frame that will not come.
            ToneEvent::Ended { frames, hz, ago } if frames >= self.min_beep => {
                Some(BeepEvent::Beep { at: ms(self.frame + 1 - ago), duration: ms(frames), frequency_hz: hz })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, amp: f32, ms: usize) -> Vec<i16> {
        (0..ms * 8).map(|i| (amp * 32767.0 * (std::f32::consts::TAU * hz * i as f32 / 8000.0).sin()) as i16).collect()
    }

    fn run(d: &mut BeepDetector, audio: &[i16]) -> Option<BeepEvent> {
        audio.chunks(160).find_map(|c| d.push(c))
    }

    #[test]
    fn reports_the_end_of_a_beep() {
        let mut audio = vec![0i16; 4000];
        audio.extend(sine(1000.0, 0.3, 500));
        audio.extend(vec![0i16; 8000]);
        let mut d = BeepDetector::new(AmdConfig::default());
        match run(&mut d, &audio) {
            Some(BeepEvent::Beep { at, duration, frequency_hz }) => {
                assert_eq!(at, Duration::from_millis(1000));
                assert_eq!(duration, Duration::from_millis(500));
                assert!((frequency_hz - 1000.0).abs() < 5.0, "{frequency_hz}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.push(&audio), None, "one event only");
    }

    #[test]
    fn carries_on_from_a_detector_stopped_by_the_beep() {
        // A short greeting-less voicemail: 300 ms of silence, then the beep.
        let mut audio = vec![0i16; 2400];
        audio.extend(sine(1200.0, 0.3, 600));
        audio.extend(vec![0i16; 8000]);
        let mut d = Detector::new(AmdConfig::default());
        let mut chunks = audio.chunks(160);
        let v = chunks.by_ref().find_map(|c| d.push(c)).unwrap();
        assert_eq!((v.reason, v.after), (crate::amd::Reason::Beep, Duration::from_millis(450)));
        let mut b = BeepDetector::after(&d);
        let e = chunks.find_map(|c| b.push(c));
        assert!(matches!(e, Some(BeepEvent::Beep { at, duration, .. })
            if at == Duration::from_millis(900) && duration == Duration::from_millis(600)), "{e:?}");
    }

    #[test]
    fn a_short_tone_is_no_beep_and_silence_ends_the_wait() {
        let mut audio = sine(1000.0, 0.3, 100);
        audio.extend(vec![0i16; 16000]);
        let mut d = BeepDetector::new(AmdConfig::default());
        assert_eq!(run(&mut d, &audio), Some(BeepEvent::Silence { at: Duration::from_millis(1600) }));
    }

    #[test]
    fn a_beep_cut_by_the_end_of_audio_still_counts_and_a_lasting_tone_times_out() {
        let mut d = BeepDetector::new(AmdConfig::default());
        assert_eq!(run(&mut d, &sine(850.0, 0.3, 400)), None);
        assert!(matches!(d.finish(), Some(BeepEvent::Beep { at, .. }) if at == Duration::from_millis(400)));

        let cfg = AmdConfig { beep: crate::amd::BeepConfig { max_wait_ms: 3000, ..Default::default() }, ..Default::default() };
        let mut d = BeepDetector::new(cfg);
        let mut audio = sine(440.0, 0.3, 5000);
        audio.extend(vec![0i16; 8000]);
        // A tone longer than the wait is let run to its end; a beep, however long, ends.
        let e = run(&mut d, &audio);
        assert!(matches!(e, Some(BeepEvent::Beep { at, .. }) if at == Duration::from_millis(5000)), "{e:?}");
    }
}
