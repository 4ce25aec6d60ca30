//! One INVITE to one target (a trunk or a station), driven to its end: provisional
//! responses, early media, answer, CANCEL on ring timeout or hang-up (with the 200/CANCEL
//! race), in-dialog requests (re-INVITE and UPDATE for hold, unhold and session refresh),
//! RFC 4028 session timers, BYE from either side.

use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Header, StatusCode, StatusCodeKind, Uri};
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::call::{CallEvent, Failure, HangupBy};
use crate::outcome::{self, Outcome};
use crate::session_timer::{self, Offer, SessionTimer};
use crate::Shared;

/// Where and how one INVITE goes.
pub(crate) struct Target {
    /// Reported in [`CallEvent::Dialing`].
    pub label: String,
    /// `trunk` label of `pacer_sip_calls_total`.
    pub metrics_label: String,
    pub callee: Uri,
    pub caller: Uri,
    pub destination: Option<SipAddr>,
    pub headers: Vec<Header>,
    pub credential: Option<Credential>,
}

/// How one INVITE ended, when it did not end in a call.
enum End {
    Failed(Failure),
    /// 422 Session Interval Too Small: try again with this Min-SE.
    TooSmall(u32),
}

/// One call attempt: `Ok` when the call reached its end with an answer (the final events
/// were sent); `Err` with the failure otherwise. A 422 is retried once with the interval
/// the peer asked for (RFC 4028 §7.4).
pub(crate) async fn attempt(shared: &Shared, target: &Target, offer: &[u8], ring_timeout: Duration, call_id: String, events: &mpsc::UnboundedSender<CallEvent>, hangup: &CancellationToken) -> Result<(), Failure> {
    let mut expires = shared.session_expires;
    for round in 0..2 {
        let id = if round == 0 { call_id.clone() } else { format!("{call_id}-se") };
        match invite(shared, target, offer, ring_timeout, id, events, hangup, expires).await {
            Ok(()) => return Ok(()),
            Err(End::Failed(f)) => return Err(f),
            Err(End::TooSmall(min)) if round == 0 && min > expires && min <= 86_400 => {
                info!(min_se = min, "422 Session Interval Too Small: retrying with the carrier's Min-SE");
                expires = min;
            }
            Err(End::TooSmall(_)) => break,
        }
    }
    Err(Failure { status: Some(422), reason: "Session Interval Too Small".into(), q850: None, outcome: Outcome::Rejected, failover: false })
}

