//! Inbound calls from trunk addresses and station registration, with SIPp as the peer.

mod common;

use std::time::Duration;

use common::*;
use pacer_sip::{CallEvent, HangupBy};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn inbound_call_from_a_trunk_address() {
    if !sipp_available() {
        return;
    }
    let mut t = trunk("carrier", 5);
    t.inbound_from = vec!["127.0.0.0/8".into()];
    let gw = gateway(vec![t]).await;
    let mut inbound = gw.take_inbound().unwrap();
    let target = gw.local_addr().to_string();
    let sipp = Sipp::start("uac_inbound_call.xml", 1, &["-s", "8005550100", &target]);
    let mut call = tokio::time::timeout(T, inbound.recv()).await.expect("an inbound call within 10 s").unwrap();
    assert_eq!((call.trunk.as_str(), call.caller.as_str(), call.called.as_str()), ("carrier", "+15550003333", "8005550100"));
    assert!(String::from_utf8_lossy(&call.sdp_offer).contains("m=audio"));
    call.ring().unwrap();
    call.answer(OFFER.to_vec()).unwrap();
    let ev = tokio::time::timeout(T, call.next_event()).await.unwrap().unwrap();
    assert!(matches!(ev, CallEvent::Answered(_)), "{ev:?}");
    let ev = tokio::time::timeout(T, call.next_event()).await.unwrap().unwrap();
    assert_eq!(ev, CallEvent::HungUp { by: HangupBy::Remote });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn inbound_call_from_elsewhere_is_refused() {
    if !sipp_available() {
        return;
    }
    let mut t = trunk("carrier", 5);
    t.inbound_from = vec!["192.0.2.0/24".into()];
    let gw = gateway(vec![t]).await;
    let registry = prometheus::Registry::new();
    gw.register_metrics(&registry).unwrap();
    let mut inbound = gw.take_inbound().unwrap();
    let target = gw.local_addr().to_string();
    let sipp = Sipp::start("uac_inbound_refused.xml", 1, &["-s", "8005550100", &target]);
    sipp.assert_passed(T).await;
    assert!(inbound.try_recv().is_err(), "no inbound call is handed over");
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    assert!(text.contains("pacer_sip_blocked_requests_total{reason=\"inbound_not_allowed\"} 1"), "{text}");
}

#[tokio::test]
async fn station_registers_with_digest_auth() {
    if !sipp_available() {
        return;
    }
    let gw = gateway(vec![]).await;
    gw.set_station_password("agent1", "pw1");
    let target = gw.local_addr().to_string();
    let sipp = Sipp::start("uac_register.xml", 1, &["-s", "agent1", "-au", "agent1", "-ap", "pw1", &target]);
    let port = sipp.port;
    sipp.assert_passed(T).await;
    let stations = gw.stations();
    assert_eq!(stations.len(), 1, "{stations:?}");
    assert_eq!(stations[0].user, "agent1");
    assert!(stations[0].contact.contains(&format!(":{port}")), "{stations:?}");
    assert!(stations[0].expires_in <= 120 && stations[0].expires_in >= 100, "{stations:?}");
}

#[tokio::test]
async fn station_with_a_wrong_password_is_refused() {
    if !sipp_available() {
        return;
    }
    let gw = gateway(vec![]).await;
    gw.set_station_password("agent1", "pw1");
    let target = gw.local_addr().to_string();
    let sipp = Sipp::start("uac_register_bad.xml", 1, &["-s", "agent1", "-au", "agent1", "-ap", "nope", &target]);
    sipp.assert_passed(T).await;
    assert!(gw.stations().is_empty());
}
