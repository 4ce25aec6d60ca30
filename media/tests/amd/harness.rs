//! The labelled AMD test set (made by gen.sh next to this file) and the evaluation the
//! accuracy test and the `amd_report` example share.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pacer_media::amd::{AmdConfig, BeepDetector, BeepEvent, Detector, Verdict, VerdictKind};

/// The seed of the test set. Defaults were fitted on other seeds (`amd_report --seed 2`).
pub const TEST_SEED: u64 = 1;
pub const HUMANS: usize = 120;
pub const MACHINES: usize = 120;
/// 20 ms RTP frames, as the detector gets them live.
const CHUNK: usize = 160;
/// A beep end reported within this of the truth lets the message start right after it.
const BEEP_TOLERANCE: f64 = 0.03;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    manifest().join("tests/amd/gen.sh")
}

/// Where the set for these arguments lives: under `target/`, named by a hash of the script,
/// so that editing the script makes a new set rather than reusing a stale one.
pub fn set_dir(seed: u64, humans: usize, machines: usize) -> PathBuf {
    let text = std::fs::read(script()).expect("read tests/amd/gen.sh");
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.iter().chain(format!("{seed}/{humans}/{machines}").as_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest().join("../target"));
    target.join("amd-set").join(format!("seed{seed}-{humans}h{machines}m-{h:016x}"))
}

/// Which of the tools the generator needs are missing.
pub fn missing_tools() -> Vec<&'static str> {
    ["espeak-ng", "sox"]
        .into_iter()
        .filter(|t| Command::new(t).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true))
        .collect()
}

/// The set's directory, generating it first when it is missing.
pub fn ensure_set(seed: u64, humans: usize, machines: usize) -> Result<PathBuf, String> {
    let dir = set_dir(seed, humans, machines);
    if dir.join("labels.csv").exists() {
        return Ok(dir);
    }
    let parent = dir.parent().expect("set dir has a parent");
    std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    // Generate beside it and rename, so that a test and the report running at once never
    // read a half-written set.
    let tmp = parent.join(format!(".tmp-{}-{}", std::process::id(), dir.file_name().unwrap().to_string_lossy()));
    let _ = std::fs::remove_dir_all(&tmp);
    let status = Command::new("bash")
        .arg(script())
        .arg(&tmp)
        .args([seed.to_string(), humans.to_string(), machines.to_string()])
        // The report's stdout is its one JSON line.
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("run gen.sh: {e}"))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("gen.sh failed: {status}"));
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process finished first; its set is the same.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(dir)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Human,
    Machine,
}

/// One row of labels.csv.
#[derive(Debug, Clone)]
pub struct Sample {
    pub file: String,
    pub label: Label,
    pub beep: bool,
    pub voice: String,
    pub speed: u32,
    pub snr: String,
    pub speech_start: f64,
    pub speech_end: f64,
    pub beep_end: Option<f64>,
    pub text: String,
}

pub fn load(dir: &Path) -> Result<Vec<Sample>, String> {
    let path = dir.join("labels.csv");
    let mut r = csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row.map_err(|e| format!("{} line {}: {e}", path.display(), i + 2))?;
        let f = |k: usize| row.get(k).unwrap_or("").to_string();
        let num = |k: usize| f(k).parse::<f64>().map_err(|e| format!("{} line {} column {}: {e}", path.display(), i + 2, k + 1));
        out.push(Sample {
            file: f(0),
            label: if f(1) == "human" { Label::Human } else { Label::Machine },
            beep: f(2) == "1",
            voice: f(3),
            speed: f(4).parse().unwrap_or(0),
            snr: f(6),
            speech_start: num(7)?,
            speech_end: num(8)?,
            beep_end: if f(10).is_empty() { None } else { Some(num(10)?) },
            text: f(11),
        });
    }
    Ok(out)
}

pub fn read_wav(path: &Path) -> Result<Vec<i16>, String> {
    let mut r = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let s = r.spec();
    if s.sample_rate != 8000 || s.channels != 1 || s.bits_per_sample != 16 {
        return Err(format!("{}: want 8 kHz mono 16-bit, got {s:?}", path.display()));
    }
    r.samples::<i16>().collect::<Result<_, _>>().map_err(|e| format!("{}: {e}", path.display()))
}