#[allow(clippy::too_many_arguments)]
async fn invite(shared: &Shared, target: &Target, offer: &[u8], ring_timeout: Duration, call_id: String, events: &mpsc::UnboundedSender<CallEvent>, hangup: &CancellationToken, expires: u32) -> Result<(), End> {
    let mut headers = target.headers.clone();
    if expires > 0 {
        headers.push(Header::Supported("timer".into()));
        headers.push(session_timer::session_expires_header(expires, None));
        headers.push(Header::Other("Min-SE".into(), shared.min_session_expires.to_string()));
    }
    let opt = InviteOption {
        caller: target.caller.clone(),
        callee: target.callee.clone(),
        destination: target.destination.clone(),
        content_type: (!offer.is_empty()).then(|| "application/sdp".into()),
        offer: Some(offer.to_vec()),
        contact: shared.contact.clone(),
        credential: target.credential.clone(),
        headers: Some(headers),
        call_id: Some(call_id.clone()),
        ..Default::default()
    };
    // On TCP and TLS the stack would retry a refused connection or a failed handshake on
    // its timers until Timer B (32 s); a transport failure is meant to fail over at once
    // (RFC 3261 §8.1.3.1), so the connection is opened (or found cached) first.
    if let Some(dest) = target.destination.as_ref().filter(|d| d.r#type.is_some_and(|t| t != rsipstack::sip::Transport::Udp)) {
        let connect = shared.endpoint.transport_layer.lookup(dest, None);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(End::Failed(Failure::local(Outcome::NetworkFailure, &format!("cannot reach {dest}: {e}"), true))),
            Err(_) => return Err(End::Failed(Failure::local(Outcome::NetworkFailure, &format!("cannot reach {dest}: connect timed out"), true))),
        }
    }
    let (state_tx, mut state_rx) = shared.dialogs.new_dialog_state_channel();
    let (dialog, mut join) = shared.dialogs.do_invite_async(opt, state_tx).map_err(|e| End::Failed(Failure::local(Outcome::NetworkFailure, &e.to_string(), true)))?;
    events.send(CallEvent::Dialing { trunk: target.label.clone(), call_id }).ok();

    let ring = tokio::time::sleep(ring_timeout);
    tokio::pin!(ring);
    let (mut answered, mut ringing, mut early) = (false, false, false);
    let mut confirmed = None;
    // Set once we sent (or asked for) a CANCEL: what the failure will be reported as.
    let mut cancelled: Option<(Outcome, &str)> = None;
    let mut join_done = false;
    // RFC 4028: the running session timer and its next deadline (refresh, or give up).
    let mut timer: Option<SessionTimer> = None;
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let session_deadline = tokio::time::sleep_until(far_future);
    tokio::pin!(session_deadline);
    let mut refreshing: Option<tokio::task::JoinHandle<rsipstack::Result<Option<rsipstack::sip::Response>>>> = None;
    let cancel = |d: &rsipstack::dialog::invite_dialog::InviteDialog| {
        let d = d.clone();
        // The CANCEL is its own transaction; its answer does not matter to the call, the
        // INVITE's final response (487, or a racing 200 that the stack ACKs then BYEs) does.
        tokio::spawn(async move {
            if let Err(e) = d.cancel().await {
                debug!(error = %e, "CANCEL not confirmed");
            }
        });
    };
    let end = loop {
        tokio::select! {
            st = state_rx.recv() => match st {
                Some(DialogState::Trying(_)) => { events.send(CallEvent::Trying).ok(); }
                Some(DialogState::Early(_, resp)) => {
                    if !resp.body.is_empty() && !early {
                        early = true;
                        events.send(CallEvent::EarlyMedia(resp.body.clone())).ok();
                    } else if !ringing && !early {
                        ringing = true;
                        events.send(CallEvent::Ringing).ok();
                    }
                }
                Some(DialogState::Confirmed(id, resp)) if !answered && cancelled.is_none() => {
                    answered = true;
                    confirmed = Some(id);
                    shared.metrics.calls.with_label_values(&[&target.metrics_label, "answered"]).inc();
                    timer = SessionTimer::from_uac_response(&resp.headers);
                    if let Some(t) = timer {
                        debug!(interval = ?t.interval, we_refresh = t.we_refresh, "session timer running");
                        session_deadline.as_mut().reset(t.deadline(Instant::now()));
                    }
                    events.send(CallEvent::Answered(resp.body.clone())).ok();
                }
                Some(DialogState::Updated(_, request, handle)) => {
                    if let Some(t) = answer_in_dialog(shared, &request, handle, offer).await {
                        timer = Some(t);
                        session_deadline.as_mut().reset(t.deadline(Instant::now()));
                    }
                }
                Some(DialogState::Options(_, _, h) | DialogState::Info(_, _, h) | DialogState::Notify(_, _, h) | DialogState::Message(_, _, h)) => {
                    h.reply(StatusCode::OK).await.ok();
                }
                Some(DialogState::Refer(_, _, h) | DialogState::Publish(_, _, h)) => {
                    h.reply(StatusCode::Decline).await.ok();
                }
                Some(DialogState::Terminated(_, reason)) if answered => {
                    let by = if matches!(reason, TerminatedReason::UacBye) { HangupBy::Local } else { HangupBy::Remote };
                    events.send(CallEvent::HungUp { by }).ok();
                    break Ok(());
                }
                Some(_) => {}
                None if answered => {
                    events.send(CallEvent::HungUp { by: HangupBy::Remote }).ok();
                    break Ok(());
                }
                None => {
                    if join_done {
                        break Err(End::Failed(Failure::local(Outcome::NetworkFailure, "dialog ended without a final response", false)));
                    }
                    // The state channel closed first: the INVITE's result still decides.
                    let r = (&mut join).await;
                    join_done = true;
                    if let Some(e) = final_failure(r, cancelled) {
                        break Err(e);
                    }
                }
            },
            r = &mut join, if !join_done => {
                join_done = true;
                if let Some(e) = final_failure(r, cancelled) {
                    break Err(e);
                }
            }
            _ = &mut ring, if !answered && cancelled.is_none() => {
                info!(timeout = ?ring_timeout, "ring timeout, cancelling");
                cancelled = Some((Outcome::NoAnswer, "ring timeout"));
                cancel(&dialog);
            }
            _ = &mut session_deadline, if answered && timer.is_some() && refreshing.is_none() => {
                let t = timer.expect("guarded by the branch condition");
                if t.we_refresh {
                    // Same SDP, same version: a refresh changes nothing in the session (RFC 4028 §9).
                    let secs = t.interval.as_secs() as u32;
                    let hdrs = vec![
                        Header::Supported("timer".into()),
                        session_timer::session_expires_header(secs, Some(session_timer::Refresher::Uac)),
                        Header::ContentType("application/sdp".into()),
                    ];
                    let (d, body) = (dialog.clone(), offer.to_vec());
                    refreshing = Some(tokio::spawn(async move { d.reinvite(Some(hdrs), Some(body)).await }));
                    session_deadline.as_mut().reset(far_future);
                } else {
                    info!(interval = ?t.interval, "session expired without a refresh from the far end, hanging up");
                    if let Err(e) = dialog.bye_with_reason("SIP;cause=408;text=\"Session expired\"".into()).await {
                        warn!(error = %e, "BYE failed");
                    }
                    events.send(CallEvent::HungUp { by: HangupBy::Remote }).ok();
                    break Ok(());
                }
            }
            r = async { refreshing.as_mut().expect("guarded by the branch condition").await }, if refreshing.is_some() => {
                refreshing = None;
                match r {
                    Ok(Ok(Some(resp))) if resp.status_code.kind() == StatusCodeKind::Successful => {
                        let t = SessionTimer::from_uac_response(&resp.headers).or(timer);
                        timer = t;
                        if let Some(t) = t {
                            session_deadline.as_mut().reset(t.deadline(Instant::now()));
                        }
                        debug!("session refreshed");
                    }
                    other => {
                        // RFC 4028 §10: a refresh that fails (408, 481, no answer) ends the session.
                        let status = match &other { Ok(Ok(Some(r))) => Some(r.status_code.code()), _ => None };
                        info!(?status, "session refresh failed, hanging up");
                        if let Err(e) = dialog.bye().await {
                            debug!(error = %e, "BYE after a failed refresh");
                        }
                        events.send(CallEvent::HungUp { by: HangupBy::Remote }).ok();
                        break Ok(());
                    }
                }
            }
            _ = hangup.cancelled(), if cancelled.is_none() => {
                if answered {
                    events.send(CallEvent::HungUp { by: HangupBy::Local }).ok();
                    if let Err(e) = dialog.bye().await {
                        warn!(error = %e, "BYE failed");
                    }
                    break Ok(());
                }
                cancelled = Some((Outcome::Cancelled, "hung up before answer"));
                cancel(&dialog);
            }
        }
    };
    if let Some(task) = refreshing {
        task.abort();
    }
    if let Some(id) = confirmed {
        shared.dialogs.remove_dialog(&id);
    }
    end
}

