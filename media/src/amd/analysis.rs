//! The 10 ms analysis frames both detectors share: level against an adapted noise floor,
//! and whether the frame is one pure tone. Fixed-size state, no allocation.

use super::config::{AmdConfig, BeepConfig};

/// Sample rate the detectors expect (narrowband telephone audio).
pub const SAMPLE_RATE: u32 = 8000;
/// Samples per analysis frame: 10 ms, fine enough to time words and beeps, long enough to
/// tell a tone's frequency.
pub(crate) const FRAME: usize = 80;
pub(crate) const FRAME_MS: u32 = 10;

/// Number of sub-windows of the noise-floor minimum (the window slides in these steps).
const FLOOR_SUBS: usize = 5;
/// Levels are clamped here so that digital silence has a finite level.
const MIN_DB: f32 = -100.0;

/// What one frame is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Frame {
    /// Louder than the silence threshold and the noise floor plus the voice margin.
    pub voice: bool,
    /// The frame's tone, when it is a pure tone within the beep band.
    pub tone: Option<Tone>,
}

/// A pure tone in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tone {
    pub hz: f32,
    /// The frame's level (dBFS).
    pub level_db: f32,
}

/// Converts milliseconds to whole frames, at least one.
pub(crate) fn frames(ms: u32) -> u32 {
    (ms / FRAME_MS).max(1)
}

/// Cuts the input into frames and classifies each.
#[derive(Debug, Clone)]
pub(crate) struct Analyzer {
    buf: [f32; FRAME],
    len: usize,
    highpass: HighPass,
    floor: NoiseFloor,
    silence_db: f32,
    margin_db: f32,
    min_hz: f32,
    max_hz: f32,
    purity: f32,
}

impl Analyzer {
    pub(crate) fn new(cfg: &AmdConfig) -> Self {
        Self {
            buf: [0.0; FRAME],
            len: 0,
            highpass: HighPass::new(HIGHPASS_HZ),
            floor: NoiseFloor::new(frames(cfg.noise_window_ms).div_ceil(FLOOR_SUBS as u32)),
            silence_db: cfg.silence_threshold_dbfs,
            margin_db: cfg.voice_margin_db,
            min_hz: cfg.beep.min_hz,
            max_hz: cfg.beep.max_hz,
            purity: cfg.beep.purity,
        }
    }

    /// Takes samples from the front of `input` until a frame is complete (then returns it)
    /// or the input is used up.
    pub(crate) fn next_frame(&mut self, input: &mut &[i16]) -> Option<Frame> {
        let take = (FRAME - self.len).min(input.len());
        self.highpass.run(&input[..take], &mut self.buf[self.len..self.len + take]);
        self.len += take;
        *input = &input[take..];
        if self.len < FRAME {
            return None;
        }
        self.len = 0;
        Some(self.analyse())
    }

    fn analyse(&mut self) -> Frame {
        // Four partial sums: one running sum is a chain of dependent additions, four let the
        // CPU overlap them (this loop runs on every frame of every call in detection).
        let mut acc = [0.0f32; 4];
        for c in self.buf.chunks_exact(4) {
            for k in 0..4 {
                acc[k] += c[k] * c[k];
            }
        }
        let r0 = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        let level_db = (10.0 * (r0 / FRAME as f32).max(1e-10).log10()).max(MIN_DB);
        let floor_db = self.floor.update(level_db);
        let voice = level_db > self.silence_db.max(floor_db + self.margin_db);
        // A long beep can lift the floor over itself; its level alone makes it worth a look.
        let tone = if level_db > self.silence_db { self.tone(r0) } else { None };
        Frame { voice, tone: tone.map(|hz| Tone { hz, level_db }) }
    }

