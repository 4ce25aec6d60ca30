//! Calls an agent places: preview dialling (see the lead, skip it or dial it) and manual
//! dialling (a typed number, refused when it is on the campaign's DNC list). `pacer serve`
//! as a process, SIPp as the customer's carrier (answers, plays a tone, hangs up), and a
//! CTI WebSocket desktop with a persistent RTP leg; the CDRs and leads say what happened.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Pacer, carrier_config, expect, http, in_ci, next_of, send, sipp_carrier};
use serde_json::{Value, json};

const SIPP: &str = "/usr/bin/sipp";

#[test]
fn an_agent_previews_skips_dials_and_dials_by_hand() {
    if !Path::new(SIPP).exists() {
        assert!(!in_ci(), "{SIPP} is required in CI (Debian package sip-tester)");
        eprintln!("skipped: {SIPP} is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The customer's side: 10 s of µ-law tone, answered calls last 2 s.
    let tone: Vec<u8> = (0..80_000).map(|i| pacer_media::Codec::Pcmu.encode(((i as f64 * 0.47).sin() * 8000.0) as i16)).collect();
    std::fs::write(dir.path().join("tone.ulaw"), tone).unwrap();
    let (mut sipp, carrier_port) = sipp_carrier(dir.path(), "carrier_tone_bye.xml", 2, &["-d", "2000"]);
    let cfg = carrier_config(carrier_port, 47000);
    std::fs::write(dir.path().join("pacer.toml"), cfg).unwrap();
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = pacer.http_addr();
    let call = |method: &str, path: &str, body: &str| {
        let (s, _, b) = http(addr, method, path, Some(body));
        assert!(s < 300, "{method} {path}: {s} {b}");
        serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)
    };
    call("POST", "/api/v1/agents", &json!({"username": "ann", "name": "Ann", "password": "ann-secret-1"}).to_string());
    let settings = json!({"trunks": ["carrier"], "script": "Hello {{first_name}}", "wrap_up_s": 0});
    let campaign = call("POST", "/api/v1/campaigns", &json!({"name": "Preview", "dial_mode": "preview", "settings": settings}).to_string());
    let id = campaign["id"].as_i64().unwrap();
    let list = call("POST", &format!("/api/v1/campaigns/{id}/lists"), &json!({"name": "Warm"}).to_string());
    let list_id = list["id"].as_i64().unwrap();
    let report = call("POST", &format!("/api/v1/lists/{list_id}/import"), "phone,first_name\n+12125550101,Ada\n+12125550102,Bob\n");
    assert_eq!(report["imported"], 2, "{report}");
    call("POST", &format!("/api/v1/dnc/{id}"), &json!({"phones": ["+12125550199"], "reason": "asked"}).to_string());
    call("POST", &format!("/api/v1/campaigns/{id}/start"), "{}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (skipped, dialled) = rt.block_on(async {
        let media = pacer_media::MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 48000, rtp_port_max: 48998, ..Default::default() }).unwrap();
        let leg = media.rtp_endpoint().await.unwrap();
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
        send(&mut ws, json!({"type":"login","username":"ann","password":"ann-secret-1"})).await;
        expect(&mut ws, "logged_in").await;
        // Preview needs the softphone's leg, as any call does.
        send(&mut ws, json!({"type":"media_offer","sdp":leg.local_offer()})).await;
        let answer = expect(&mut ws, "media_answer").await;
        leg.accept_answer(answer["sdp"].as_str().unwrap()).unwrap();

        // A lead that is not being previewed cannot be dialled.
        send(&mut ws, json!({"type":"dial","lead_id":999_999})).await;
        assert_eq!(next_of(&mut ws, "dialing").await["code"], "no_preview");

        send(&mut ws, json!({"type":"preview_next"})).await;
        let first = expect(&mut ws, "preview").await;
        let first_id = first["lead"]["id"].as_i64().unwrap();
        assert!(first["script"].as_str().unwrap().starts_with("Hello "), "{first}");
        send(&mut ws, json!({"type":"skip","lead_id":first_id})).await;
        let second = expect(&mut ws, "preview").await;
        let second_id = second["lead"]["id"].as_i64().unwrap();
        assert_ne!(first_id, second_id, "skipping shows the other lead");
        let phone = second["lead"]["phone"].as_str().unwrap().to_string();

        send(&mut ws, json!({"type":"dial","lead_id":second_id})).await;
        let dialing = expect(&mut ws, "dialing").await;
        assert_eq!(dialing["number"], phone.as_str());
        let pop = expect(&mut ws, "call").await;
        assert_eq!(pop["lead"]["id"], second_id, "{pop}");
        let call_id = pop["call_id"].as_str().unwrap().to_string();
        assert_eq!(call_id, dialing["call_id"].as_str().unwrap());
        expect(&mut ws, "call_ended").await;
        send(&mut ws, json!({"type":"disposition","call_id":call_id,"code":"answered","notes":"previewed"})).await;
        expect(&mut ws, "disposition_saved").await;

        // Manual dial: the DNC list is honoured, bad numbers are refused, a good one rings.
        send(&mut ws, json!({"type":"manual_dial","number":"+1 212 555 0199"})).await;
        let e = next_of(&mut ws, "dialing").await;
        assert_eq!(e["code"], "manual_dial", "{e}");
        assert!(e["message"].as_str().unwrap().contains("do-not-call"), "{e}");
        send(&mut ws, json!({"type":"manual_dial","number":"not a number"})).await;
        assert_eq!(next_of(&mut ws, "dialing").await["code"], "manual_dial");
        send(&mut ws, json!({"type":"manual_dial","number":"+12125550150"})).await;
        let dialing = expect(&mut ws, "dialing").await;
        assert_eq!(dialing["number"], "+12125550150");
        let pop = expect(&mut ws, "call").await;
        let call_id = pop["call_id"].as_str().unwrap().to_string();
        expect(&mut ws, "call_ended").await;
        send(&mut ws, json!({"type":"disposition","call_id":call_id,"code":"answered"})).await;
        expect(&mut ws, "disposition_saved").await;
        (first_id, second_id)
    });
    let status = sipp.wait().unwrap();
    assert!(status.success(), "SIPp did not see both calls end normally");

    let (s, _, body) = http(addr, "GET", &format!("/api/v1/reports/cdr?campaign_id={id}"), None);
    assert_eq!(s, 200, "{body}");
    let cdrs: Value = serde_json::from_str(&body).unwrap();
    let rows = cdrs.as_array().or_else(|| cdrs["items"].as_array()).expect("CDR rows");
    let phones: Vec<&str> = rows.iter().map(|r| r["phone"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), 2, "the previewed and the manual call: {body}");
    assert!(phones.contains(&"+12125550150"), "{body}");
    assert!(rows.iter().all(|r| r["agent_id"].is_i64() && r["disposition"] == "answered"), "{body}");
    let lead = call("GET", &format!("/api/v1/leads/{dialled}"), "");
    assert_eq!(lead["attempts"], 1, "{lead}");
    let lead = call("GET", &format!("/api/v1/leads/{skipped}"), "");
    assert_eq!(lead["attempts"], 0, "a skipped lead is not dialled: {lead}");
    assert_eq!(lead["lease_owner"], Value::Null, "a skipped lead goes back to the hopper: {lead}");
    let status = pacer.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", pacer.log.join("\n"));
}