/// What the detectors made of one sample.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub sample: Sample,
    pub verdict: Verdict,
    /// For machines: the beep detector carrying on from the machine verdict, and whether what it
    /// reported is right (the beep's end within 30 ms; without a beep, a silence after the
    /// greeting and before the recording would have missed much).
    pub beep_event: Option<BeepEvent>,
    pub beep_ok: bool,
    /// Reported minus true end of the beep (s), when both are there.
    pub beep_error: Option<f64>,
    /// Audio the detectors analysed (up to their verdict and event).
    pub audio: Duration,
}

/// The verdict, the detector (to carry on with a beep detector) and the samples fed to it.
pub fn run_detector(config: AmdConfig, audio: &[i16]) -> (Verdict, Detector, usize) {
    let mut d = Detector::new(config);
    for (i, chunk) in audio.chunks(CHUNK).enumerate() {
        if let Some(v) = d.push(chunk) {
            return (v, d, (i * CHUNK + chunk.len()).min(audio.len()));
        }
    }
    (d.finish().expect("a verdict at the end"), d, audio.len())
}

pub fn evaluate_one(config: AmdConfig, sample: &Sample, audio: &[i16]) -> Outcome {
    let (verdict, detector, used) = run_detector(config, audio);
    let mut analysed = used;
    let (mut beep_event, mut beep_ok, mut beep_error) = (None, false, None);
    if sample.label == Label::Machine && verdict.kind == VerdictKind::Machine {
        let mut b = BeepDetector::after(&detector);
        let rest = &audio[used..];
        let mut consumed = rest.len();
        let mut ev = None;
        for (i, chunk) in rest.chunks(CHUNK).enumerate() {
            if let Some(e) = b.push(chunk) {
                ev = Some(e);
                consumed = i * CHUNK + chunk.len();
                break;
            }
        }
        let ev = ev.or_else(|| b.finish());
        analysed += consumed.min(rest.len());
        // Times count from the answer, as the verdict's.
        if let (Some(BeepEvent::Beep { at, .. }), Some(end)) = (ev, sample.beep_end) {
            beep_error = Some(at.as_secs_f64() - end);
        }
        beep_ok = match (ev, sample.beep_end) {
            (Some(BeepEvent::Beep { at, .. }), Some(end)) => (at.as_secs_f64() - end).abs() <= BEEP_TOLERANCE,
            (Some(BeepEvent::Silence { at }), None) => {
                let t = at.as_secs_f64();
                t > sample.speech_end && t <= sample.speech_end + f64::from(config.beep.silence_ms) / 1000.0 + 0.3
            }
            _ => false,
        };
        beep_event = ev;
    }
    Outcome {
        sample: sample.clone(),
        verdict,
        beep_event,
        beep_ok,
        beep_error,
        audio: Duration::from_secs_f64(analysed as f64 / 8000.0),
    }
}

/// Reads every sample's audio.
pub fn load_audio(dir: &Path, samples: &[Sample]) -> Result<Vec<Vec<i16>>, String> {
    samples.iter().map(|s| read_wav(&dir.join(format!("{}.wav", s.file)))).collect()
}

pub fn evaluate(config: AmdConfig, samples: &[Sample], audio: &[Vec<i16>]) -> Vec<Outcome> {
    samples.iter().zip(audio).map(|(s, a)| evaluate_one(config, s, a)).collect()
}

/// CPU time this thread has run (Linux's schedstat, in nanoseconds): unlike the wall clock
/// it leaves out the time other processes on a shared machine hold the cores.
pub fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(s.split_whitespace().next()?.parse().ok()?))
}