    /// The frequency of a pure tone, if the frame is one. A sine obeys
    /// x[n-k] + x[n+k] = 2 cos(k w) x[n], so with A = sum x[n](x[n-1] + x[n+1]) and
    /// B = sum x[n](x[n-2] + x[n+2]), B / A = cos 2w / cos w, a quadratic in cos w. Unlike
    /// the frame's power, A and B hold no white noise, so noise does not pull the estimate.
    /// A Goertzel filter at that frequency then says how much of the frame the tone holds.
    fn tone(&self, r0: f32) -> Option<f32> {
        let x = &self.buf;
        let (mut a4, mut b4) = ([0.0f32; 4], [0.0f32; 4]);
        for n in (2..FRAME - 2).step_by(4) {
            for k in 0..4 {
                let m = n + k;
                a4[k] += x[m] * (x[m - 1] + x[m + 1]);
                b4[k] += x[m] * (x[m - 2] + x[m + 2]);
            }
        }
        let a = (a4[0] + a4[1]) + (a4[2] + a4[3]);
        let b = (b4[0] + b4[1]) + (b4[2] + b4[3]);
        if a == 0.0 {
            return None;
        }
        let r = b / a;
        let root = (r * r + 8.0).sqrt();
        // Of the two roots, cos w has the sign of A (A = 2 cos w times the tone's power).
        let c = (if a > 0.0 { (r + root) / 4.0 } else { (r - root) / 4.0 }).clamp(-1.0, 1.0);
        let estimate = c.acos() * SAMPLE_RATE as f32 / std::f32::consts::TAU;
        if !(self.min_hz - REFINE_HZ..=self.max_hz + REFINE_HZ).contains(&estimate) {
            return None;
        }
        // Over 10 ms the estimate wanders by tens of hertz in noise (most at low frequencies,
        // where cos w is flat): take the strongest of a few Goertzel bins around it.
        let step = REFINE_HZ / REFINE_STEPS as f32;
        let mut bins = [0.0f32; 2 * REFINE_STEPS as usize + 1];
        bins[REFINE_STEPS as usize] = goertzel(x, estimate);
        // Most frames are speech, far from pure even at the estimate: stop there. A tone
        // keeps at least half its power this close to its frequency.
        if 2.0 * bins[REFINE_STEPS as usize] / (FRAME as f32 * r0) < self.purity * 0.5 {
            return None;
        }
        for (k, p) in bins.iter_mut().enumerate() {
            if k != REFINE_STEPS as usize {
                *p = goertzel(x, estimate + (k as i32 - REFINE_STEPS) as f32 * step);
            }
        }
        let best = (0..bins.len()).fold(0, |b, k| if bins[k] > bins[b] { k } else { b });
        let power = bins[best];
        // Between the bins: the peak of the parabola through the best one and its neighbours
        // (in magnitude), so that a steady tone reads steady to a hertz or two.
        let offset = if best > 0 && best + 1 < bins.len() {
            let (a, b, c) = (bins[best - 1].sqrt(), power.sqrt(), bins[best + 1].sqrt());
            let d = a - 2.0 * b + c;
            if d < 0.0 { (0.5 * (a - c) / d).clamp(-0.5, 0.5) } else { 0.0 }
        } else {
            0.0
        };
        let hz = estimate + ((best as i32 - REFINE_STEPS) as f32 + offset) * step;
        // A sine of amplitude A over N samples: |X|^2 = (N A / 2)^2 and r0 = N A^2 / 2.
        let purity = 2.0 * power / (FRAME as f32 * r0);
        (purity >= self.purity && (self.min_hz..=self.max_hz).contains(&hz)).then_some(hz)
    }
}

/// How far around the estimated frequency the Goertzel bins reach, and in how many steps.
const REFINE_HZ: f32 = 45.0;
const REFINE_STEPS: i32 = 3;

