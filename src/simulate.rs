//! `pacer simulate`: the pacing simulator on a scenario file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use pacer_dialer::sim::{self, Policy, Scenario};

/// Options of `pacer simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML), such as benches/scenarios/M.toml.
    #[arg(long)]
    scenario: PathBuf,
    /// progressive, power, adaptive, predictive, or all.
    #[arg(long, default_value = "predictive")]
    policy: String,
    /// Calls per ready agent for the power policy (overrides the scenario's).
    #[arg(long)]
    ratio: Option<f64>,
    /// Seeds to run (each a full day); figures are their mean, plus the worst abandon rate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    seeds: u32,
    /// Print one JSON line per policy.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.scenario).with_context(|| format!("reading {}", args.scenario.display()))?;
    let mut scenario = match Scenario::from_toml(&text) {
        Ok(s) => s,
        Err(problems) => {
            eprintln!("{}: {} problem(s):", args.scenario.display(), problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(r) = args.ratio {
        anyhow::ensure!(r >= 1.0, "--ratio must be at least 1");
        scenario.pacing.power_ratio = r;
    }
    let policies: Vec<Policy> = if args.policy == "all" {
        Policy::ALL.to_vec()
    } else {
        vec![Policy::parse(&args.policy).with_context(|| format!("--policy {:?}: use progressive, power, adaptive, predictive or all", args.policy))?]
    };
    if !args.json {
        println!("scenario {} · {} agents · {} h · {} seed(s)", scenario.name, scenario.agents, scenario.hours, args.seeds);
        println!("{:<12} {:>9} {:>9} {:>11} {:>14} {:>12} {:>14}", "policy", "occupancy", "abandon", "worst seed", "idle/connect s", "dials/ag·h", "connects/ag·h");
    }
    for policy in policies {
        let r = sim::run(&scenario, policy, args.seeds);
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{:<12} {:>8.1}% {:>8.2}% {:>10.2}% {:>14.1} {:>12.1} {:>14.1}",
                policy.name(),
                r.occupancy * 100.0,
                r.abandon_rate * 100.0,
                r.abandon_rate_worst_seed * 100.0,
                r.idle_wait_per_connect_s,
                r.dials_per_agent_hour,
                r.connects_per_agent_hour
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
