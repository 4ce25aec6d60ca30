//! A real browser against a WebRTC endpoint: headless Chromium (system binary, driven by
//! playwright-core from tests/browser) with a 1 kHz WAV as its microphone calls our HTTP
//! signalling, gets bridged to a plain RTP trunk leg whose far end plays 600 Hz, and each
//! side measures the other's tone. The browser also sends DTMF.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};
use common::*;
use pacer_media::{Bridge, Endpoint, MediaEngine, MediaEvent, Prompt};
use tokio::sync::broadcast;

struct App {
    engine: MediaEngine,
    trunk: Endpoint,
    call: Mutex<Option<(Endpoint, Bridge, broadcast::Receiver<MediaEvent>)>>,
}

async fn offer(State(app): State<Arc<App>>, body: String) -> Result<String, (axum::http::StatusCode, String)> {
    let (ep, answer) = app.engine.webrtc_endpoint(&body).await.map_err(|e| (axum::http::StatusCode::BAD_REQUEST, e.to_string()))?;
    let events = ep.events();
    let bridge = app.engine.bridge(&app.trunk, &ep).map_err(|e| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    *app.call.lock().unwrap() = Some((ep, bridge, events));
    Ok(answer)
}

fn missing_peer(dir: &Path) -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("no /usr/bin/chromium (Debian package chromium)".into());
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Some(format!("{} has no node_modules: run `npm ci --prefix tests/browser`", dir.display()));
    }
    if std::process::Command::new("node").arg("--version").output().is_err() {
        return Some("no node on PATH".into());
    }
    None
}

fn mic_wav(path: &Path) {
    let spec = hound::WavSpec { channels: 1, sample_rate: 48000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..48000 * 10 {
        let v = (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48000.0).sin() * 12000.0;
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_and_webrtc_endpoint_hear_each_other() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    if let Some(why) = missing_peer(&dir) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "browser test cannot run in CI: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let engine = engine(21800);
    let (carrier, trunk) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    connect(&carrier, &trunk);
    let player = {
        let c = carrier.clone();
        tokio::spawn(async move { c.play(&Prompt::tone(600.0, 60_000)).await })
    };
    let mut carrier_hears = carrier.tap();
    let heard_by_carrier = Arc::new(Mutex::new(Vec::<i16>::new()));
    let collector = {
        let h = heard_by_carrier.clone();
        tokio::spawn(async move {
            while let Some(f) = carrier_hears.recv().await {
                h.lock().unwrap().extend_from_slice(&f.samples);
            }
        })
    };

    let app = Arc::new(App { engine: engine.clone(), trunk: trunk.clone(), call: Mutex::new(None) });
    let router = axum::Router::new()
        .route("/", get(|| async { Html(include_str!("../../tests/browser/call.html")) }))
        .route("/offer", post(offer))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("mic.wav");
    mic_wav(&wav);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .arg(dir.join("webrtc_call.mjs"))
            .arg(&url)
            .arg(&wav)
            .current_dir(&dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finishes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().last().unwrap_or("");
    let result: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("no result line: {stdout}\n{stderr}"));
    assert!(result.get("error").is_none(), "{result}\n{stderr}");
    assert_eq!(result["connected"], true);
    assert_eq!(result["codec"], "PCMU");
    let (ep, _bridge, mut events) = app.call.lock().unwrap().take().expect("the browser's offer reached us");
    let heard = result["heard_hz"].as_f64().unwrap();
    assert!((heard - 600.0).abs() < 20.0, "the browser heard {heard} Hz, not the 600 Hz tone: {result}; our leg: {:?}", ep.stats());

    let mut digits = String::new();
    while digits.len() < 4 {
        let Some(d) = wait_event(&mut events, Duration::from_secs(3), |e| match e {
            MediaEvent::Dtmf { digit, .. } => Some(*digit),
            _ => None,
        })
        .await
        else {
            break;
        };
        digits.push(d);
    }
    assert_eq!(digits, "159#", "digits from the browser's RTCDTMFSender");
    let st = ep.stats();
    assert!(st.packets_received > 50 && st.packets_sent > 50, "{st:?}");
    ep.close();
    player.abort();
    carrier.stop_playback();
    collector.abort();
    let heard = std::mem::take(&mut *heard_by_carrier.lock().unwrap());
    // Somewhere in the call, a second of what reached the carrier is the browser's 1 kHz.
    let found = heard.chunks(8000).any(|w| w.len() == 8000 && has_tone(w, 1000.0) && !has_tone(w, 600.0));
    assert!(found, "the carrier never heard the browser's 1 kHz tone ({} samples)", heard.len());
    server.abort();
}