/// Power of `x` at `hz` (Goertzel).
fn goertzel(x: &[f32; FRAME], hz: f32) -> f32 {
    let coeff = 2.0 * (std::f32::consts::TAU * hz / SAMPLE_RATE as f32).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Hum and rumble below the telephone band carry no speech but much noise energy (pink
/// noise, mains hum): the level is measured above this.
const HIGHPASS_HZ: f32 = 200.0;

/// Second-order Butterworth high-pass (RBJ's biquad).
#[derive(Debug, Clone)]
struct HighPass {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl HighPass {
    fn new(hz: f32) -> Self {
        let w0 = std::f32::consts::TAU * hz / SAMPLE_RATE as f32;
        let alpha = w0.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let (c, a0) = (w0.cos(), 1.0 + alpha);
        Self {
            b: [(1.0 + c) / 2.0 / a0, -(1.0 + c) / a0, (1.0 + c) / 2.0 / a0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    /// Filters `input` (scaled to ±1) into `out`. The state lives in locals during the loop:
    /// kept in the struct, every sample would wait on a store and a load.
    fn run(&mut self, input: &[i16], out: &mut [f32]) {
        let ([b0, b1, b2], [a1, a2]) = (self.b, self.a);
        let ([mut x1, mut x2], [mut y1, mut y2]) = (self.x, self.y);
        for (o, &s) in out.iter_mut().zip(input) {
            let x = f32::from(s) / 32768.0;
            // Only `a1 * y1` waits on the previous sample; the rest overlaps with it.
            let t = b0 * x + b1 * x1 + b2 * x2 - a2 * y2;
            let y = t - a1 * y1;
            (x2, x1, y2, y1) = (x1, x, y1, y);
            *o = y;
        }
        (self.x, self.y) = ([x1, x2], [y1, y2]);
    }
}

/// The quietest frame level over a sliding window: speech always has gaps within a second,
/// so the minimum follows the line noise rather than the talker, and it rises as soon as
/// louder noise has filled the window (no slow adaptation to wait for). Until the window
/// has filled it is the minimum since the start, so the first frame already counts.
#[derive(Debug, Clone)]
struct NoiseFloor {
    subs: [f32; FLOOR_SUBS],
    filled: usize,
    next: usize,
    current: f32,
    count: u32,
    sub_len: u32,
}

impl NoiseFloor {
    fn new(sub_len: u32) -> Self {
        Self { subs: [0.0; FLOOR_SUBS], filled: 0, next: 0, current: f32::INFINITY, count: 0, sub_len: sub_len.max(1) }
    }

    fn update(&mut self, db: f32) -> f32 {
        self.current = self.current.min(db);
        self.count += 1;
        let floor = self.subs[..self.filled].iter().fold(self.current, |m, &v| m.min(v));
        if self.count == self.sub_len {
            self.subs[self.next] = self.current;
            self.next = (self.next + 1) % FLOOR_SUBS;
            self.filled = (self.filled + 1).min(FLOOR_SUBS);
            self.current = f32::INFINITY;
            self.count = 0;
        }
        floor
    }
}

/// Follows tonal frames of one steady tone. A beep holds its frequency and its level;
/// a sung or drawn-out vowel that happens to be one strong harmonic glides in both, so a
/// change beyond `beep.max_drift_hz` or `beep.max_level_spread_db` starts another tone.
/// One frame that misses (noise, a click) does not end a tone.
#[derive(Debug, Clone)]
pub(crate) struct ToneTracker {
    max_drift_hz: f32,
    max_spread_db: f32,
    /// Frames of the current tone, including a bridged miss.
    run: u32,
    /// Frames since the last tonal frame of the current tone.
    missed: u32,
    /// Mean frequency of the current tone, over `tonal` frames.
    hz: f32,
    tonal: u32,
    /// Quietest and loudest frame of the current tone, from its second frame on.
    low_db: f32,
    high_db: f32,
}

/// What the tone tracker saw in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ToneEvent {
    /// No tone, or one still too short to matter.
    None,
    /// A tone that has lasted `frames` frames so far.
    Ongoing { frames: u32, hz: f32 },
    /// A tone of `frames` frames ended `ago` frames before the end of this frame.
    Ended { frames: u32, hz: f32, ago: u32 },
}

impl ToneTracker {
    pub(crate) fn new(cfg: &BeepConfig) -> Self {
        Self {
            max_drift_hz: cfg.max_drift_hz,
            max_spread_db: cfg.max_level_spread_db,
            run: 0,
            missed: 0,
            hz: 0.0,
            tonal: 0,
            low_db: 0.0,
            high_db: 0.0,
        }
    }

    pub(crate) fn update(&mut self, tone: Option<Tone>) -> ToneEvent {
        match tone {
            Some(t) if self.continues(t) => {
                self.tonal += 1;
                self.run += 1 + self.missed;
                self.missed = 0;
                self.hz += (t.hz - self.hz) / self.tonal as f32;
                self.low_db = self.low_db.min(t.level_db);
                self.high_db = self.high_db.max(t.level_db);
                ToneEvent::Ongoing { frames: self.run, hz: self.hz }
            }
            Some(t) => {
                let ended = self.end();
                self.run = 1;
                self.tonal = 1;
                self.hz = t.hz;
                // The first frame's level does not count: a beep rarely starts on a frame
                // boundary, so its first frame is partly silence (or a fade).
                self.low_db = f32::INFINITY;
                self.high_db = f32::NEG_INFINITY;
                match ended {
                    ToneEvent::None => ToneEvent::Ongoing { frames: 1, hz: t.hz },
                    e => e,
                }
            }
            None if self.run > 0 && self.missed == 0 => {
                self.missed = 1;
                ToneEvent::None
            }
            None => self.end(),
        }
    }

    fn continues(&self, t: Tone) -> bool {
        self.run > 0
            && (t.hz - self.hz).abs() <= self.max_drift_hz
            && self.high_db.max(t.level_db) - self.low_db.min(t.level_db) <= self.max_spread_db
    }

    /// Frames of the tone under way (0 when none).
    pub(crate) fn frames(&self) -> u32 {
        self.run
    }

    /// Ends the current tone (the audio stopped).
    pub(crate) fn flush(&mut self) -> ToneEvent {
        self.end()
    }

    fn end(&mut self) -> ToneEvent {
        if self.run == 0 {
            return ToneEvent::None;
        }
        let e = ToneEvent::Ended { frames: self.run, hz: self.hz, ago: self.missed + 1 };
        self.run = 0;
        self.missed = 0;
        self.tonal = 0;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, amp: f32, n: usize) -> Vec<i16> {
        (0..n).map(|i| (amp * 32767.0 * (std::f32::consts::TAU * hz * i as f32 / 8000.0).sin()) as i16).collect()
    }

    fn frames_of(a: &mut Analyzer, s: &[i16]) -> Vec<Frame> {
        let mut rest = s;
        let mut out = Vec::new();
        while !rest.is_empty() {
            if let Some(f) = a.next_frame(&mut rest) {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn a_sine_is_a_tone_at_its_frequency_even_in_noise() {
        for hz in [450.0, 800.0, 1000.0, 1400.0, 1950.0] {
            let mut s = sine(hz, 0.3, 1600);
            // Deterministic white-ish noise about 20 dB under the tone.
            let mut state = 12345u32;
            for v in &mut s {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let n = ((state >> 16) as i32 - 32768) / 12;
                *v = (i32::from(*v) + n).clamp(-32768, 32767) as i16;
            }
            let mut a = Analyzer::new(&AmdConfig::default());
            let fs = frames_of(&mut a, &s);
            assert_eq!(fs.len(), 20);
            for f in &fs {
                let got = f.tone.unwrap_or_else(|| panic!("{hz} Hz not tonal: {f:?}")).hz;
                assert!((got - hz).abs() < 8.0, "{hz} Hz read as {got}");
            }
        }
    }

    #[test]
    fn out_of_band_tones_and_chords_are_not_beeps() {
        let mut a = Analyzer::new(&AmdConfig::default());
        let mut low = vec![0i16; 160];
        low.extend(sine(300.0, 0.3, 800));
        assert!(frames_of(&mut a, &low)[2..].iter().all(|f| f.voice && f.tone.is_none()));
        let chord: Vec<i16> = sine(600.0, 0.2, 800).iter().zip(sine(1300.0, 0.2, 800)).map(|(a, b)| a + b).collect();
        let mut a = Analyzer::new(&AmdConfig::default());
        assert!(frames_of(&mut a, &chord).iter().all(|f| f.tone.is_none()));
    }

    #[test]
    fn the_floor_follows_steady_noise_so_noise_is_not_voice() {
        let mut state = 99u32;
        let noise: Vec<i16> = (0..8000)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (((state >> 16) as i32 - 32768) / 8) as i16
            })
            .collect();
        let mut a = Analyzer::new(&AmdConfig::default());
        // The noise is about -23 dBFS, far above the -48 dBFS silence threshold.
        assert!(frames_of(&mut a, &noise).iter().all(|f| !f.voice));
        // A louder talker over it is voice.
        let loud: Vec<i16> = sine(200.0, 0.5, 800).iter().zip(&noise).map(|(a, b)| a.saturating_add(*b)).collect();
        assert!(frames_of(&mut a, &loud).iter().all(|f| f.voice));
    }

    #[test]
    fn one_missed_frame_does_not_split_a_tone_but_a_glide_does() {
        let tone = |hz: f32, level_db: f32| Some(Tone { hz, level_db });
        let mut t = ToneTracker::new(&BeepConfig::default());
        for i in 1..=5 {
            assert_eq!(t.update(tone(1000.0, -20.0)), ToneEvent::Ongoing { frames: i, hz: 1000.0 });
        }
        assert_eq!(t.update(None), ToneEvent::None);
        assert_eq!(t.update(tone(1004.0, -21.0)), ToneEvent::Ongoing { frames: 7, hz: 1000.0 + 4.0 / 6.0 });
        assert_eq!(t.update(None), ToneEvent::None);
        assert!(matches!(t.update(None), ToneEvent::Ended { frames: 7, ago: 2, .. }));
        assert_eq!(t.update(None), ToneEvent::None);
        // A jump in frequency is another tone.
        assert_eq!(t.update(tone(800.0, -20.0)), ToneEvent::Ongoing { frames: 1, hz: 800.0 });
        assert!(matches!(t.update(tone(1200.0, -20.0)), ToneEvent::Ended { frames: 1, ago: 1, .. }));
        // So is a swell: a vowel growing louder on one harmonic.
        let mut t = ToneTracker::new(&BeepConfig::default());
        let mut longest = 0;
        for i in 0..30 {
            if let ToneEvent::Ongoing { frames, .. } = t.update(tone(440.0, -35.0 + i as f32)) {
                longest = longest.max(frames);
            }
        }
        assert!(longest <= 6, "{longest}");
    }
}
