//! Prompts: audio we play into a leg (safe-harbor message, a message left after the
//! beep, hold music). Loaded once, converted once to what the wire needs: 8 kHz mono.

use std::f64::consts::PI;
use std::path::Path;
use std::sync::Arc;

use crate::MediaError;

/// Rate of every prompt once loaded.
pub const RATE: u32 = 8000;

/// Audio ready to play: 8 kHz mono 16-bit samples, cheap to clone (shared).
#[derive(Clone, PartialEq)]
pub struct Prompt {
    samples: Arc<[i16]>,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prompt({} ms)", self.duration_ms())
    }
}

impl Prompt {
    /// Reads a WAV file of any common rate, channel count and sample format (8–32-bit
    /// integer or 32-bit float), mixes it to mono and resamples it to 8 kHz.
    pub fn load(path: impl AsRef<Path>) -> Result<Prompt, MediaError> {
        let path = path.as_ref();
        let bad = |reason: String| MediaError::Prompt { path: path.to_path_buf(), reason };
        let mut reader = hound::WavReader::open(path).map_err(|e| bad(e.to_string()))?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate < 1000 || spec.sample_rate > 384_000 {
            return Err(bad(format!("unsupported format: {} channels at {} Hz", spec.channels, spec.sample_rate)));
        }
        let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) => {
                reader.samples::<f32>().collect::<Result<_, _>>().map_err(|e| bad(e.to_string()))?
            }
            (hound::SampleFormat::Int, bits @ 8..=32) => {
                let scale = 1.0 / (1u64 << (bits - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(e.to_string()))?
            }
            (fmt, bits) => return Err(bad(format!("unsupported sample format {fmt:?} with {bits} bits"))),
        };
        let ch = spec.channels as usize;
        let mono: Vec<f32> = samples.chunks(ch).map(|c| c.iter().sum::<f32>() / ch as f32).collect();
        Ok(Prompt::from_f32(&resample(&mono, spec.sample_rate, RATE)))
    }

    /// Linear 16-bit mono samples at `rate` Hz.
    pub fn from_pcm(samples: &[i16], rate: u32) -> Result<Prompt, MediaError> {
        if !(1000..=384_000).contains(&rate) {
            return Err(MediaError::InvalidArgument(format!("prompt sample rate {rate} Hz is out of range")));
        }
        if rate == RATE {
            return Ok(Prompt { samples: samples.into() });
        }
        let f: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
        Ok(Prompt::from_f32(&resample(&f, rate, RATE)))
    }

    /// A sine tone at half of full scale: beeps, test signals.
    pub fn tone(freq_hz: f64, ms: u32) -> Prompt {
        let n = (ms as usize) * RATE as usize / 1000;
        let samples: Vec<i16> = (0..n)
            .map(|i| ((2.0 * PI * freq_hz * i as f64 / RATE as f64).sin() * 16384.0) as i16)
            .collect();
        Prompt { samples: samples.into() }
    }

    fn from_f32(s: &[f32]) -> Prompt {
        let samples: Vec<i16> = s.iter().map(|&v| (v * 32767.0).clamp(-32768.0, 32767.0) as i16).collect();
        Prompt { samples: samples.into() }
    }

    /// The 8 kHz samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / RATE as u64
    }
}

/// Windowed-sinc resampling (Blackman window, 16 zero crossings each side). The cut-off
/// sits below the lower of the two Nyquist frequencies, so 44.1/48 kHz music does not
/// alias into the telephone band. Run once per prompt, so clarity beats speed here.
fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let ratio = to as f64 / from as f64;
    let cutoff = 0.95 * ratio.min(1.0); // relative to the input's Nyquist
    const ZEROS: f64 = 16.0;
    let half_width = ZEROS / cutoff; // in input samples
    let out_len = ((input.len() as f64) * ratio).round() as usize;
    let mut out = Vec::with_capacity(out_len);
    for j in 0..out_len {
        let centre = j as f64 / ratio;
        let lo = ((centre - half_width).ceil().max(0.0)) as usize;
        let hi = ((centre + half_width).floor() as usize).min(input.len() - 1);
        let mut acc = 0.0f64;
        for (i, &x) in input.iter().enumerate().take(hi + 1).skip(lo) {
            let t = i as f64 - centre;
            let sinc = if t == 0.0 { 1.0 } else { (PI * cutoff * t).sin() / (PI * cutoff * t) };
            let w = 0.42 + 0.5 * (PI * t / half_width).cos() + 0.08 * (2.0 * PI * t / half_width).cos();
            acc += x as f64 * cutoff * sinc * w;
        }
        out.push(acc as f32);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Power of `freq` in `s` (Goertzel), normalised by length: a tone detector for tests.
    pub(crate) fn tone_power(s: &[i16], rate: f64, freq: f64) -> f64 {
        let k = 2.0 * (2.0 * PI * freq / rate).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in s {
            let s0 = x as f64 / 32768.0 + k * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - k * s1 * s2) / (s.len() as f64).powi(2)
    }

    fn sine(freq: f64, rate: u32, secs: f64) -> Vec<i16> {
        (0..(rate as f64 * secs) as usize)
            .map(|i| ((2.0 * PI * freq * i as f64 / rate as f64).sin() * 16000.0) as i16)
            .collect()
    }

    #[test]
    fn resampling_keeps_tones_and_drops_what_8khz_cannot_carry() {
        for rate in [11025u32, 16000, 22050, 44100, 48000] {
            let p = Prompt::from_pcm(&sine(1000.0, rate, 0.5), rate).unwrap();
            assert_eq!(p.samples().len(), 4000, "{rate}");
            let s = &p.samples()[200..3800];
            let on = tone_power(s, 8000.0, 1000.0);
            let off = tone_power(s, 8000.0, 1300.0);
            assert!(on > 0.04 && off < on / 1000.0, "{rate}: {on} {off}");
            // 5 kHz would fold to 3 kHz if the filter were missing.
            let p = Prompt::from_pcm(&sine(5000.0, rate.max(16000), 0.5), rate.max(16000)).unwrap();
            let folded = tone_power(&p.samples()[200..3800], 8000.0, 3000.0);
            assert!(folded < on / 1000.0, "{rate}: aliasing {folded}");
        }
    }

    #[test]
    fn loads_stereo_wav_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        let spec = hound::WavSpec { channels: 2, sample_rate: 44100, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in sine(600.0, 44100, 0.3) {
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let p = Prompt::load(&path).unwrap();
        assert_eq!(p.duration_ms(), 300);
        assert!(tone_power(&p.samples()[100..2300], 8000.0, 600.0) > 0.04);

        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"RIFF....not a wave").unwrap();
        let err = Prompt::load(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.wav"), "{err}");
        assert!(Prompt::load(dir.path().join("missing.wav")).is_err());
        assert!(Prompt::from_pcm(&[0; 10], 10).is_err());
    }

    #[test]
    fn tone_has_its_frequency_and_length() {
        let t = Prompt::tone(440.0, 250);
        assert_eq!(t.samples().len(), 2000);
        assert!(tone_power(t.samples(), 8000.0, 440.0) > 0.04);
    }
}
