//! Accuracy and cost of answering-machine detection on the labelled set (tests/amd/gen.sh),
//! as one JSON line:
//!
//! ```text
//! cargo run --release -p pacer-media --example amd_report [-- --seed N --humans N
//!     --machines N --config '{"greeting_ms": 1400}' --passes N --verbose]
//! ```
//!
//! The set is generated under target/ on first use (needs espeak-ng and sox). `--verbose`
//! lists every wrong verdict on stderr. The CPU figure is the detectors' own time per second
//! of the audio they analysed, the median of `--passes` (5) passes over the set.

#[path = "../tests/amd/harness.rs"]
mod harness;

use pacer_media::amd::AmdConfig;

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
    let mut runs = Vec::new();
    for _ in 0..passes {
        runs.push(harness::evaluate(config, &dir, &samples)?);
    }
    let mut cpu: Vec<f64> = runs.iter().map(|r| harness::summarise(r).cpu_us_per_audio_s).collect();
    cpu.sort_by(f64::total_cmp);
    let outcomes = runs.swap_remove(0);
    if verbose {
        for m in harness::mistakes(&outcomes) {
            eprintln!("{m}");
        }
    }
    let mut summary = harness::summarise(&outcomes);
    summary.cpu_us_per_audio_s = cpu[cpu.len() / 2];
    let mut line = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
    line["seed"] = seed.into();
    println!("{line}");
    Ok(())
}
