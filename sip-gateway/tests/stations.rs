//! Stations with SIPp as the desk phone: rung (busy, no answer, answered) after registering
//! over UDP, and dialling in with digest credentials for the agent's persistent leg.

mod common;

use std::time::Duration;

use common::*;
use pacer_sip::{CallEvent, HangupBy, Outcome, SipGateway};

const T: Duration = Duration::from_secs(10);

/// Registers `agent1` from SIPp on `port` (SIPp then exits; the next scenario binds the
/// same port, where the registered Contact points).
async fn registered(gw: &SipGateway) -> u16 {
    gw.set_station_password("agent1", "pw1");
    let port = free_port();
    let target = gw.local_addr().to_string();
    Sipp::start_on(port, "uac_register.xml", 1, &["-s", "agent1", "-au", "agent1", "-ap", "pw1", &target]).assert_passed(T).await;
    assert_eq!(gw.stations()[0].transport, "udp");
    port
}

#[tokio::test]
async fn ringing_a_busy_station() {
    if !sipp_available() {
        return;
    }
    let gw = gateway(vec![]).await;
    let port = registered(&gw).await;
    let phone = Sipp::start_on(port, "uas_busy.xml", 1, &[]);
    let mut call = gw.call_station("agent1", OFFER.to_vec(), Duration::from_secs(5)).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Failed { .. })).await;
    assert!(matches!(&seen[0], CallEvent::Dialing { trunk, .. } if trunk == "station:agent1"), "{seen:?}");
    assert!(matches!(seen.last().unwrap(), CallEvent::Failed { status: Some(486), outcome: Outcome::Busy, .. }), "{seen:?}");
    phone.assert_passed(T).await;
}

#[tokio::test]
async fn ringing_a_station_nobody_answers() {
    if !sipp_available() {
        return;
    }
    let gw = gateway(vec![]).await;
    let port = registered(&gw).await;
    let phone = Sipp::start_on(port, "uas_ring_out.xml", 1, &[]);
    let mut call = gw.call_station("agent1", OFFER.to_vec(), Duration::from_millis(500)).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Failed { .. })).await;
    assert!(seen.contains(&CallEvent::Ringing), "{seen:?}");
    assert!(matches!(seen.last().unwrap(), CallEvent::Failed { status: Some(487), outcome: Outcome::NoAnswer, .. }), "{seen:?}");
    phone.assert_passed(T).await;
}

#[tokio::test]
async fn ringing_a_station_that_answers() {
    if !sipp_available() {
        return;
    }
    let gw = gateway(vec![]).await;
    let port = registered(&gw).await;
    let phone = Sipp::start_on(port, "uas_answer.xml", 1, &[]);
    let mut call = gw.call_station("agent1", OFFER.to_vec(), Duration::from_secs(5)).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    phone.assert_passed(T).await;
}

#[tokio::test]
async fn unregistered_station_cannot_be_rung() {
    let gw = gateway(vec![]).await;
    let err = gw.call_station("nobody", OFFER.to_vec(), Duration::from_secs(1)).err().expect("refused");
    assert!(err.to_string().contains("`nobody` is not registered"), "{err}");
}

#[tokio::test]
async fn station_dials_in_with_digest_credentials() {
    if !sipp_available() {
        return;
    }
    let gw = gateway(vec![]).await;
    gw.set_station_password("agent1", "pw1");
    let mut inbound = gw.take_inbound().unwrap();
    let target = gw.local_addr().to_string();
    let phone = Sipp::start("uac_station_call.xml", 1, &["-s", "login", "-au", "agent1", "-ap", "pw1", &target]);
    let mut call = tokio::time::timeout(T, inbound.recv()).await.expect("the station's call within 10 s").unwrap();
    assert_eq!((call.station.as_deref(), call.trunk.as_str(), call.called.as_str(), call.caller.as_str()), (Some("agent1"), "", "login", "agent1"));
    call.answer(OFFER.to_vec()).unwrap();
    let ev = tokio::time::timeout(T, call.next_event()).await.unwrap().unwrap();
    assert!(matches!(ev, CallEvent::Answered(_)), "{ev:?}");
    let ev = tokio::time::timeout(T, call.next_event()).await.unwrap().unwrap();
    assert_eq!(ev, CallEvent::HungUp { by: HangupBy::Remote });
    phone.assert_passed(T).await;
}

#[tokio::test]
async fn station_dialling_in_with_a_wrong_password_is_refused() {
    if !sipp_available() {
        return;
    }
    let gw = gateway(vec![]).await;
    gw.set_station_password("agent1", "pw1");
    let mut inbound = gw.take_inbound().unwrap();
    let target = gw.local_addr().to_string();
    // The scenario expects a 200 after its credentials; a 403 makes it fail.
    let phone = Sipp::start("uac_station_call.xml", 1, &["-s", "login", "-au", "agent1", "-ap", "wrong", &target]);
    let status = {
        let deadline = std::time::Instant::now() + T;
        loop {
            if metrics_text(&gw).contains("pacer_sip_blocked_requests_total{reason=\"bad_credentials\"} 1") {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(status, "the wrong credentials are counted");
    assert!(inbound.try_recv().is_err(), "no call is handed over");
    drop(phone);
}
