//! Procedural speech-like audio at 8 kHz, for the demo's simulated carrier and for tests that
//! must run where no speech synthesiser is installed.
//!
//! It is a small formant synthesiser: a glottal pulse train (with intonation and jitter)
//! through three resonators whose frequencies glide from a consonant towards a vowel in each
//! 100–300 ms syllable, optional fricative noise at syllable onsets, syllables grouped into
//! words, phrases and sentences with the pauses of real speech. Not intelligible, but its
//! energy rhythm, spectrum and pauses are those of talk, so AMD classifies it as it would
//! a person or a voicemail greeting. Deterministic per seed.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::analysis::SAMPLE_RATE;

const FS: f32 = SAMPLE_RATE as f32;

/// A person answering: a short pause as the phone reaches the ear, a one- or two-word
/// greeting ("Hello?", "Yes, hello?"), then 2 s of the silence of someone waiting.
pub fn human_greeting(seed: u64) -> Vec<i16> {
    let mut s = Synth::new(seed ^ 0x4855_4d41_4e00);
    let lead = s.rng.random_range(150..450);
    s.pause(lead);
    if s.rng.random_bool(0.75) {
        // "Hello?": two syllables run together, the last one rising.
        s.word(2, (160, 260), true);
    } else {
        // "Yes, hello?"
        s.word(1, (160, 260), false);
        let gap = s.rng.random_range(80..160);
        s.pause(gap);
        s.word(2, (140, 220), true);
    }
    s.pause(2000);
    s.finish()
}

/// A voicemail greeting: sentences at a steady pace until 3 to 10 s have passed, then, when
/// `with_beep`, a pause and a beep (850–1400 Hz, 0.4–0.8 s); then 2.5 s of silence (the
/// recording).
pub fn machine_greeting(seed: u64, with_beep: bool) -> Vec<i16> {
    let mut s = Synth::new(seed ^ 0x4d41_4348_494e);
    let lead = s.rng.random_range(200..700);
    s.pause(lead);
    let target = s.rng.random_range(3000..10_000);
    let start = s.len_ms();
    let mut first = true;
    while s.len_ms() - start < target {
        if !first {
            let gap = s.rng.random_range(350..650);
            s.pause(gap);
        }
        // A recorded greeting opens with a full sentence ("Hi, you've reached ...").
        let phrases = if first { s.rng.random_range(2..=3) } else { s.rng.random_range(1..=3) };
        s.sentence(phrases);
        first = false;
    }
    let beep = with_beep.then(|| {
        (s.rng.random_range(300..600), s.rng.random_range(850.0..1400.0), s.rng.random_range(400..800))
    });
    let mut pcm = s.finish();
    let mut hiss = Hiss::new(seed);
    if let Some((gap, hz, ms)) = beep {
        hiss.append(&mut pcm, gap);
        append_tone(&mut pcm, hz, ms, 0.3);
    }
    hiss.append(&mut pcm, 2500);
    pcm
}

/// Conversation-like talk of exactly `duration`: sentences of one to three phrases, with
/// the pauses of someone talking on the phone (0.25–0.9 s).
pub fn speech_like(seed: u64, duration: Duration) -> Vec<i16> {
    let total = (duration.as_secs_f64() * f64::from(SAMPLE_RATE)).round() as usize;
    let mut s = Synth::new(seed ^ 0x5441_4c4b);
    while s.out.len() < total {
        let phrases = s.rng.random_range(1..=3);
        s.sentence(phrases);
        let gap = s.rng.random_range(250..900);
        s.pause(gap);
    }
    let mut v = s.finish();
    v.truncate(total);
    v
}

/// A two-pole resonator, the building block of a formant synthesiser.
#[derive(Default, Clone, Copy)]
struct Resonator {
    gain: f32,
    b1: f32,
    b2: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn tune(&mut self, hz: f32, bw: f32) {
        let r = (-std::f32::consts::PI * bw / FS).exp();
        self.gain = 1.0 - r;
        self.b1 = 2.0 * r * (std::f32::consts::TAU * hz / FS).cos();
        self.b2 = -r * r;
    }

