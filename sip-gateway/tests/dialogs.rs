//! In-dialog requests and RFC 4028 session timers on outbound calls, against SIPp carriers.

mod common;

use std::time::Duration;

use common::*;
use pacer_config::SipConfig;
use pacer_sip::{CallEvent, HangupBy, OriginateRequest};

const T: Duration = Duration::from_secs(10);

fn request() -> OriginateRequest {
    OriginateRequest { trunk: "a".into(), number: "5551234".into(), caller_id: None, sdp_offer: OFFER.to_vec(), ring_timeout: Duration::from_secs(5) }
}

/// Session intervals of seconds, so that refreshes happen within a test (the configuration
/// check insists on RFC 4028's 90 s minimum; the gateway itself takes what it is given).
fn short_timers() -> SipConfig {
    SipConfig { session_expires_s: 4, min_session_expires_s: 1, ..sip_config() }
}

#[tokio::test]
async fn hold_reinvite_and_update_refresh_are_answered() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_reinvite_update.xml", 1, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request()).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    // SIPp checks our 200s (SDP for the re-INVITE, Session-Expires for the UPDATE), then hangs up.
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Remote });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn we_refresh_the_session_when_the_carrier_says_so() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_session_refresh.xml", 1, &[]);
    let gw = gateway_with(short_timers(), vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request()).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    // The carrier hangs up only after it received our refreshing re-INVITE.
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Remote });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn a_session_the_carrier_never_refreshes_is_ended() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_session_expire.xml", 1, &[]);
    let gw = gateway_with(short_timers(), vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request()).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Remote });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn interval_too_small_is_retried_with_the_carriers_min_se() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_422.xml", 2, &[]);
    let gw = gateway(vec![trunk("a", sipp.port)]).await;
    let mut call = gw.originate(request()).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Answered(_) | CallEvent::Failed { .. })).await;
    assert!(matches!(seen.last().unwrap(), CallEvent::Answered(_)), "{seen:?}");
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn inbound_invite_with_a_too_short_session_gets_422() {
    if !sipp_available() {
        return;
    }
    let mut t = trunk("carrier", 5);
    t.inbound_from = vec!["127.0.0.0/8".into()];
    let gw = gateway(vec![t]).await;
    let mut inbound = gw.take_inbound().unwrap();
    let target = gw.local_addr().to_string();
    let sipp = Sipp::start("uac_inbound_short_session.xml", 1, &["-s", "8005550100", &target]);
    sipp.assert_passed(T).await;
    assert!(inbound.try_recv().is_err(), "a refused session is not handed over");
}
