//! Trunk limits, keep-alives, number rewriting and caller ID, against SIPp carriers.

mod common;

use std::time::Duration;

use common::*;
use pacer_sip::{CallEvent, HangupBy, OriginateRequest, Outcome};

const T: Duration = Duration::from_secs(10);

fn request(number: &str) -> OriginateRequest {
    OriginateRequest { trunk: "a".into(), number: number.into(), caller_id: None, sdp_offer: OFFER.to_vec(), ring_timeout: Duration::from_secs(5) }
}

#[tokio::test]
async fn max_concurrent_refuses_the_excess_call_without_sending_it() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_answer.xml", 1, &[]);
    let mut t = trunk("a", sipp.port);
    t.max_concurrent = 1;
    let gw = gateway(vec![t]).await;
    let mut first = gw.originate(request("5551000")).unwrap();
    until(&mut first, T, |e| matches!(e, CallEvent::Answered(_))).await;
    assert_eq!(gw.trunk_status()[0].calls, 1);
    let mut second = gw.originate(request("5551001")).unwrap();
    let ev = next(&mut second, T).await;
    assert!(matches!(ev, CallEvent::Failed { status: None, outcome: Outcome::Congestion, .. }), "{ev:?}");
    first.hangup();
    assert_eq!(next(&mut first, T).await, CallEvent::HungUp { by: HangupBy::Local });
    // SIPp (-m 1) ends cleanly only if it saw one INVITE: the refused call never went out.
    sipp.assert_passed(T).await;
    assert!(eventually(T, || gw.trunk_status()[0].calls == 0).await);
}

#[tokio::test]
async fn max_cps_spaces_call_starts() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_busy.xml", 3, &[]);
    let mut t = trunk("a", sipp.port);
    t.max_cps = 4;
    let gw = gateway(vec![t]).await;
    let start = tokio::time::Instant::now();
    let mut calls: Vec<_> = (0..3).map(|i| gw.originate(request(&format!("555100{i}"))).unwrap()).collect();
    let mut dialled = Vec::new();
    for call in &mut calls {
        assert!(matches!(next(call, T).await, CallEvent::Dialing { .. }));
        dialled.push(start.elapsed());
    }
    dialled.sort();
    // 4 calls per second: starts at 0, 250 and 500 ms (queued, not refused).
    assert!(dialled[2] >= Duration::from_millis(480), "{dialled:?}");
    assert!(dialled[1] >= Duration::from_millis(230), "{dialled:?}");
    for call in &mut calls {
        until(call, T, |e| matches!(e, CallEvent::Failed { outcome: Outcome::Busy, .. })).await;
    }
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn number_rewriting_and_caller_id() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_check_identity.xml", 1, &[]);
    let mut t = trunk("a", sipp.port);
    (t.strip_prefix, t.add_prefix) = ("+".into(), "00".into());
    let gw = gateway(vec![t]).await;
    let mut req = request("+447700900123");
    req.caller_id = Some("+15550002222".into());
    let mut call = gw.originate(req).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Failed { status: Some(486), .. })).await;
    // SIPp fails the call when the Request-URI, From or P-Asserted-Identity do not match.
    sipp.assert_passed(T).await;
}

#[tokio::test]
async fn options_keepalive_marks_the_trunk_down_then_up() {
    if !sipp_available() {
        return;
    }
    let port = free_port();
    let mut t = trunk("a", port);
    (t.options_interval_s, t.down_after, t.up_after) = (1, 1, 1);
    let gw = gateway(vec![t]).await;
    assert!(eventually(T, || !gw.trunk_status()[0].up).await, "nothing answers: the trunk goes down");
    let mut call = gw.originate(request("5551234")).unwrap();
    let ev = next(&mut call, T).await;
    assert!(matches!(ev, CallEvent::Failed { status: None, outcome: Outcome::NetworkFailure, .. }), "a down trunk is skipped: {ev:?}");
    let _carrier = Sipp::start_on(port, "uas_options.xml", 1000, &[]);
    assert!(eventually(T, || gw.trunk_status()[0].up).await, "keep-alives answered: the trunk comes back");
}
