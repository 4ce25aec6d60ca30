//! Outbound calls against SIPp carriers.

mod common;

use std::time::Duration;

use common::*;
use pacer_sip::{CallEvent, HangupBy, OriginateRequest, Outcome};

const T: Duration = Duration::from_secs(10);

fn request(trunk: &str, number: &str, ring_timeout: Duration) -> OriginateRequest {
    OriginateRequest { trunk: trunk.into(), number: number.into(), caller_id: None, sdp_offer: OFFER.to_vec(), ring_timeout }
}

#[tokio::test]
async fn answered_call_then_our_bye() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_answer.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    assert_ne!(gw.local_addr().port(), 0);
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    assert!(matches!(&seen[0], CallEvent::Dialing { trunk, .. } if trunk == "a"), "{seen:?}");
    assert!(seen.contains(&CallEvent::Trying), "{seen:?}");
    assert!(seen.contains(&CallEvent::Ringing), "{seen:?}");
    let CallEvent::Answered(sdp) = seen.last().unwrap() else { unreachable!() };
    assert!(String::from_utf8_lossy(sdp).contains("m=audio"), "answer SDP: {sdp:?}");
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn far_end_hangs_up_first() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_remote_bye.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Remote });
    sipp.assert_passed(T).await;
}

fn failed(ev: &CallEvent) -> bool {
    matches!(ev, CallEvent::Failed { .. })
}

#[tokio::test]
async fn busy_maps_to_busy_with_q850_cause() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_busy.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    let seen = until(&mut call, T, failed).await;
    assert_eq!(
        seen.last().unwrap(),
        &CallEvent::Failed { status: Some(486), reason: "User busy".into(), q850: Some(17), outcome: Outcome::Busy }
    );
    sipp.assert_passed(T).await;
    assert!(tokio::time::timeout(T, call.next_event()).await.unwrap().is_none(), "the stream ends after Failed");
}

#[tokio::test]
async fn congestion_503_fails_over_to_the_next_trunk() {
    if !sipp_available() {
        return;
    }
    let busy = Sipp::start("uas_503.xml", 1, &[]);
    let good = Sipp::start("uas_answer.xml", 1, &[]);
    let mut a = trunk("a", busy.port);
    a.failover = vec!["b".into()];
    let gw = gateway(vec![a, trunk("b", good.port)]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    let trunks: Vec<_> = seen.iter().filter_map(|e| if let CallEvent::Dialing { trunk, .. } = e { Some(trunk.as_str()) } else { None }).collect();
    assert_eq!(trunks, ["a", "b"], "{seen:?}");
    busy.assert_passed(T).await;
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    good.assert_passed(T).await;
}

#[tokio::test]
async fn congestion_503_without_failover_is_congestion() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_503.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    let seen = until(&mut call, T, failed).await;
    assert!(matches!(seen.last().unwrap(), CallEvent::Failed { status: Some(503), outcome: Outcome::Congestion, .. }), "{seen:?}");
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn ring_timeout_sends_cancel() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_ring_out.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_millis(500))).unwrap();
    let seen = until(&mut call, T, failed).await;
    assert!(seen.contains(&CallEvent::Ringing), "{seen:?}");
    assert!(matches!(seen.last().unwrap(), CallEvent::Failed { status: Some(487), outcome: Outcome::NoAnswer, .. }), "{seen:?}");
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn answer_crossing_cancel_is_acked_then_byed() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_cancel_race.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_millis(300))).unwrap();
    let seen = until(&mut call, T, failed).await;
    assert!(!seen.iter().any(|e| matches!(e, CallEvent::Answered(_))), "a cancelled call is never reported answered: {seen:?}");
    assert!(matches!(seen.last().unwrap(), CallEvent::Failed { status: Some(200), outcome: Outcome::NoAnswer, .. }), "{seen:?}");
    // SIPp passes only when it received the ACK and then the BYE.
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn digest_challenge_is_answered() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_auth.xml", 1, &[]);
    let mut t = trunk("a", sipp.port);
    (t.username, t.password) = (Some("carrier".into()), Some("secret".into()));
    let gw = gateway(vec![t]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn early_media_carries_the_sdp() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_early_media.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    let early = seen.iter().find_map(|e| if let CallEvent::EarlyMedia(sdp) = e { Some(sdp.clone()) } else { None });
    assert!(early.is_some_and(|sdp| String::from_utf8_lossy(&sdp).contains("m=audio")), "{seen:?}");
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn digest_401_response_is_verified_by_the_carrier() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_auth_401.xml", 1, &[]);
    let mut t = trunk("a", sipp.port);
    (t.username, t.password) = (Some("carrier".into()), Some("secret".into()));
    let gw = gateway(vec![t]).await;
    let mut call = gw.originate(request("a", "5551234", Duration::from_secs(20))).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    sipp.assert_passed(T).await;
}