    fn step(&mut self, x: f32) -> f32 {
        let y = self.gain * x + self.b1 * self.y1 + self.b2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Formants move slowly: their filters are retuned every 4 ms, not every sample.
const RETUNE: usize = 32;
/// Formant bandwidths (Hz).
const BANDWIDTHS: [f32; 3] = [110.0, 130.0, 180.0];

/// Vowel formant targets (F1, F2, F3) of a male adult; voices scale them.
const VOWELS: [(f32, f32, f32); 8] = [
    (730.0, 1090.0, 2440.0), // a
    (530.0, 1840.0, 2480.0), // e
    (270.0, 2290.0, 3010.0), // i
    (570.0, 840.0, 2410.0),  // o
    (300.0, 870.0, 2240.0),  // u
    (660.0, 1720.0, 2410.0), // ae
    (490.0, 1350.0, 1690.0), // er
    (640.0, 1190.0, 2390.0), // uh
];

struct Synth {
    rng: SmallRng,
    out: Vec<f32>,
    /// Speaker: mean pitch, formant scale, speaking rate (syllable length factor).
    f0: f32,
    formant_scale: f32,
    rate: f32,
    phase: f32,
    tilt: f32,
    formants: [Resonator; 3],
    fricative: Resonator,
    level_db: f32,
}

impl Synth {
    fn new(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let female = rng.random_bool(0.5);
        let f0 = if female { rng.random_range(170.0..250.0) } else { rng.random_range(90.0..150.0) };
        let formant_scale = if female { rng.random_range(1.1..1.2) } else { rng.random_range(0.95..1.05) };
        let rate = rng.random_range(0.8..1.25);
        let level_db = rng.random_range(-14.0..-4.0);
        Self {
            rng,
            out: Vec::with_capacity(SAMPLE_RATE as usize * 12),
            f0,
            formant_scale,
            rate,
            phase: 0.0,
            tilt: 0.0,
            formants: [Resonator::default(); 3],
            fricative: Resonator::default(),
            level_db,
        }
    }

    fn len_ms(&self) -> u32 {
        (self.out.len() as u64 * 1000 / u64::from(SAMPLE_RATE)) as u32
    }

    fn pause(&mut self, ms: u32) {
        let n = (ms * SAMPLE_RATE / 1000) as usize;
        // The resonators ring down into the pause, as a vocal tract does.
        for _ in 0..n {
            let y = self.voice_sample(0.0);
            self.out.push(y);
        }
    }

    /// Phrases of 2–5 words with short pauses (commas), falling pitch at the end.
    fn sentence(&mut self, phrases: u32) {
        for p in 0..phrases {
            if p > 0 {
                let gap = self.rng.random_range(120..260);
                self.pause(gap);
            }
            let words = self.rng.random_range(2..=5);
            for w in 0..words {
                if w > 0 {
                    let gap = self.rng.random_range(20..90);
                    self.pause(gap);
                }
                let syllables = self.rng.random_range(1..=3);
                self.word(syllables, (100, 240), false);
            }
        }
    }

    /// One word: syllables of 100–300 ms (scaled by the speaking rate) with brief dips.
    fn word(&mut self, syllables: u32, len_ms: (u32, u32), rising: bool) {
        for i in 0..syllables {
            if i > 0 {
                let dip = self.rng.random_range(0..30);
                self.pause(dip);
            }
            let ms = (self.rng.random_range(len_ms.0..len_ms.1) as f32 * self.rate) as u32;
            let last = i + 1 == syllables;
            self.syllable(ms.clamp(80, 320), rising && last);
        }
    }

    fn syllable(&mut self, ms: u32, rising: bool) {
        let n = (ms * SAMPLE_RATE / 1000) as usize;
        let k = self.formant_scale;
        let v = VOWELS[self.rng.random_range(0..VOWELS.len())];
        let vowel = [v.0 * k, v.1 * k, v.2 * k];
        // The consonant locus the formants glide from.
        let locus = [
            self.rng.random_range(250.0..450.0) * k,
            self.rng.random_range(900.0..2200.0) * k,
            self.rng.random_range(2200.0..2900.0) * k,
        ];
        let fricative_ms = if self.rng.random_bool(0.4) { self.rng.random_range(30..70) } else { 0 };
        let fric_n = (fricative_ms * SAMPLE_RATE / 1000) as usize;
        let fric_hz = self.rng.random_range(2500.0..3600.0);
        let stress = self.rng.random_range(0.6..1.0);
        let f0_start = self.f0 * self.rng.random_range(0.9..1.15);
        let f0_end = if rising { f0_start * 1.3 } else { f0_start * self.rng.random_range(0.8..1.0) };
        let attack = (n / 6).max(1);
        let release = (n / 3).max(1);
        self.fricative.tune(fric_hz, 600.0);
        self.tune(locus);
        for _ in 0..fric_n {
            let noise = self.rng.random_range(-1.0..1.0f32);
            let y = self.fricative.step(noise) * 0.6 * stress;
            let v = self.voice_sample(0.0);
            self.out.push(y + v);
        }
        let mut jitter = 1.0;
        for i in 0..n {
            let t = i as f32 / n as f32;
            if i % RETUNE == 0 {
                let glide = (t * 3.0).min(1.0);
                self.tune([
                    locus[0] + (vowel[0] - locus[0]) * glide,
                    locus[1] + (vowel[1] - locus[1]) * glide,
                    locus[2] + (vowel[2] - locus[2]) * glide,
                ]);
            }
            let env = if i < attack {
                0.5 - 0.5 * (std::f32::consts::PI * i as f32 / attack as f32).cos()
            } else if i + release > n {
                0.5 + 0.5 * (std::f32::consts::PI * (i + release - n) as f32 / release as f32).cos()
            } else {
                1.0
            };
            self.phase += (f0_start + (f0_end - f0_start) * t) * jitter / FS;
            let pulse = if self.phase >= 1.0 {
                self.phase -= 1.0;
                // Each glottal period a little longer or shorter than the last.
                jitter = 1.0 + self.rng.random_range(-0.015..0.015);
                1.0
            } else {
                0.0
            };
            let y = self.voice_sample(pulse * env * stress * 4.0);
            self.out.push(y);
        }
    }

    fn tune(&mut self, f: [f32; 3]) {
        for ((r, hz), bw) in self.formants.iter_mut().zip(f).zip(BANDWIDTHS) {
            r.tune(hz, bw);
        }
    }

    /// The glottal pulse through the spectral tilt and the three formants in cascade.
    fn voice_sample(&mut self, source: f32) -> f32 {
        // The glottal spectrum falls about 12 dB per octave and lip radiation lifts it by 6:
        // one one-pole low-pass. Every harmonic stays in, as in a voice (a steeper tilt
        // leaves one strong harmonic, which sounds, and measures, like a tone).
        self.tilt += 0.3 * (source - self.tilt);
        let mut y = self.tilt * 10.0;
        y = self.formants[0].step(y);
        y = y * 0.6 + self.formants[1].step(y) * 1.4;
        y + self.formants[2].step(y) * 0.8
    }

    /// Normalises the talk to the talker's level and converts it to PCM with line hiss.
    fn finish(self) -> Vec<i16> {
        let peak = self.out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let gain = if peak > 0.0 { 10f32.powf(self.level_db / 20.0) / peak } else { 0.0 };
        let mut hiss = Hiss::new(self.f0.to_bits().into());
        self.out.iter().map(|&v| to_pcm(v * gain + hiss.next())).collect()
    }
}

fn to_pcm(v: f32) -> i16 {
    (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A faint line hiss (about -65 dBFS), so that silences are not digital zero.
struct Hiss(SmallRng);

impl Hiss {
    fn new(seed: u64) -> Self {
        Hiss(SmallRng::seed_from_u64(seed ^ 0x4849_5353))
    }

    fn next(&mut self) -> f32 {
        self.0.random_range(-1.0..1.0f32) * 0.001
    }

    fn append(&mut self, pcm: &mut Vec<i16>, ms: u32) {
        let n = (ms * SAMPLE_RATE / 1000) as usize;
        pcm.extend((0..n).map(|_| to_pcm(self.next())));
    }
}

/// A beep with 10 ms fades (no clicks), at its own level.
fn append_tone(pcm: &mut Vec<i16>, hz: f32, ms: u32, amp: f32) {
    let n = (ms * SAMPLE_RATE / 1000) as usize;
    let fade = (SAMPLE_RATE / 100) as f32;
    pcm.extend((0..n).map(|i| {
        let edge = (i.min(n - 1 - i) as f32 / fade).min(1.0);
        to_pcm(amp * edge * (std::f32::consts::TAU * hz * i as f32 / FS).sin())
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amd::{AmdConfig, BeepDetector, BeepEvent, Detector, VerdictKind};

    fn verdict(audio: &[i16]) -> crate::amd::Verdict {
        let mut d = Detector::new(AmdConfig::default());
        audio.chunks(160).find_map(|c| d.push(c)).or_else(|| d.finish()).unwrap()
    }

    #[test]
    fn synthetic_people_and_machines_are_classified_as_real_ones() {
        let (mut human_ok, mut machine_ok, mut beeps_ok) = (0, 0, 0);
        let mut wrong = Vec::new();
        let seeds = 0..64u64;
        for seed in seeds.clone() {
            let h = human_greeting(seed);
            let v = verdict(&h);
            if v.kind != VerdictKind::Human || v.after > Duration::from_millis(2200) {
                wrong.push(format!("human {seed}: {v:?}"));
            }
            human_ok += usize::from(v.kind == VerdictKind::Human);

            let with_beep = seed % 4 != 0;
            let m = machine_greeting(seed, with_beep);
            let mut d = Detector::new(AmdConfig::default());
            let mut chunks = m.chunks(160);
            let v = chunks.by_ref().find_map(|c| d.push(c)).or_else(|| d.finish()).unwrap();
            machine_ok += usize::from(v.kind == VerdictKind::Machine);
            if v.kind != VerdictKind::Machine {
                wrong.push(format!("machine {seed}: {v:?}"));
            }
            if v.kind == VerdictKind::Machine {
                // Then the beep detector, carrying on, finds when to leave a message: the
                // beep's end is 2.5 s before the end of the audio.
                let mut b = BeepDetector::after(&d);
                let e = chunks.find_map(|c| b.push(c)).or_else(|| b.finish());
                let end = Duration::from_millis((m.len() / 8) as u64 - 2500);
                let ok = match e {
                    Some(BeepEvent::Beep { at, .. }) if with_beep => at.abs_diff(end) <= Duration::from_millis(30),
                    Some(BeepEvent::Silence { at }) if !with_beep => at <= end + Duration::from_millis(1600),
                    _ => false,
                };
                beeps_ok += usize::from(ok);
                if !ok {
                    wrong.push(format!("machine {seed} (beep {with_beep}, ends {end:?}): {v:?} then {e:?}"));
                }
            }
        }
        let n = seeds.count();
        let wrong = wrong.join("\n");
        assert!(human_ok == n, "{human_ok} of {n} people recognised:\n{wrong}");
        assert!(machine_ok * 100 >= n * 95, "{machine_ok} of {n} machines recognised:\n{wrong}");
        assert!(beeps_ok * 100 >= machine_ok * 95, "{beeps_ok} of {machine_ok} beeps or silences found:\n{wrong}");
        eprintln!("{wrong}");
    }

    #[test]
    fn talk_has_the_asked_length_and_is_deterministic() {
        let a = speech_like(3, Duration::from_millis(2500));
        assert_eq!(a.len(), 20_000);
        assert_eq!(a, speech_like(3, Duration::from_millis(2500)));
        assert_ne!(a, speech_like(4, Duration::from_millis(2500)));
        // Talk: mostly voiced, with pauses, never a "beep".
        let mut d = Detector::new(AmdConfig::default());
        let long = speech_like(9, Duration::from_secs(30));
        let v = long.chunks(160).find_map(|c| d.push(c)).unwrap();
        assert_ne!(v.reason, crate::amd::Reason::Beep, "{v:?}");
        let mut b = BeepDetector::new(AmdConfig::default());
        assert!(!matches!(long.chunks(160).find_map(|c| b.push(c)), Some(BeepEvent::Beep { .. })));
    }
}