/// The figures the README's table and the report print.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub samples: usize,
    pub humans: usize,
    pub machines: usize,
    pub accuracy: f64,
    /// Humans taken for machines (hung up on), of humans.
    pub false_positive_rate: f64,
    /// Machines taken for humans (sent to an agent), of machines.
    pub false_negative_rate: f64,
    /// Unknown verdicts, of all samples.
    pub unknown_rate: f64,
    pub mean_decision_s_human: f64,
    pub mean_decision_s_machine: f64,
    /// Human verdicts: time from the end of the person's greeting to the verdict.
    pub mean_after_greeting_s_human: f64,
    pub p95_decision_s: f64,
    /// Machines recognised as such whose beep end (or, without a beep, greeting-over
    /// silence) the beep detector then got right.
    pub beep_accuracy: f64,
    /// How far from the true end of the beep the reported ends were (ms).
    pub beep_end_error_ms_mean: f64,
    pub beep_end_error_ms_max: f64,
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

pub fn summarise(out: &[Outcome]) -> Summary {
    let humans: Vec<_> = out.iter().filter(|o| o.sample.label == Label::Human).collect();
    let machines: Vec<_> = out.iter().filter(|o| o.sample.label == Label::Machine).collect();
    let correct = |o: &&Outcome| {
        matches!((o.sample.label, o.verdict.kind), (Label::Human, VerdictKind::Human) | (Label::Machine, VerdictKind::Machine))
    };
    let secs = |o: &&Outcome| o.verdict.after.as_secs_f64();
    let mut times: Vec<f64> = out.iter().map(|o| o.verdict.after.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let p95 = times.get(((times.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0);
    Summary {
        samples: out.len(),
        humans: humans.len(),
        machines: machines.len(),
        accuracy: share(out.iter().filter(correct).count(), out.len()),
        false_positive_rate: share(humans.iter().filter(|o| o.verdict.kind == VerdictKind::Machine).count(), humans.len()),
        false_negative_rate: share(machines.iter().filter(|o| o.verdict.kind == VerdictKind::Human).count(), machines.len()),
        unknown_rate: share(out.iter().filter(|o| o.verdict.kind == VerdictKind::Unknown).count(), out.len()),
        mean_decision_s_human: mean(humans.iter().map(secs)),
        mean_decision_s_machine: mean(machines.iter().map(secs)),
        mean_after_greeting_s_human: mean(
            humans
                .iter()
                .filter(|o| o.verdict.kind == VerdictKind::Human)
                .map(|o| o.verdict.after.as_secs_f64() - o.sample.speech_end),
        ),
        p95_decision_s: p95,
        beep_end_error_ms_mean: mean(out.iter().filter_map(|o| o.beep_error).map(|e| e.abs() * 1000.0)),
        beep_end_error_ms_max: out.iter().filter_map(|o| o.beep_error).fold(0.0, |m, e| f64::max(m, e.abs() * 1000.0)),
        beep_accuracy: share(
            machines.iter().filter(|o| o.beep_ok).count(),
            machines.iter().filter(|o| o.verdict.kind == VerdictKind::Machine).count(),
        ),
    }
}

/// One line per wrong verdict, for the test's failure message and the report's stderr.
pub fn mistakes(out: &[Outcome]) -> Vec<String> {
    out.iter()
        .filter(|o| {
            !matches!(
                (o.sample.label, o.verdict.kind),
                (Label::Human, VerdictKind::Human) | (Label::Machine, VerdictKind::Machine)
            ) || (o.verdict.kind == VerdictKind::Machine && o.sample.label == Label::Machine && !o.beep_ok)
        })
        .map(|o| {
            format!(
                "{} ({}{}): {:?} {} after {:.2}s (words {}, greeting {:.2}s; speech {:.2}-{:.2}s, beep end {:?}, beep event {:?}) voice {} speed {} snr {} {:?}",
                o.sample.file,
                if o.sample.label == Label::Human { "human" } else { "machine" },
                if o.sample.beep { " with beep" } else { "" },
                o.verdict.kind,
                o.verdict.reason.as_str(),
                o.verdict.after.as_secs_f64(),
                o.verdict.words,
                o.verdict.greeting.as_secs_f64(),
                o.sample.speech_start,
                o.sample.speech_end,
                o.sample.beep_end,
                o.beep_event,
                o.sample.voice,
                o.sample.speed,
                o.sample.snr,
                o.sample.text,
            )
        })
        .collect()
}
