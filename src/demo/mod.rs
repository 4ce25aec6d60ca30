//! `pacer demo`: the main job on embedded defaults.
//!
//! It starts the whole server on a temporary SQLite database, a simulated carrier (a SIP
//! user agent over real SIP/RTP on loopback) and simulated agents (CTI WebSocket desktops
//! with persistent RTP legs), imports a generated list, runs a predictive campaign with a
//! live progress line, and ends with a summary in the JSON shape of `pacer simulate` —
//! next to what the simulator predicts for the same scenario.

mod agents;
mod carrier;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pacer_config::{Config, TrunkConfig};
use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::settings::{Amd, AmdAction, CampaignSettings};
use pacer_dialer::sim::{self, Policy, Scenario};
use pacer_dialer::store::{CampaignAction, CdrQuery, DialMode, Disposition, NewAgent, NewCampaign, now_ms};
use pacer_dialer::store::agents::team_occupancy as occupancy;
use pacer_media::MediaEngine;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::live::Live;

/// The demo's default scenario: short calls so that a minute shows a busy floor.
pub const DEFAULT_SCENARIO: &str = include_str!("../../benches/scenarios/demo.toml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long the campaign dials, in seconds.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Simulated agents (default: the scenario's).
    #[arg(long)]
    agents: Option<u32>,
    /// Leads in the generated list.
    #[arg(long, default_value_t = 2000)]
    leads: u32,
    /// Scenario file (BENCHMARKS.md §1 format); default: the built-in demo scenario.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Print only the summary, as one JSON line.
    #[arg(long)]
    json: bool,
    /// Stay up after the campaign (pages, API and metrics) until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Seed of the carrier's and agents' random draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// HTTP address of the demo's server (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Dial this SIP peer (`IP:PORT`, UDP) instead of the built-in simulated carrier, e.g.
    /// SIPp running a carrier scenario. Its trunk sends no OPTIONS keep-alives (SIPp's
    /// scenarios do not answer them).
    #[arg(long)]
    carrier: Option<std::net::SocketAddr>,
    /// Keep the database and recordings in this directory instead of a temporary one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The summary line: `pacer simulate`'s shape, plus what only a live run has.
#[derive(Debug, Serialize)]
struct Summary {
    scenario: String,
    policy: &'static str,
    seeds: u32,
    hours: f64,
    agents: u32,
    occupancy: f64,
    abandon_rate: f64,
    abandon_rate_worst_seed: f64,
    idle_wait_per_connect_s: f64,
    dials_per_agent_hour: f64,
    connects_per_agent_hour: f64,
    dials: u64,
    human: u64,
    machine: u64,
    connects: u64,
    /// A call's answer → its agent connected (AMD included), over connected calls.
    connect_latency_p50_s: f64,
    connect_latency_p99_s: f64,
    abandoned: u64,
    outcomes: std::collections::BTreeMap<String, u64>,
    recordings: u64,
    /// What the built-in carrier saw (absent with `--carrier`).
    #[serde(skip_serializing_if = "Option::is_none")]
    carrier: Option<carrier::CarrierSummary>,
    /// `pacer simulate` on the same scenario, agents and duration (10 seeds).
    simulated: sim::Summary,
}

pub fn run(args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    let text = match &args.scenario {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("--scenario {}", p.display()))?,
        None => DEFAULT_SCENARIO.to_string(),
    };
    let mut scenario = Scenario::from_toml(&text).map_err(|p| anyhow::anyhow!("scenario: {}", p.join("; ")))?;
    if let Some(a) = args.agents {
        anyhow::ensure!((1..=500).contains(&a), "--agents: 1 to 500");
        scenario.agents = a;
    }
    anyhow::ensure!(args.duration >= 10, "--duration: at least 10 seconds");
    anyhow::ensure!(args.leads >= 1, "--leads: at least 1");
    scenario.hours = args.duration as f64 / 3600.0;
    let level = if args.json { "warn" } else { "info" };
    crate::logging::init(&pacer_config::LoggingConfig { level: format!("{level},rsipstack=warn,pacer_sip=warn,pacer_media=warn,sqlx=error"), ..Default::default() })?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(demo(args, scenario))
}