/// Answers a re-INVITE or UPDATE in an established call (hold, unhold, session refresh).
/// Our media does not change, so an offer is answered with our SDP again (RFC 3264 §8); a
/// session-timer request is accepted (or refused with 422 when shorter than our Min-SE).
/// Returns the session timer the request set up, if any.
pub(crate) async fn answer_in_dialog(shared: &Shared, request: &rsipstack::sip::Request, handle: rsipstack::dialog::dialog::TransactionHandle, our_sdp: &[u8]) -> Option<SessionTimer> {
    let decision = session_timer::answer(&request.headers, shared.min_session_expires);
    if let Offer::TooSmall { min } = decision {
        let hdrs = vec![Header::Other("Min-SE".into(), min.to_string())];
        handle.respond(StatusCode::from(422), Some(hdrs), None).await.ok();
        return None;
    }
    let body = (!request.body.is_empty()).then(|| our_sdp.to_vec());
    let mut hdrs = decision.headers();
    if body.is_some() {
        hdrs.push(Header::ContentType("application/sdp".into()));
    }
    debug!(method = %request.method, timer = ?decision, "in-dialog request answered");
    handle.respond(StatusCode::OK, Some(hdrs), body).await.ok();
    decision.timer()
}
type InviteResult = Result<rsipstack::dialog::invitation::InviteAsyncResult, tokio::task::JoinError>;

/// The failure a completed INVITE transaction means, or `None` when it was answered (the
/// `Confirmed` state carries on). A 2xx after our CANCEL is a failure: the stack has ACKed
/// it and sent BYE (RFC 3261 §15), the call is reported as the cancel's outcome.
fn final_failure(r: InviteResult, cancelled: Option<(Outcome, &str)>) -> Option<End> {
    final_failure_of(r, cancelled).map(|f| match f {
        Ok(min) => End::TooSmall(min),
        Err(f) => End::Failed(f),
    })
}

/// `Ok(min_se)` for a 422 that names a Min-SE.
fn final_failure_of(r: InviteResult, cancelled: Option<(Outcome, &str)>) -> Option<Result<u32, Failure>> {
    let resp = match r {
        Ok(Ok((_, resp))) => resp,
        Ok(Err(e)) => {
            return Some(Err(match cancelled {
                Some((o, why)) => Failure::local(o, why, false),
                None => Failure::local(Outcome::NetworkFailure, &format!("INVITE failed: {e}"), true),
            }));
        }
        Err(e) => return Some(Err(Failure::local(Outcome::NetworkFailure, &format!("INVITE task failed: {e}"), false))),
    };
    let Some(resp) = resp else {
        return Some(Err(match cancelled {
            Some((o, why)) => Failure::local(o, why, false),
            None => Failure::local(Outcome::NetworkFailure, "no final response to INVITE", true),
        }));
    };
    let status = resp.status_code.code();
    if resp.status_code.kind() == StatusCodeKind::Successful {
        return cancelled.map(|(o, why)| Err(Failure {
            status: Some(status),
            reason: format!("{why}; the 200 that crossed the CANCEL was ACKed and ended with BYE"),
            q850: None,
            outcome: o,
            failover: false,
        }));
    }
    if status == 422 && cancelled.is_none() {
        if let Some(min) = session_timer::min_se(&resp.headers) {
            return Some(Ok(min));
        }
    }
    let q850 = outcome::q850_cause(&resp);
    let reason = q850.as_ref().and_then(|(_, t)| t.clone()).unwrap_or_else(|| resp.status_code.to_string());
    let cause = q850.map(|(c, _)| c);
    Some(Err(match cancelled {
        Some((o, _)) => Failure { status: Some(status), reason, q850: cause, outcome: o, failover: false },
        None => Failure { status: Some(status), reason, q850: cause, outcome: outcome::classify(status, cause), failover: outcome::fails_over(status) },
    }))
}
