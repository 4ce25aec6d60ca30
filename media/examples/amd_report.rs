//! Accuracy and cost of answering-machine detection on the labelled set (tests/amd/gen.sh),
//! as one JSON line:
//!
//! ```text
//! cargo run --release -p pacer-media --example amd_report [-- --seed N --humans N
//!     --machines N --config '{"greeting_ms": 1400}' --passes N --verbose]
//! ```
//!
//! The set is generated under target/ on first use (needs espeak-ng and sox). `--verbose`
//! lists every wrong verdict on stderr. `cpu_us_per_audio_s` is the detectors' CPU time (this
//! thread's, so other load on the machine does not count) per second of the audio they
//! analysed, up to each verdict and each beep event: the median of `--passes` (5) passes.

#[path = "../tests/amd/harness.rs"]
mod harness;

use pacer_media::amd::{AmdConfig, VerdictKind, synth};

/// Seeds of procedural greetings (`amd::synth`, the demo carrier's audio) checked as well.
const SYNTH_SEEDS: u64 = 200;

fn main() {
    if let Err(e) = run() {
        eprintln!("amd_report: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut seed = harness::TEST_SEED;
    let (mut humans, mut machines) = (harness::HUMANS, harness::MACHINES);
    let mut config = AmdConfig::default();
    let mut verbose = false;
    let mut passes = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--seed" => seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--humans" => humans = value("--humans")?.parse().map_err(|e| format!("--humans: {e}"))?,
            "--machines" => machines = value("--machines")?.parse().map_err(|e| format!("--machines: {e}"))?,
            "--config" => {
                config = serde_json::from_str(&value("--config")?).map_err(|e| format!("--config: {e}"))?;
                config.validate().map_err(|e| e.to_string())?;
            }
            "--passes" => passes = value("--passes")?.parse::<usize>().map_err(|e| format!("--passes: {e}"))?.max(1),
            "--verbose" => verbose = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let missing = harness::missing_tools();
    if !missing.is_empty() {
        return Err(format!("{} not installed: the test set cannot be generated", missing.join(" and ")));
    }
    let dir = harness::ensure_set(seed, humans, machines)?;
    let samples = harness::load(&dir)?;
    let audio = harness::load_audio(&dir, &samples)?;
    let outcomes = harness::evaluate(config, &samples, &audio);
    if verbose {
        for m in harness::mistakes(&outcomes) {
            eprintln!("{m}");
        }
    }
    let summary = harness::summarise(&outcomes);
    // Cost: the same runs again, timed by this thread's CPU time; the median pass.
    let analysed: f64 = outcomes.iter().map(|o| o.audio.as_secs_f64()).sum();
    let mut cpu = Vec::new();
    for _ in 0..passes {
        let before = harness::thread_cpu_time().ok_or("no /proc/thread-self/schedstat to time with")?;
        std::hint::black_box(harness::evaluate(config, &samples, &audio));
        cpu.push((harness::thread_cpu_time().unwrap_or(before) - before).as_secs_f64());
    }
    cpu.sort_by(f64::total_cmp);
    let mut line = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
    line["seed"] = seed.into();
    line["cpu_us_per_audio_s"] = (cpu[cpu.len() / 2] * 1e6 / analysed).into();
    line["analysed_audio_s"] = analysed.into();
    // The demo's simulated carrier speaks with amd::synth: how AMD takes it, with a beep on
    // three voicemails in four.
    let (mut right, mut human_s, mut machine_s) = (0u64, 0.0, 0.0);
    for seed in 0..SYNTH_SEEDS {
        let (h, ..) = harness::run_detector(config, &synth::human_greeting(seed));
        let (m, ..) = harness::run_detector(config, &synth::machine_greeting(seed, seed % 4 != 0));
        right += u64::from(h.kind == VerdictKind::Human) + u64::from(m.kind == VerdictKind::Machine);
        human_s += h.after.as_secs_f64();
        machine_s += m.after.as_secs_f64();
    }
    line["synth_samples"] = (2 * SYNTH_SEEDS).into();
    line["synth_accuracy"] = (right as f64 / (2 * SYNTH_SEEDS) as f64).into();
    line["synth_mean_decision_s_human"] = (human_s / SYNTH_SEEDS as f64).into();
    line["synth_mean_decision_s_machine"] = (machine_s / SYNTH_SEEDS as f64).into();
    println!("{line}");
    Ok(())
}