async fn demo(args: DemoArgs, scenario: Scenario) -> anyhow::Result<std::process::ExitCode> {
    let tmp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("pacer-demo-").tempdir()?),
    };
    let data_dir = match (&args.data_dir, &tmp) {
        (Some(d), _) => {
            std::fs::create_dir_all(d).with_context(|| format!("--data-dir {}", d.display()))?;
            anyhow::ensure!(!d.join("pacer.db").exists(), "--data-dir {}: holds a database already; give an empty directory", d.display());
            d.clone()
        }
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => unreachable!("a temporary directory is made when none is given"),
    };
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    // The simulated side (carrier and agents) has its own media ports.
    let sim_media = MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 30000, rtp_port_max: 39998, ..Default::default() })?;
    let carrier = match args.carrier {
        Some(_) => None,
        None => Some(carrier::Carrier::start(scenario.clone(), sim_media.clone(), args.seed).await?),
    };
    let carrier_addr = args.carrier.unwrap_or_else(|| carrier.as_ref().expect("started above").addr());
    // Defaults, with PACER_* environment overrides (ports, RTP range, log level…).
    let mut cfg = Config::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.data_dir = data_dir.clone();
    cfg.http.listen = args.listen;
    cfg.sip.listen_udp = "127.0.0.1:0".parse()?;
    // The demo runs at any hour: its legal window is the whole day (a real deployment keeps
    // 08:00–21:00 or its country's rule).
    cfg.dialer.legal_window_start = "00:00".into();
    cfg.dialer.legal_window_end = "24:00".into();
    // The API needs a token: a fresh admin token for this run, printed below.
    let token = cfg.auth.admin_token.get_or_insert_with(|| crate::auth::new_secret("demo_")).clone();
    cfg.trunks = vec![TrunkConfig {
        name: "sim-carrier".into(),
        host: carrier_addr.ip().to_string(),
        port: carrier_addr.port(),
        max_concurrent: 400,
        max_cps: 100,
        options_interval_s: if args.carrier.is_some() { 0 } else { 5 },
        ..TrunkConfig::default()
    }];
    let live = match Live::start(cfg.clone()).await {
        Ok(l) => l,
        Err(e) if args.listen.port() != 0 && format!("{e:#}").contains("http.listen") => {
            // Another program holds the default port: any free port will do for a demo.
            cfg.http.listen = "127.0.0.1:0".parse()?;
            Live::start(cfg).await?
        }
        Err(e) => return Err(e),
    };
    let base = format!("http://{}", live.http_addr);
    say(format!("pacer demo: server at {base} (agent desktop {base}/agent, supervisor {base}/supervisor, metrics {base}/metrics)"));
    say(format!("  carrier on sip:{carrier_addr}  database {}", data_dir.join("pacer.db").display()));
    say(format!("  API: curl -H 'Authorization: Bearer {token}' {base}/api/v1/campaigns"));

    // The campaign, its list and its agents.
    for (code, label, callback) in agents::DISPOSITIONS {
        let _ = live.store.create_disposition(&Disposition { code: code.into(), label: label.into(), system: false, human_contact: true, sale: code == "sale", callback, dnc: false }).await;
    }
    let t = &scenario.timing;
    let settings = CampaignSettings {
        abandon_target: scenario.pacing.abandon_target,
        max_lines_per_agent: scenario.pacing.max_lines_per_agent,
        min_agents_predictive: scenario.pacing.min_agents,
        trunks: vec!["sim-carrier".into()],
        ring_timeout_s: (t.no_answer_timeout.round() as u32).max(15),
        amd: Amd { enabled: true, action: AmdAction::Hangup, message_file: String::new() },
        // The agents disposition within their wrap time; the ACD's timer is the backstop.
        wrap_up_s: (t.wrap.mean * 3.0).ceil() as u32 + 5,
        script: "Hello {{name}}, this is Pacer calling about your {{plan}} plan.".into(),
        ..CampaignSettings::default()
    };
    let campaign = live.store.create_campaign(&NewCampaign { name: "Demo".into(), dial_mode: DialMode::Predictive, settings }).await?;
    let csv = data_dir.join("leads.csv");
    write_leads(&csv, args.leads, args.seed)?;
    let list = live.store.create_list(campaign.id, "generated", 0).await?;
    let report = import_csv(&live.store, list.id, std::fs::File::open(&csv)?, ImportOptions { mapping: Mapping::default(), default_country: "US".into() }).await?;
    say(format!("  imported {} leads ({} rejected)", report.imported, report.rejected.len()));
    let stop_agents = CancellationToken::new();
    let mut agent_tasks = Vec::new();
    for i in 0..scenario.agents {
        let username = format!("agent{:02}", i + 1);
        let password = format!("demo-{}", i + 1);
        live.store
            .create_agent(&NewAgent { username: username.clone(), name: format!("Agent {}", i + 1), password_hash: crate::auth::hash_password(&password), ..NewAgent::default() })
            .await?;
        let url = format!("ws://{}/cti/agent", live.http_addr);
        agent_tasks.push(tokio::spawn(agents::run_logged(url, agents::AgentSpec { username, password }, scenario.clone(), sim_media.clone(), args.seed * 1000 + u64::from(i), stop_agents.clone())));
    }
    // Let the agents log in and connect their legs before the first dial.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while live.acd.view(None).ready < scenario.agents && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    say(format!("  {} agents ready; campaign starts for {} s", live.acd.view(None).ready, args.duration));
    let started_ms = now_ms();
    live.store.campaign_action(campaign.id, CampaignAction::Start).await?;
    let end = tokio::time::Instant::now() + Duration::from_secs(args.duration);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        if !args.json {
            progress(&live, campaign.id, started_ms).await;
        }
    }
    // Stop dialling; the calls still ringing get their answer or ring out with agents
    // there to take them, then the agents finish their calls and leave.
    live.store.campaign_action(campaign.id, CampaignAction::Stop).await?;
    let dialling_ended_ms = now_ms();
    let settle = tokio::time::Instant::now() + Duration::from_secs(t.no_answer_timeout as u64 + 30);
    // The supervisor loop stops the runner within a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while live.dialer.calls_in_flight(campaign.id) > 0 && tokio::time::Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_agents.cancel();
    loop {
        let busy = live.store.cdrs(&CdrQuery { campaign_id: Some(campaign.id), limit: Some(1_000_000), ..CdrQuery::default() }).await?.len() as u64;
        let placed = live.metrics_dials(campaign.id);
        if busy >= placed || tokio::time::Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for a in agent_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
    }
    if !args.json {
        eprintln!();
    }
    let summary = summarise(&live, &scenario, campaign.id, started_ms, dialling_ended_ms, carrier.as_ref()).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    if args.keep {
        eprintln!("--keep: the server stays up at {base} (Ctrl-C to stop); data in {}", data_dir.display());
        wait_for_stop().await;
    }
    live.shutdown(Duration::from_secs(10)).await;
    if let Some(c) = carrier {
        c.gateway.shutdown();
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A CSV of `n` leads with US numbers across several area codes and a custom field.
fn write_leads(path: &std::path::Path, n: u32, seed: u64) -> anyhow::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["phone", "name", "plan"])?;
    let areas = ["212", "312", "415", "617", "713", "305", "206", "404", "602", "503"];
    let plans = ["Gold", "Silver", "Basic"];
    let mut seen = std::collections::HashSet::new();
    while seen.len() < n as usize {
        let number = format!("+1{}{}{:06}", areas[rng.random_range(0..areas.len())], rng.random_range(2..10), rng.random_range(0..1_000_000));
        if seen.insert(number.clone()) {
            w.write_record([number.as_str(), &format!("Customer {}", seen.len()), plans[rng.random_range(0..plans.len())]])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// One line of live figures.
async fn progress(live: &Live, campaign: i64, started_ms: i64) {
    let v = live.acd.view(Some(campaign as u64));
    let e = live.dialer.explain(campaign).unwrap_or_default();
    let cdrs = live.store.cdrs(&CdrQuery { campaign_id: Some(campaign), from: Some(started_ms), limit: Some(1_000_000), ..CdrQuery::default() }).await.unwrap_or_default();
    let human = cdrs.iter().filter(|c| c.answered_by.as_deref() == Some("human")).count();
    let machine = cdrs.iter().filter(|c| c.answered_by.as_deref() == Some("machine")).count();
    let abandoned = cdrs.iter().filter(|c| c.abandoned).count();
    let rate = if human > 0 { abandoned as f64 / human as f64 } else { 0.0 };
    let occ = live.store.agent_time(None, started_ms, now_ms()).await.map(|t| occupancy(&t)).unwrap_or(0.0);
    let active = v.logged_in.saturating_sub(v.not_ready).max(1);
    eprint!(
        "\r  {:>4}s  calls {:>5}  in flight {:>3}  human {:>4}  machine {:>4}  abandoned {:>3} ({:.1}%)  agents ready {:>2} talking {:>2} wrap {:>2}  occupancy {:>5.1}%  dial level {:.2}   ",
        (now_ms() - started_ms) / 1000,
        cdrs.len() as u32 + e.calls_in_flight,
        e.calls_in_flight,
        human,
        machine,
        abandoned,
        rate * 100.0,
        v.ready,
        v.in_call.len() + v.reserved as usize,
        v.wrap_up.len(),
        occ * 100.0,
        f64::from(e.calls_in_flight) / f64::from(active),
    );
    let _ = std::io::stderr().flush();
}


async fn summarise(live: &Live, scenario: &Scenario, campaign: i64, from: i64, to: i64, carrier: Option<&carrier::Carrier>) -> anyhow::Result<Summary> {
    let cdrs = live.store.cdrs(&CdrQuery { campaign_id: Some(campaign), limit: Some(1_000_000), ..CdrQuery::default() }).await?;
    let mut outcomes = std::collections::BTreeMap::new();
    for c in &cdrs {
        *outcomes.entry(c.disposition.clone().unwrap_or_else(|| c.outcome.clone())).or_insert(0u64) += 1;
    }
    let human = cdrs.iter().filter(|c| c.answered_by.as_deref() == Some("human")).count() as u64;
    let machine = cdrs.iter().filter(|c| c.answered_by.as_deref() == Some("machine")).count() as u64;
    let abandoned = cdrs.iter().filter(|c| c.abandoned).count() as u64;
    let connects = cdrs.iter().filter(|c| c.agent_id.is_some()).count() as u64;
    let mut latency: Vec<f64> = cdrs.iter().filter_map(|c| Some((c.connected_at? - c.answered_at?) as f64 / 1000.0)).collect();
    latency.sort_by(f64::total_cmp);
    let pct = |q: f64| if latency.is_empty() { 0.0 } else { latency[((latency.len() - 1) as f64 * q).round() as usize] };
    let recordings = cdrs.iter().filter(|c| c.recording_path.as_ref().is_some_and(|p| std::path::Path::new(p).exists())).count() as u64;
    // Agents' time over the dialling period only (the wind-down is not the campaign).
    let times = live.store.agent_time(None, from, to).await?;
    let ready: f64 = times.iter().map(|t| t.seconds.get("ready").copied().unwrap_or(0.0)).sum();
    let agent_hours = f64::from(scenario.agents) * scenario.hours;
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    let rate = if human > 0 { abandoned as f64 / human as f64 } else { 0.0 };
    let simulated = tokio::task::spawn_blocking({
        let s = scenario.clone();
        move || sim::run(&s, Policy::Predictive, 10)
    })
    .await?;
    Ok(Summary {
        scenario: scenario.name.clone(),
        policy: "predictive",
        seeds: 1,
        hours: round(scenario.hours, 4),
        agents: scenario.agents,
        occupancy: round(occupancy(&times), 4),
        abandon_rate: round(rate, 4),
        abandon_rate_worst_seed: round(rate, 4),
        idle_wait_per_connect_s: round(if connects > 0 { ready / connects as f64 } else { 0.0 }, 1),
        dials_per_agent_hour: round(cdrs.len() as f64 / agent_hours, 1),
        connects_per_agent_hour: round(connects as f64 / agent_hours, 1),
        dials: cdrs.len() as u64,
        human,
        machine,
        connects,
        connect_latency_p50_s: round(pct(0.5), 2),
        connect_latency_p99_s: round(pct(0.99), 2),
        abandoned,
        outcomes,
        recordings,
        carrier: carrier.map(|c| c.counts.summary()),
        simulated,
    })
}

fn print_summary(s: &Summary) {
    println!("Demo campaign over {:.0} s with {} agents (scenario {}):", s.hours * 3600.0, s.agents, s.scenario);
    let seen = s.carrier.map_or("-".to_string(), |c| c.calls.to_string());
    println!("  dials {}  carrier saw {seen}  human {}  machine {}  connected {}  abandoned {}  recordings {}", s.dials, s.human, s.machine, s.connects, s.abandoned, s.recordings);
    println!("  outcomes {:?}", s.outcomes);
    println!("  answer → agent connected: p50 {:.2} s, p99 {:.2} s", s.connect_latency_p50_s, s.connect_latency_p99_s);
    println!("                    realised   simulator (same scenario, 10 seeds)");
    println!("  occupancy         {:>7.1}%   {:>7.1}%", s.occupancy * 100.0, s.simulated.occupancy * 100.0);
    println!("  abandon rate      {:>7.2}%   {:>7.2}% (worst seed {:.2}%)", s.abandon_rate * 100.0, s.simulated.abandon_rate * 100.0, s.simulated.abandon_rate_worst_seed * 100.0);
    println!("  idle s / connect  {:>8.1}   {:>8.1}", s.idle_wait_per_connect_s, s.simulated.idle_wait_per_connect_s);
    println!("  dials / agent·h   {:>8.1}   {:>8.1}", s.dials_per_agent_hour, s.simulated.dials_per_agent_hour);
    println!("{}", serde_json::to_string(s).unwrap_or_default());
}
