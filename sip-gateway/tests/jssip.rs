//! JsSIP (a WebRTC SIP client) in headless Chromium as an agent station: it registers over
//! SIP over WebSocket with digest authentication, is rung over that WebSocket, answers 486
//! as a busy phone, and unregisters. Needs node, Chromium and `npm install` in tests/jssip
//! (scripts/test does it).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use pacer_config::SipConfig;
use pacer_sip::{CallEvent, Outcome};
use tokio::io::{AsyncBufReadExt, BufReader};

fn jssip_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/jssip")
}

fn peers_available() -> bool {
    let missing: Vec<&str> = [
        ("/usr/bin/chromium", "Chromium (Debian package chromium)"),
        ("/usr/bin/node", "node (Debian package nodejs)"),
    ]
    .iter()
    .filter(|(p, _)| !std::path::Path::new(p).exists())
    .map(|(_, what)| *what)
    .chain((!jssip_dir().join("node_modules/jssip").exists()).then_some("npm packages (npm ci in sip-gateway/tests/jssip)"))
    .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("missing {missing:?} and CI=true");
    }
    eprintln!("skipped: missing {missing:?}");
    false
}

#[tokio::test]
async fn jssip_in_chromium_registers_over_websocket_and_is_rung() {
    if !peers_available() {
        return;
    }
    let sip = SipConfig { listen_ws: Some("127.0.0.1:0".parse().unwrap()), ..sip_config() };
    let gw = gateway_with(sip, vec![]).await;
    gw.set_station_password("agent9", "pw9");
    let url = format!("ws://{}", gw.ws_addr().unwrap());
    let mut node = tokio::process::Command::new("/usr/bin/node")
        .arg(jssip_dir().join("station.mjs"))
        .args([url.as_str(), "agent9", "pw9"])
        .current_dir(jssip_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next_event = async || -> String {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("JsSIP reports within 30 s").unwrap().expect("JsSIP still running");
        assert!(!line.contains("\"error\""), "JsSIP: {line}");
        line
    };
    let registered = next_event().await;
    assert!(registered.contains("\"registered\""), "{registered}");
    let stations = gw.stations();
    assert_eq!(stations.len(), 1, "{stations:?}");
    assert_eq!((stations[0].user.as_str(), stations[0].transport), ("agent9", "ws"));
    assert!(stations[0].contact.to_lowercase().contains(";transport=ws"), "JsSIP's contact: {stations:?}");

    let mut call = gw.call_station("agent9", OFFER.to_vec(), Duration::from_secs(10)).unwrap();
    let invite = next_event().await;
    assert!(invite.contains("\"invite\"") && invite.contains("\"offer_has_audio\":true"), "{invite}");
    let seen = until(&mut call, Duration::from_secs(10), |e| matches!(e, CallEvent::Failed { .. })).await;
    assert!(matches!(seen.last().unwrap(), CallEvent::Failed { status: Some(486), outcome: Outcome::Busy, .. }), "{seen:?}");

    let unregistered = next_event().await;
    assert!(unregistered.contains("\"unregistered\""), "{unregistered}");
    assert!(gw.stations().is_empty());
    let status = tokio::time::timeout(Duration::from_secs(10), node.wait()).await.expect("node exits").unwrap();
    assert!(status.success(), "node: {status}");
}
