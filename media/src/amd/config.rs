//! Settings of the answering-machine detector and the beep detector.

use serde::{Deserialize, Serialize};

/// How the detector tells a person from an answering machine.
///
/// A person picks up, says a short greeting ("Hello?") and waits for the caller; a machine
/// talks on for several seconds. The detector measures the greeting in *voiced* time (energy
/// above the adapted threshold), counts words as energy bursts, and waits for the silence
/// after the greeting. Durations are in milliseconds of audio. The defaults suit 8 kHz
/// telephone audio and were fitted on a development set generated with another seed than
/// the test set (see the README's "Answering-machine detection").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmdConfig {
    /// Silence before any word longer than this ends the analysis as `Unknown`: nobody
    /// speaks, which is as likely a person waiting for the caller as a machine.
    pub initial_silence_ms: u32,
    /// Voiced time after which a greeting is too long for a person: `Machine`.
    pub greeting_ms: u32,
    /// Silence after a greeting that makes it a person's: they stopped and wait.
    pub after_greeting_silence_ms: u32,
    /// Silence after a *short* greeting (at most `short_greeting_ms` voiced, one word) that
    /// makes it a person's. A lone "Hello?" ends sooner than a sentence, and a machine rarely
    /// stops that early, so the verdict can come sooner; 0 disables the shortcut.
    pub after_short_greeting_silence_ms: u32,
    /// The longest voiced time of a greeting that counts as short (see above).
    pub short_greeting_ms: u32,
    /// The analysis never runs longer than this: `Unknown` when nothing decided it.
    pub total_analysis_ms: u32,
    /// A burst of voice shorter than this is a click or a breath, not a word.
    pub min_word_ms: u32,
    /// Silence that separates two words.
    pub between_words_silence_ms: u32,
    /// More words than this in the greeting: `Machine`.
    pub max_words: u32,
    /// One word (voice without a `between_words_silence_ms` gap) longer than this is not
    /// speech a person greets with (music, a tone, a continuous recording): `Machine`.
    pub max_word_ms: u32,
    /// Frames quieter than this (dBFS, 10 ms mean square) are silence whatever the noise.
    pub silence_threshold_dbfs: f32,
    /// Voice must be this far (dB) above the noise floor.
    pub voice_margin_db: f32,
    /// The noise floor is the quietest level seen over this window: speech always has
    /// gaps within it, so the minimum follows the line noise, not the talker.
    pub noise_window_ms: u32,
    /// Beep detection: a beep during the analysis means `Machine`.
    pub beep: BeepConfig,
}

/// What counts as the voicemail beep, and when the greeting is over without one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeepConfig {
    /// Lowest beep frequency (Hz).
    pub min_hz: f32,
    /// Highest beep frequency (Hz).
    pub max_hz: f32,
    /// A tone must last this long to be a beep; vowels hold a pitch for less.
    pub min_duration_ms: u32,
    /// Share (0..1) of a frame's energy at the tone frequency for the frame to be tonal.
    /// A sine scores about 1, speech well under 0.5, noise near 0.
    pub purity: f32,
    /// Largest distance (Hz) of a frame's frequency from the beep's mean so far.
    pub max_drift_hz: f32,
    /// Largest level range (dB) over one beep: beeps are flat, vowels swell and fade.
    pub max_level_spread_db: f32,
    /// No voice and no tone for this long after the greeting: it ended without a beep.
    pub silence_ms: u32,
    /// `BeepDetector` gives up after this much audio.
    pub max_wait_ms: u32,
}

impl Default for AmdConfig {
    fn default() -> Self {
        Self {
            initial_silence_ms: 2500,
            greeting_ms: 1700,
            after_greeting_silence_ms: 800,
            after_short_greeting_silence_ms: 500,
            short_greeting_ms: 800,
            total_analysis_ms: 5000,
            min_word_ms: 100,
            between_words_silence_ms: 50,
            max_words: 4,
            max_word_ms: 5000,
            silence_threshold_dbfs: -48.0,
            voice_margin_db: 10.0,
            noise_window_ms: 1000,
            beep: BeepConfig::default(),
        }
    }
}

impl Default for BeepConfig {
    fn default() -> Self {
        Self {
            min_hz: 400.0,
            max_hz: 2000.0,
            min_duration_ms: 150,
            purity: 0.7,
            max_drift_hz: 15.0,
            max_level_spread_db: 4.0,
            silence_ms: 1500,
            max_wait_ms: 20_000,
        }
    }
}

