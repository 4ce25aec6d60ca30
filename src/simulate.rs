//! `pacer simulate`: the pacing simulator on a scenario file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use pacer_dialer::sim::{self, Policy, Scenario};

/// Options of `pacer simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML), such as benches/scenarios/M.toml.
    #[arg(long, required_unless_present = "from_campaign", conflicts_with = "from_campaign")]
    scenario: Option<PathBuf>,
    /// Learn the scenario from a campaign's attempts (id or name) in the configured database.
    #[arg(long)]
    from_campaign: Option<String>,
    /// Days of history to learn from (with --from-campaign).
    #[arg(long, default_value_t = 30, requires = "from_campaign")]
    days: u32,
    /// Agents to simulate (required with --from-campaign; overrides the scenario's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    agents: Option<u32>,
    /// Hours to simulate (overrides the scenario's; 8 with --from-campaign).
    #[arg(long)]
    hours: Option<f64>,
    /// Configuration file, for the database (with --from-campaign).
    #[arg(long, short, env = "PACER_CONFIG")]
    config: Option<PathBuf>,
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
    let mut scenario = match (&args.scenario, &args.from_campaign) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            match Scenario::from_toml(&text) {
                Ok(s) => s,
                Err(problems) => {
                    eprintln!("{}: {} problem(s):", path.display(), problems.len());
                    for p in problems {
                        eprintln!("  {p}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        (None, Some(campaign)) => {
            let agents = args.agents.context("--from-campaign needs --agents N (how many agents to simulate)")?;
            learned(campaign, args.days, agents, args.hours.unwrap_or(8.0), args.config.as_deref())?
        }
        (None, None) => anyhow::bail!("give --scenario FILE or --from-campaign ID"),
    };
    if let Some(a) = args.agents {
        scenario.agents = a;
    }
    if let Some(h) = args.hours {
        anyhow::ensure!(h > 0.0 && h <= 744.0, "--hours must be between 0 and 744");
        scenario.hours = h;
    }
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

/// A scenario learned from the campaign's recent attempts.
fn learned(campaign: &str, days: u32, agents: u32, hours: f64, config: Option<&std::path::Path>) -> anyhow::Result<Scenario> {
    let cfg = pacer_config::Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let store = crate::cli::open_store(&cfg).await?;
        let c = match campaign.parse::<i64>() {
            Ok(id) => store.campaign(id).await,
            Err(_) => store.campaign_by_name(campaign).await,
        }
        .with_context(|| format!("--from-campaign {campaign}"))?;
        let since = pacer_dialer::store::now_ms() - i64::from(days) * 86_400_000;
        let s = store.learned_scenario(c.id, since, agents, hours).await?;
        store.close().await;
        anyhow::Ok(s)
    })
}
