//! Blended agents: a customer calls in through a trunk (SIPp), the call goes through the
//! ACD to a ready agent (a CTI WebSocket desktop with a persistent RTP leg), who gets the
//! screen pop, hears the call end and dispositions it; the CDR says so.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Pacer, http, in_ci};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SIPP: &str = "/usr/bin/sipp";

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn next_of(ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin), kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.unwrap_or_else(|_| panic!("no {kind} message in time"));
        if let Some(Ok(Message::Text(t))) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(v["type"], "error", "server error while waiting for {kind}: {v}");
            if v["type"] == kind {
                return v;
            }
        }
    }
}

#[test]
fn an_inbound_caller_reaches_a_ready_agent() {
    if !Path::new(SIPP).exists() {
        assert!(!in_ci(), "{SIPP} is required in CI (Debian package sip-tester)");
        eprintln!("skipped: {SIPP} is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sip_port = free_port();
    let cfg = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten_udp = \"127.0.0.1:{sip_port}\"\n[media]\nrtp_port_min = 45000\nrtp_port_max = 45998\n\
         [dialer]\nlegal_window_start = \"00:00\"\nlegal_window_end = \"24:00\"\n\
         [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {}\noptions_interval_s = 0\ninbound_from = [\"127.0.0.1\"]\n",
        free_port()
    );
    std::fs::write(dir.path().join("pacer.toml"), cfg).unwrap();
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = pacer.http_addr();
    let post = |path: &str, body: Value| {
        let (s, _, b) = http(addr, "POST", path, Some(&body.to_string()));
        assert!(s < 300, "POST {path}: {s} {b}");
        serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)
    };
    post("/api/v1/agents", json!({"username": "ann", "name": "Ann", "password": "ann-secret-1"}));
    let campaign = post("/api/v1/campaigns", json!({"name": "Blended", "settings": {"trunks": ["carrier"], "script": "Caller {{phone}}"}}));
    let id = campaign["id"].as_i64().unwrap();
    post(&format!("/api/v1/campaigns/{id}/start"), json!({}));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let media = pacer_media::MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 46000, rtp_port_max: 46998, ..Default::default() }).unwrap();
        let leg = media.rtp_endpoint().await.unwrap();
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
        let send = |v: Value| Message::Text(v.to_string().into());
        ws.send(send(json!({"type":"login","username":"ann","password":"wrong"}))).await.unwrap();
        let refused = ws.next().await.unwrap().unwrap();
        assert!(refused.to_text().unwrap().contains("login_failed"), "{refused:?}");
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
        ws.send(send(json!({"type":"login","username":"ann","password":"ann-secret-1"}))).await.unwrap();
        next_of(&mut ws, "logged_in").await;
        // Ready is refused until the softphone's leg is connected.
        ws.send(send(json!({"type":"ready"}))).await.unwrap();
        let e = loop {
            let m = ws.next().await.unwrap().unwrap();
            // The server's first heartbeat Ping may come before the answer.
            if !m.is_text() {
                continue;
            }
            let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
            if v["type"] == "error" {
                break v;
            }
        };
        assert_eq!(e["code"], "no_media");
        ws.send(send(json!({"type":"media_offer","sdp":leg.local_offer()}))).await.unwrap();
        let answer = next_of(&mut ws, "media_answer").await;
        leg.accept_answer(answer["sdp"].as_str().unwrap()).unwrap();
        ws.send(send(json!({"type":"ready"}))).await.unwrap();
        let st = next_of(&mut ws, "state").await;
        assert!(st["state"] == "ready" || st["state"] == "not_ready", "{st}");

        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/inbound_caller.xml");
        let mut sipp = Command::new(SIPP)
            .arg("-sf")
            .arg(&scenario)
            .arg(format!("127.0.0.1:{sip_port}"))
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string(), "-mp", &free_port().to_string(), "-s", "+18005550100"])
            .args(["-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pop = next_of(&mut ws, "call").await;
        assert_eq!(pop["lead"]["phone"], "+12125550123", "{pop}");
        assert_eq!(pop["script"], "Caller +12125550123", "{pop}");
        let call_id = pop["call_id"].as_str().unwrap().to_string();
        next_of(&mut ws, "call_ended").await;
        ws.send(send(json!({"type":"disposition","call_id":call_id,"code":"answered","notes":"asked about billing"}))).await.unwrap();
        next_of(&mut ws, "disposition_saved").await;
        let status = tokio::task::spawn_blocking(move || sipp.wait()).await.unwrap().unwrap();
        assert!(status.success(), "SIPp's inbound call failed");
    });
    let (s, _, body) = http(addr, "GET", &format!("/api/v1/reports/cdr?campaign_id={id}"), None);
    assert_eq!(s, 200, "{body}");
    let cdrs: Value = serde_json::from_str(&body).unwrap();
    let rows = cdrs.as_array().or_else(|| cdrs["items"].as_array()).expect("CDR rows");
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["phone"], "+12125550123");
    assert!(rows[0]["agent_id"].is_i64(), "{body}");
    assert_eq!(rows[0]["disposition"], "answered", "{body}");
    let status = pacer.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", pacer.log.join("\n"));
}