/// Every problem found in an [`AmdConfig`], each naming its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid AMD settings: {}", .problems.iter().map(|(k, r)| format!("amd.{k} {r}")).collect::<Vec<_>>().join("; "))]
pub struct AmdConfigError {
    /// `(key, reason)` pairs, keys relative to the `amd` section.
    pub problems: Vec<(&'static str, String)>,
}

impl AmdConfig {
    /// Checks the settings and reports every problem at once. The detectors accept any
    /// values (they never panic), but these would make them decide nonsense.
    pub fn validate(&self) -> Result<(), AmdConfigError> {
        let mut problems = Vec::new();
        let mut positive = |key: &'static str, v: u32| {
            if v == 0 {
                problems.push((key, "must be greater than 0".to_string()));
            }
        };
        positive("initial_silence_ms", self.initial_silence_ms);
        positive("greeting_ms", self.greeting_ms);
        positive("after_greeting_silence_ms", self.after_greeting_silence_ms);
        positive("total_analysis_ms", self.total_analysis_ms);
        positive("min_word_ms", self.min_word_ms);
        positive("between_words_silence_ms", self.between_words_silence_ms);
        positive("max_word_ms", self.max_word_ms);
        positive("noise_window_ms", self.noise_window_ms);
        positive("beep.min_duration_ms", self.beep.min_duration_ms);
        positive("beep.silence_ms", self.beep.silence_ms);
        positive("beep.max_wait_ms", self.beep.max_wait_ms);
        if self.after_short_greeting_silence_ms > self.after_greeting_silence_ms {
            problems.push((
                "after_short_greeting_silence_ms",
                format!("must not exceed after_greeting_silence_ms ({})", self.after_greeting_silence_ms),
            ));
        }
        if self.max_word_ms < self.min_word_ms {
            problems.push(("max_word_ms", format!("must be at least min_word_ms ({})", self.min_word_ms)));
        }
        if !(-96.0..=0.0).contains(&self.silence_threshold_dbfs) {
            problems.push(("silence_threshold_dbfs", "must be between -96 and 0 dBFS".to_string()));
        }
        if !(0.0..=60.0).contains(&self.voice_margin_db) {
            problems.push(("voice_margin_db", "must be between 0 and 60 dB".to_string()));
        }
        let b = &self.beep;
        if !(b.min_hz > 0.0 && b.min_hz < b.max_hz && b.max_hz < 4000.0) {
            problems.push(("beep.min_hz", "must be above 0 and below beep.max_hz, itself below 4000 (8 kHz audio)".to_string()));
        }
        if !(b.purity > 0.0 && b.purity <= 1.0) {
            problems.push(("beep.purity", "must be in (0, 1]".to_string()));
        }
        if b.max_drift_hz.is_nan() || b.max_drift_hz < 0.0 {
            problems.push(("beep.max_drift_hz", "must not be negative".to_string()));
        }
        if b.max_level_spread_db.is_nan() || b.max_level_spread_db < 0.0 {
            problems.push(("beep.max_level_spread_db", "must not be negative".to_string()));
        }
        if problems.is_empty() { Ok(()) } else { Err(AmdConfigError { problems }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        AmdConfig::default().validate().unwrap();
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let c = AmdConfig {
            greeting_ms: 0,
            voice_margin_db: -1.0,
            max_word_ms: 10,
            beep: BeepConfig { min_hz: 2500.0, purity: 1.5, ..BeepConfig::default() },
            ..AmdConfig::default()
        };
        let e = c.validate().unwrap_err();
        let keys: Vec<_> = e.problems.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["greeting_ms", "max_word_ms", "voice_margin_db", "beep.min_hz", "beep.purity"]);
        let msg = e.to_string();
        assert!(msg.contains("amd.greeting_ms must be greater than 0"), "{msg}");
        assert!(msg.contains("amd.max_word_ms must be at least min_word_ms (100)"), "{msg}");
    }

    #[test]
    fn partial_settings_keep_defaults_and_unknown_keys_are_refused() {
        let c: AmdConfig = serde_json::from_str(r#"{"greeting_ms": 1200, "beep": {"min_hz": 500}}"#).unwrap();
        assert_eq!(c.greeting_ms, 1200);
        assert_eq!(c.beep.min_hz, 500.0);
        assert_eq!(c.beep.max_hz, BeepConfig::default().max_hz);
        assert_eq!(c.after_greeting_silence_ms, AmdConfig::default().after_greeting_silence_ms);
        let e = serde_json::from_str::<AmdConfig>(r#"{"greting_ms": 1200}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `greting_ms`"), "{e}");
    }
}
