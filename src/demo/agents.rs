//! The demo's simulated agents: each logs in over the CTI WebSocket like a desktop does,
//! connects a persistent media leg over real RTP, goes ready, talks for a scenario's talk
//! time on each call it gets (speech-like audio), hangs up, wraps up and dispositions.

use std::time::Duration;

use pacer_dialer::sim::Scenario;
use pacer_media::amd::synth;
use pacer_media::{MediaEngine, Prompt};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Custom dispositions the demo agents use besides `answered`.
pub const DISPOSITIONS: [(&str, &str, bool); 3] = [("sale", "Sale", false), ("not_interested", "Not interested", false), ("call_back", "Call back", true)];

pub struct AgentSpec {
    pub username: String,
    pub password: String,
}

/// Runs one agent until `stop`; then it finishes its call (if any), dispositions and logs out.
pub async fn run(url: String, who: AgentSpec, scenario: Scenario, media: MediaEngine, seed: u64, stop: CancellationToken) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    use futures_util::{SinkExt, StreamExt};
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type":"login","username":who.username,"password":who.password}))).await?;
    let leg = media.rtp_endpoint().await?;
    ws.send(send(json!({"type":"media_offer","sdp":leg.local_offer()}))).await?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let t = &scenario.timing;
    let sigma = t.talk.sigma_log;
    let talk_d = LogNormal::new(t.talk.mean.ln() - sigma * sigma / 2.0, sigma).expect("validated scenario");
    let wrap_d = (t.wrap.cv > 0.0).then(|| LogNormal::from_mean_cv(t.wrap.mean, t.wrap.cv).expect("validated scenario"));
    // The current call: its id, when the agent will hang up, and whether it already ended.
    let mut call: Option<(String, tokio::time::Instant)> = None;
    let mut wrap_until: Option<(String, tokio::time::Instant)> = None;
    let mut ready_sent = false;
    let mut stopping = false;
    let mut speaking: Option<CancellationToken> = None;
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    loop {
        let hang_at = call.as_ref().map(|c| c.1);
        let wrap_at = wrap_until.as_ref().map(|w| w.1);
        tokio::select! {
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                if call.is_none() && wrap_until.is_none() {
                    break;
                }
                // The current call is finished as it would be; then the agent leaves.
            }
            _ = ping.tick() => ws.send(send(json!({"type":"ping"}))).await?,
            _ = async { tokio::time::sleep_until(hang_at.expect("guarded")).await }, if hang_at.is_some() => {
                ws.send(send(json!({"type":"hangup"}))).await?;
                // Ask once; the call_ended message moves the agent to wrap-up.
                if let Some(c) = call.as_mut() { c.1 = tokio::time::Instant::now() + Duration::from_secs(3600); }
            }
            _ = async { tokio::time::sleep_until(wrap_at.expect("guarded")).await }, if wrap_at.is_some() => {
                let (id, _) = wrap_until.take().expect("guarded");
                let x: f64 = rng.random();
                let code = if x < 0.2 { "sale" } else if x < 0.7 { "not_interested" } else { "answered" };
                ws.send(send(json!({"type":"disposition","call_id":id,"code":code}))).await?;
                if stopping {
                    break;
                }
                ws.send(send(json!({"type":"ready"}))).await?;
            }
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => anyhow::bail!("the server closed the agent socket"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                };
                let v: Value = serde_json::from_str(&text)?;
                match v["type"].as_str().unwrap_or_default() {
                    "media_answer" => {
                        leg.accept_answer(v["sdp"].as_str().unwrap_or_default())?;
                        if !ready_sent {
                            ready_sent = true;
                            ws.send(send(json!({"type":"ready"}))).await?;
                        }
                    }
                    "call" => {
                        let id = v["call_id"].as_str().unwrap_or_default().to_string();
                        let talk = Duration::from_secs_f64(talk_d.sample(&mut rng).clamp(1.0, 3600.0));
                        call = Some((id, tokio::time::Instant::now() + talk));
                        // The agent talks (speech-like audio on the persistent leg) until the
                        // call ends.
                        let (leg, seed, talking) = (leg.clone(), rng.random::<u64>(), CancellationToken::new());
                        speaking = Some(talking.clone());
                        tokio::spawn(async move {
                            let mut n = seed;
                            loop {
                                n = n.wrapping_add(1);
                                let p = Prompt::from_pcm(&synth::speech_like(n, Duration::from_secs(3)), 8000).expect("8 kHz PCM is a valid prompt");
                                tokio::select! {
                                    _ = talking.cancelled() => { leg.stop_playback(); return; }
                                    r = leg.play(&p) => if r.is_err() { return },
                                }
                            }
                        });
                    }
                    "call_ended" => {
                        let id = v["call_id"].as_str().unwrap_or_default().to_string();
                        call = None;
                        if let Some(t) = speaking.take() {
                            t.cancel();
                        }
                        let wrap = wrap_d.as_ref().map_or(t.wrap.mean, |d| d.sample(&mut rng));
                        wrap_until = Some((id, tokio::time::Instant::now() + Duration::from_secs_f64(wrap.max(0.5))));
                    }
                    "error" => {
                        let code = v["code"].as_str().unwrap_or_default();
                        if code == "login_failed" {
                            anyhow::bail!("login refused: {}", v["message"]);
                        }
                        debug!(agent = %who.username, %v, "server said");
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = ws.send(send(json!({"type":"logout"}))).await;
    let _ = ws.close(None).await;
    leg.close();
    Ok(())
}

/// Runs an agent and logs why it stopped, if it failed.
pub async fn run_logged(url: String, who: AgentSpec, scenario: Scenario, media: MediaEngine, seed: u64, stop: CancellationToken) {
    let name = who.username.clone();
    if let Err(e) = run(url, who, scenario, media, seed, stop).await {
        warn!(agent = %name, error = %e, "simulated agent stopped");
    }
}
