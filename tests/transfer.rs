//! Blind transfers end to end: `pacer serve` as a process, SIPp as the carrier (the
//! customer, and later the outside number, both playing a tone), and two agents on CTI
//! sockets with persistent RTP legs. Alice (campaign "Sales") takes the customer and
//! transfers them to the queue "Support", where Bob takes them and hears the customer;
//! Bob transfers them to an outside number, dispositions at once and is ready again while
//! the customer and the number still talk. Targets that cannot take the call are refused
//! and the agent keeps the customer.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Pacer, agent_desk, carrier_config, expect, expect_error, hears, http, in_ci, send, sipp_carrier, tone_power, ulaw_tone};
use serde_json::{Value, json};

const SIPP: &str = "/usr/bin/sipp";
const CUSTOMER: &str = "+12125550101";
const OUTSIDE: &str = "+12125550150";
const TONE_HZ: f64 = 600.0;

/// Waits (bounded) until the floor shows `username` in state `want`.
async fn state(addr: std::net::SocketAddr, username: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, _, body) = http(addr, "GET", "/api/v1/live/agents", None);
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let rows = v.as_array().or_else(|| v["agents"].as_array()).cloned().unwrap_or_default();
        if rows.iter().any(|a| a["username"] == username && a["state"] == want) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{username} is not {want}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn calls_go_to_a_queue_then_to_a_number() {
    if !Path::new(SIPP).exists() {
        assert!(!in_ci(), "{SIPP} is required in CI (Debian package sip-tester)");
        eprintln!("skipped: {SIPP} is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tone.ulaw"), ulaw_tone(TONE_HZ, 10.0)).unwrap();
    // Two calls: the customer, then the number the customer is transferred to.
    let (mut sipp, carrier_port) = sipp_carrier(dir.path(), "carrier_either_bye.xml", 2, &["-trace_msg"]);
    let cfg = carrier_config(carrier_port, 45000);
    std::fs::write(dir.path().join("pacer.toml"), cfg).unwrap();
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = pacer.http_addr();
    let call = |method: &str, path: &str, body: &str| {
        let (s, _, b) = http(addr, method, path, Some(body));
        assert!(s < 300, "{method} {path}: {s} {b}");
        serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)
    };
    let settings = json!({"trunks": ["carrier"], "wrap_up_s": 0, "amd": {"enabled": false}});
    let sales = call("POST", "/api/v1/campaigns", &json!({"name": "Sales", "dial_mode": "progressive", "settings": settings}).to_string());
    let support = call("POST", "/api/v1/campaigns", &json!({"name": "Support", "dial_mode": "preview", "settings": settings}).to_string());
    let (sales_id, support_id) = (sales["id"].as_i64().unwrap(), support["id"].as_i64().unwrap());
    call("POST", "/api/v1/agents", &json!({"username": "alice", "password": "alice-secret-1", "campaigns": [sales_id]}).to_string());
    let bob = call("POST", "/api/v1/agents", &json!({"username": "bob", "password": "bob-secret-12", "campaigns": [support_id]}).to_string());
    let list = call("POST", &format!("/api/v1/campaigns/{sales_id}/lists"), &json!({"name": "Today"}).to_string());
    let report = call("POST", &format!("/api/v1/lists/{}/import", list["id"]), &format!("phone,first_name\n{CUSTOMER},Ada\n"));
    assert_eq!(report["imported"], 1, "{report}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let media = pacer_media::MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 46000, rtp_port_max: 46998, ..Default::default() }).unwrap();
        let (mut alice, alice_leg) = agent_desk(addr, &media, "alice", "alice-secret-1").await;
        let (mut bob_ws, bob_leg) = agent_desk(addr, &media, "bob", "bob-secret-12").await;
        let (mut alice_ears, mut bob_ears) = (alice_leg.tap(), bob_leg.tap());
        send(&mut alice, json!({"type":"ready"})).await;
        send(&mut bob_ws, json!({"type":"ready"})).await;
        call("POST", &format!("/api/v1/campaigns/{sales_id}/start"), "{}");

        let pop = expect(&mut alice, "call").await;
        assert_eq!(pop["lead"]["phone"], CUSTOMER, "{pop}");
        let call_id = pop["call_id"].as_str().unwrap().to_string();
        let heard = hears(&mut alice_ears, Duration::from_millis(800)).await;
        assert!(tone_power(&heard, TONE_HZ) > 0.005, "alice does not hear the customer: {}", tone_power(&heard, TONE_HZ));

        // Targets that cannot take the call: refused, and alice keeps the customer.
        send(&mut alice, json!({"type":"transfer"})).await;
        assert_eq!(expect_error(&mut alice).await["code"], "bad_transfer");
        send(&mut alice, json!({"type":"transfer","agent":"bob","number":OUTSIDE})).await;
        assert_eq!(expect_error(&mut alice).await["code"], "bad_transfer");
        send(&mut alice, json!({"type":"transfer","queue":"Billing"})).await;
        let e = expect_error(&mut alice).await;
        assert_eq!(e["code"], "transfer_failed", "{e}");
        assert!(e["message"].as_str().unwrap().contains("no queue"), "{e}");
        send(&mut alice, json!({"type":"transfer","agent":"carol"})).await;
        assert_eq!(expect_error(&mut alice).await["code"], "transfer_failed");
        send(&mut alice, json!({"type":"transfer","agent":"alice"})).await;
        assert_eq!(expect_error(&mut alice).await["code"], "transfer_failed");
        let heard = hears(&mut alice_ears, Duration::from_millis(500)).await;
        assert!(tone_power(&heard, TONE_HZ) > 0.005, "alice lost the customer after refused transfers");

        // To the Support queue: alice is done with it, bob gets the same call.
        send(&mut alice, json!({"type":"transfer","queue":"Support"})).await;
        let ended = expect(&mut alice, "call_ended").await;
        assert_eq!(ended["by"], "transfer", "{ended}");
        assert_eq!(ended["handed_over"], true, "{ended}");
        let pop = expect(&mut bob_ws, "call").await;
        assert_eq!(pop["call_id"], call_id.as_str(), "{pop}");
        assert_eq!(pop["lead"]["phone"], CUSTOMER, "{pop}");
        let heard = hears(&mut bob_ears, Duration::from_millis(800)).await;
        assert!(tone_power(&heard, TONE_HZ) > 0.005, "bob does not hear the customer: {}", tone_power(&heard, TONE_HZ));
        state(addr, "alice", "ready").await;
        // Alice has nothing to disposition any more.
        send(&mut alice, json!({"type":"disposition","call_id":call_id,"code":"answered"})).await;
        assert_eq!(expect_error(&mut alice).await["code"], "no_call");

        // To an outside number: bob dispositions at once and is free while they talk.
        send(&mut bob_ws, json!({"type":"transfer","number":"(212) 555-0150"})).await;
        let ended = expect(&mut bob_ws, "call_ended").await;
        assert_eq!(ended["by"], "transfer", "{ended}");
        assert_eq!(ended.get("handed_over"), None, "bob dispositions a transfer to a number: {ended}");
        let heard = hears(&mut bob_ears, Duration::from_millis(600)).await;
        assert!(tone_power(&heard, TONE_HZ) < 0.001, "bob still hears the customer after the transfer: {}", tone_power(&heard, TONE_HZ));
        send(&mut bob_ws, json!({"type":"disposition","call_id":call_id,"code":"answered","notes":"sent to billing line"})).await;
        expect(&mut bob_ws, "disposition_saved").await;
        state(addr, "bob", "ready").await;
        let (_, _, cdr) = http(addr, "GET", &format!("/api/v1/reports/cdr?campaign_id={sales_id}"), None);
        assert!(!cdr.contains(CUSTOMER), "the call is still going on, so no CDR yet: {cdr}");
    });
    let bob_id = bob["id"].as_i64().unwrap();
    // The customer hangs up after 12 s; pacer then hangs up the outside number.
    let status = sipp.wait().unwrap();
    assert!(status.success(), "SIPp did not see both calls end normally");
    let log = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).find(|e| e.file_name().to_string_lossy().ends_with("_messages.log")).map(|e| std::fs::read_to_string(e.path()).unwrap()).unwrap_or_default();
    assert!(log.contains(&format!("INVITE sip:{}", &OUTSIDE[1..])) || log.contains(&format!("INVITE sip:{OUTSIDE}")), "the carrier got no INVITE for the transfer:\n{log}");

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let row = loop {
        let (s, _, body) = http(addr, "GET", &format!("/api/v1/reports/cdr?campaign_id={sales_id}"), None);
        assert_eq!(s, 200, "{body}");
        let cdrs: Value = serde_json::from_str(&body).unwrap();
        let rows = cdrs.as_array().or_else(|| cdrs["items"].as_array()).cloned().unwrap_or_default();
        if let Some(r) = rows.into_iter().find(|r| r["phone"] == CUSTOMER) {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "no CDR after the call ended: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(row["agent_id"], bob_id, "the last agent's call: {row}");
    assert_eq!(row["disposition"], "answered", "{row}");
    let notes = row["notes"].as_str().unwrap_or_default();
    assert!(notes.contains("transferred to +12125550150") && notes.contains("sent to billing line"), "{row}");
    let status = pacer.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", pacer.log.join("\n"));
}
