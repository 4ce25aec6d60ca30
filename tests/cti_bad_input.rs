//! Hostile input on the CTI sockets of a running `pacer serve`: garbage before login,
//! then, on a logged-in agent socket and a supervisor socket, non-JSON text, binary
//! frames, unknown types, wrong field types, a large message and a few hundred random
//! mutations of valid messages. Each bad message gets an `error` (never a dropped
//! socket or a dead server), and the socket still answers `ping` afterwards.

mod common;

use std::time::Duration;

use common::{Pacer, http};
use futures_util::{SinkExt, StreamExt};
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message that is not an unsolicited state or floor update.
async fn reply(ws: &mut Ws) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.expect("an answer in time").expect("the socket stays open").expect("no socket error");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).expect("the server sends JSON");
            if !matches!(v["type"].as_str(), Some("state" | "snapshot" | "agent_state")) {
                return v;
            }
        }
    }
}

async fn still_alive(ws: &mut Ws, after: &str) {
    ws.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.unwrap();
    // Answers to the messages before (errors, or replies to mutants that were valid) come
    // first; the socket is alive when the pong arrives.
    loop {
        let v = reply(ws).await;
        if v["type"] == "pong" {
            return;
        }
        assert!(v["type"].is_string(), "after {after}: {v}");
    }
}

/// Valid messages of both sockets, and mutations of them: characters replaced, dropped,
/// doubled; cut short; a field's value swapped for another JSON type.
fn mutants(seed: u64, n: usize) -> Vec<String> {
    let valid = [
        json!({"type": "ready"}),
        json!({"type": "not_ready", "reason": "lunch"}),
        json!({"type": "dtmf", "digits": "12#"}),
        json!({"type": "transfer", "number": "+15550100"}),
        json!({"type": "disposition", "call_id": "1", "code": "sale", "notes": "x", "callback_at": "2026-12-03T10:00"}),
        json!({"type": "extend_wrap", "seconds": 30}),
        json!({"type": "manual_dial", "number": "+12125550100", "campaign_id": 1}),
        json!({"type": "preview_next"}),
        json!({"type": "dial", "lead_id": 1}),
        json!({"type": "time_report", "from": 0}),
        json!({"type": "listen", "agent_id": 1, "mode": "whisper"}),
        json!({"type": "force", "agent_id": 1, "state": "not_ready"}),
        json!({"type": "media_offer", "sdp": "v=0\r\n"}),
    ];
    let swaps = [json!(null), json!(-1), json!(1e308), json!("\u{0}"), json!([]), json!({"a": {}}), json!(true), json!("x".repeat(5000))];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut v = valid[rng.random_range(0..valid.len())].clone();
            match rng.random_range(0..4) {
                0 => {
                    // A field (or the type) of another JSON type.
                    let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                    let k = &keys[rng.random_range(0..keys.len())];
                    v[k] = swaps[rng.random_range(0..swaps.len())].clone();
                    v.to_string()
                }
                1 => {
                    let s = v.to_string();
                    s[..rng.random_range(0..s.len())].to_string()
                }
                _ => {
                    let mut b: Vec<char> = v.to_string().chars().collect();
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(0..b.len());
                        match rng.random_range(0..3) {
                            0 => b[i] = char::from(rng.random_range(0x20u8..0x7f)),
                            1 => drop(b.remove(i)),
                            _ => b.insert(i, b[i]),
                        }
                    }
                    b.into_iter().collect()
                }
            }
        })
        .collect()
}

async fn hammer(ws: &mut Ws, seed: u64) {
    let fixed = [
        "not json".to_string(),
        String::new(),
        "[]".into(),
        "null".into(),
        json!({"type": "no_such_type"}).to_string(),
        json!({"type": "login", "username": "again", "password": "x"}).to_string(),
        json!({"type": "dtmf", "digits": 5}).to_string(),
        format!("{{\"type\":\"dtmf\",\"digits\":\"{}\"}}", "1".repeat(200_000)),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    ];
    for m in &fixed {
        ws.send(Message::Text(m.clone().into())).await.unwrap();
        let v = reply(ws).await;
        assert_eq!(v["type"], "error", "{}: {v}", m.chars().take(60).collect::<String>());
        assert!(v["code"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    }
    ws.send(Message::Binary(vec![0u8, 159, 146, 150].into())).await.unwrap();
    assert_eq!(reply(ws).await["code"], "bad_message");
    still_alive(ws, "the fixed cases").await;
    for (i, m) in mutants(seed, 300).into_iter().enumerate() {
        ws.send(Message::Text(m.clone().into())).await.unwrap();
        // Some mutants are valid messages: whatever the answer, the socket must live on.
        if i % 25 == 24 {
            still_alive(ws, &m).await;
        }
    }
    still_alive(ws, "the mutants").await;
}

#[test]
fn cti_sockets_survive_garbage_and_answer_every_bad_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pacer.toml"), "[http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten_udp = \"127.0.0.1:0\"\n[media]\nrtp_port_min = 36000\nrtp_port_max = 36998\n").unwrap();
    let mut add = std::process::Command::new(common::PACER)
        .args(["user", "add", "--username", "sue", "--role", "supervisor", "--password-stdin", "--config", "pacer.toml"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"supervisor-pass\n").unwrap();
    assert!(add.wait().unwrap().success());
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = pacer.http_addr();
    let (s, _, b) = http(addr, "POST", "/api/v1/agents", Some(&json!({"username": "ann", "password": "ann-secret-1"}).to_string()));
    assert!(s < 300, "{b}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(async {
        // Garbage instead of a login: refused, the socket closed, the server unharmed.
        for first in ["garbage", "{\"type\":\"ready\"}", "{\"type\":\"login\",\"username\":5}"] {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
            ws.send(Message::Text(first.into())).await.unwrap();
            let v = reply(&mut ws).await;
            assert_eq!(v["code"], "login_failed", "{first}: {v}");
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
        ws.send(Message::Text(json!({"type": "login", "username": "ann", "password": "ann-secret-1"}).to_string().into())).await.unwrap();
        assert_eq!(reply(&mut ws).await["type"], "logged_in");
        hammer(&mut ws, 1).await;

        let (mut sup, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/supervisor")).await.unwrap();
        sup.send(Message::Text(json!({"type": "login", "username": "sue", "password": "supervisor-pass"}).to_string().into())).await.unwrap();
        assert_eq!(reply(&mut sup).await["type"], "supervisor_ready");
        hammer(&mut sup, 2).await;
    })));
    if let Err(e) = r {
        pacer.drain_log();
        eprintln!("--- pacer log\n{}", pacer.log.join("\n"));
        std::panic::resume_unwind(e);
    }
    let (s, _, _) = http(addr, "GET", "/healthz", None);
    assert_eq!(s, 200);
    assert!(pacer.terminate(Duration::from_secs(20)).success(), "{}", pacer.log.join("\n"));
}
