//! The toll-fraud guards end to end: `pacer serve` as a process with a progressive
//! campaign whose list holds an international and a premium-rate number beside a good
//! one, SIPp as the carrier (logging every message it gets), one agent on the CTI socket.
//! The kill switch is engaged through the CLI before the server starts and released
//! through the CLI while it runs: nothing is dialled before, the good number after, and
//! the carrier never sees an INVITE for the blocked numbers — nor for a blind transfer to
//! a premium line, a manual dial abroad or a previewed personal number.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{PACER, Pacer, carrier_config, expect, expect_error, http, in_ci, send, sipp_carrier};
use serde_json::{Value, json};

const SIPP: &str = "/usr/bin/sipp";
const GOOD: &str = "+12125550101";
const INTERNATIONAL: &str = "+442079460958";
const PREMIUM: &str = "+19002345678";
/// A US personal number (500 range): billed like premium lines.
const PERSONAL: &str = "+15002345678";

/// `pacer kill ACTION` on the server's database; its JSON answer.
fn kill(dir: &Path, action: &str) -> Value {
    let out = Command::new(PACER).args(["kill", action, "--config", "pacer.toml"]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "pacer kill {action}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

#[test]
fn blocked_numbers_are_never_dialled_and_the_kill_switch_holds_across_processes() {
    if !Path::new(SIPP).exists() {
        assert!(!in_ci(), "{SIPP} is required in CI (Debian package sip-tester)");
        eprintln!("skipped: {SIPP} is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tone: Vec<u8> = (0..80_000).map(|i| pacer_media::Codec::Pcmu.encode(((i as f64 * 0.47).sin() * 8000.0) as i16)).collect();
    std::fs::write(dir.path().join("tone.ulaw"), tone).unwrap();
    // One call (the good number), every message it receives in its log.
    let (mut sipp, carrier_port) = sipp_carrier(dir.path(), "carrier_tone_bye.xml", 1, &["-d", "2000", "-trace_msg", "-message_file", "messages.log"]);
    let cfg = carrier_config(carrier_port, 45000);
    std::fs::write(dir.path().join("pacer.toml"), cfg).unwrap();
    // Engaged before the server exists: it must start stopped.
    let on = kill(dir.path(), "on");
    assert_eq!(on["on"].as_bool(), Some(true), "{on}");
    assert!(on["changed_by"].as_str().is_some_and(|b| b.starts_with("cli:")), "{on}");

    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = pacer.http_addr();
    let call = |method: &str, path: &str, body: &str| {
        let (s, _, b) = http(addr, method, path, Some(body));
        assert!(s < 300, "{method} {path}: {s} {b}");
        serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)
    };
    assert_eq!(call("GET", "/api/v1/dialer/kill", "")["on"], true);
    call("POST", "/api/v1/agents", &json!({"username": "ann", "name": "Ann", "password": "ann-secret-1"}).to_string());
    let settings = json!({"trunks": ["carrier"], "wrap_up_s": 0, "amd": {"enabled": false}});
    let campaign = call("POST", "/api/v1/campaigns", &json!({"name": "Fraud", "dial_mode": "progressive", "settings": settings}).to_string());
    let id = campaign["id"].as_i64().unwrap();
    let list = call("POST", &format!("/api/v1/campaigns/{id}/lists"), &json!({"name": "Mixed"}).to_string());
    let list_id = list["id"].as_i64().unwrap();
    // The blocked numbers come first in the hopper.
    let report = call("POST", &format!("/api/v1/lists/{list_id}/import"), &format!("phone,name\n{INTERNATIONAL},Intl\n{PREMIUM},Premium\n{GOOD},Good\n"));
    assert_eq!(report["imported"], 3, "{report}");
    call("POST", &format!("/api/v1/campaigns/{id}/start"), "{}");
    let preview = call("POST", "/api/v1/campaigns", &json!({"name": "Preview", "dial_mode": "preview", "settings": settings}).to_string());
    let preview_id = preview["id"].as_i64().unwrap();
    let preview_list = call("POST", &format!("/api/v1/campaigns/{preview_id}/lists"), &json!({"name": "One"}).to_string());
    let report = call("POST", &format!("/api/v1/lists/{}/import", preview_list["id"]), &format!("phone,name\n{PERSONAL},Follow-me\n"));
    assert_eq!(report["imported"], 1, "{report}");
    call("POST", &format!("/api/v1/campaigns/{preview_id}/start"), "{}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let media = pacer_media::MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 46000, rtp_port_max: 46998, ..Default::default() }).unwrap();
        let leg = media.rtp_endpoint().await.unwrap();
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
        send(&mut ws, json!({"type":"login","username":"ann","password":"ann-secret-1"})).await;
        expect(&mut ws, "logged_in").await;
        send(&mut ws, json!({"type":"media_offer","sdp":leg.local_offer()})).await;
        let answer = expect(&mut ws, "media_answer").await;
        leg.accept_answer(answer["sdp"].as_str().unwrap()).unwrap();
        send(&mut ws, json!({"type":"ready"})).await;

        // A ready agent and leads, but the switch is on: nothing is dialled.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, _, m) = http(addr, "GET", "/metrics", None);
        assert_eq!(metric(&m, "pacer_dials_total{campaign=\"Fraud\"}"), 0.0, "dialled under the kill switch");
        assert_eq!(metric(&m, "pacer_kill_switch "), 1.0);

        // Released by another process, straight in the database: the server follows.
        let off = kill(dir.path(), "off");
        assert_eq!(off["on"], false, "{off}");
        let released = Instant::now();
        let pop = expect(&mut ws, "call").await;
        assert!(released.elapsed() < Duration::from_secs(10), "dialling resumed late: {:?}", released.elapsed());
        assert_eq!(pop["lead"]["phone"], GOOD, "{pop}");
        let call_id = pop["call_id"].as_str().unwrap().to_string();
        // A blind transfer of the customer to a premium line: the classic fraud path.
        send(&mut ws, json!({"type":"transfer","number":"1-900-234-5678"})).await;
        let e = expect_error(&mut ws).await;
        assert_eq!(e["code"], "transfer_failed", "{e}");
        assert!(e["message"].as_str().unwrap().contains("premium-rate"), "{e}");
        expect(&mut ws, "call_ended").await;
        send(&mut ws, json!({"type":"disposition","call_id":call_id,"code":"answered"})).await;
        expect(&mut ws, "disposition_saved").await;
        send(&mut ws, json!({"type":"not_ready","reason":"done"})).await;
        // A number typed by the agent gets the same answer.
        send(&mut ws, json!({"type":"manual_dial","number":"+44 20 7946 0958"})).await;
        let e = expect_error(&mut ws).await;
        assert_eq!(e["code"], "manual_dial", "{e}");
        assert!(e["message"].as_str().unwrap().contains("outside the allowed destinations"), "{e}");
        // A previewed lead the agent dials: refused, said why, closed.
        send(&mut ws, json!({"type":"preview_next","campaign_id":preview_id})).await;
        let preview = expect(&mut ws, "preview").await;
        assert_eq!(preview["lead"]["phone"], PERSONAL, "{preview}");
        send(&mut ws, json!({"type":"dial","lead_id":preview["lead"]["id"]})).await;
        let e = expect_error(&mut ws).await;
        assert_eq!(e["code"], "blocked", "{e}");
        assert!(e["message"].as_str().unwrap().contains("personal number"), "{e}");
        let ended = expect(&mut ws, "call_ended").await;
        assert_eq!(ended["by"], "no answer: blocked", "{ended}");
    });
    let status = sipp.wait().unwrap();
    assert!(status.success(), "SIPp did not see its one call end normally");
    let messages = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default();
    assert!(messages.contains(&GOOD[1..]), "SIPp's log has the good call:\n{messages}");
    for n in [INTERNATIONAL, PREMIUM, PERSONAL] {
        assert!(!messages.contains(&n[1..]), "the carrier saw {n}:\n{messages}");
    }

    let (s, _, body) = http(addr, "GET", &format!("/api/v1/reports/cdr?campaign_id={id}"), None);
    assert_eq!(s, 200, "{body}");
    let cdrs: Value = serde_json::from_str(&body).unwrap();
    let rows = cdrs.as_array().or_else(|| cdrs["items"].as_array()).expect("CDR rows");
    assert_eq!(rows.len(), 3, "{body}");
    for (n, why) in [(INTERNATIONAL, "outside the allowed destinations (+1)"), (PREMIUM, "premium-rate number")] {
        let row = rows.iter().find(|r| r["phone"] == n).unwrap_or_else(|| panic!("no CDR for {n}: {body}"));
        assert_eq!(row["outcome"], "blocked", "{row}");
        assert_eq!(row["trunk"], Value::Null, "never reached a trunk: {row}");
        // The attempt's notes say why (the CRM's webhook and the database carry them).
        let url = format!("sqlite://{}", dir.path().join("data/pacer.db").display());
        let notes: Option<String> = rt.block_on(async {
            let store = pacer_dialer::store::Store::connect(&url, &Default::default()).await.unwrap();
            let q = sqlx::query_scalar("SELECT notes FROM lead_attempts WHERE phone = $1").bind(n);
            let notes = q.fetch_one(store.pool()).await.unwrap();
            store.close().await;
            notes
        });
        assert!(notes.as_deref().unwrap_or_default().contains(why), "{n}: {notes:?}");
    }
    let leads = call("GET", &format!("/api/v1/leads?list_id={list_id}"), "");
    let leads = leads.as_array().or_else(|| leads["items"].as_array()).cloned().expect("leads");
    for l in leads.iter().filter(|l| l["phone"] != GOOD) {
        assert_eq!(l["state"], "done", "a blocked lead is closed, not retried: {l}");
    }
    let (_, _, m) = http(addr, "GET", "/metrics", None);
    // The lead and the typed number; the lead, the transfer and the previewed lead.
    assert_eq!(metric(&m, "pacer_calls_blocked_total{reason=\"destination\"}"), 2.0, "{m}");
    assert_eq!(metric(&m, "pacer_calls_blocked_total{reason=\"premium\"}"), 3.0);
    let lead = call("GET", &format!("/api/v1/leads?list_id={}", preview_list["id"]), "");
    assert_eq!(lead[0]["state"], "done", "the previewed blocked lead is closed: {lead}");
    assert_eq!(metric(&m, "pacer_kill_switch "), 0.0);
    let status = pacer.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", pacer.log.join("\n"));
}
