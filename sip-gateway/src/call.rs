//! Outbound calls: the request the application makes, the events it gets back, and the
//! owner task that drives one call across its trunk attempts (failover) to the end.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Header, StatusCode, StatusCodeKind, Uri};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::outcome::{self, Outcome};
use crate::trunk::{Trunk, check_digits};
use crate::{GatewayError, Shared};

/// "Call this number on this trunk with this SDP offer."
#[derive(Debug, Clone)]
pub struct OriginateRequest {
    /// Name of the first trunk to try; its `failover` trunks follow on 503, 408 or no answer
    /// from the carrier at all.
    pub trunk: String,
    /// The number to call, before the trunk's rewriting (digits, `+`, `*`, `#`).
    pub number: String,
    /// Caller ID for From and P-Asserted-Identity; the trunk's `caller_id` when `None`.
    pub caller_id: Option<String>,
    /// SDP offer sent with the INVITE (may be empty for a late offer).
    pub sdp_offer: Vec<u8>,
    /// How long the call may ring (or wait for any answer) before it is cancelled.
    pub ring_timeout: Duration,
}

/// Who ended an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupBy {
    /// The application ([`CallHandle::hangup`]).
    Local,
    /// The far end (BYE), or the dialog ended without us (missing ACK, timeout).
    Remote,
}

/// What happens to an outbound call, in order. The stream ends after `Failed` or `HungUp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// An INVITE went out on `trunk` with this Call-ID (again after a failover).
    Dialing { trunk: String, call_id: String },
    /// 100 Trying.
    Trying,
    /// 180/183 without SDP.
    Ringing,
    /// 183 (or 180) with an SDP answer: early media (announcements, ring-back, SIT tones).
    EarlyMedia(Vec<u8>),
    /// 200 OK: the body is the SDP answer. The ACK has been sent.
    Answered(Vec<u8>),
    /// The call ended without an answer.
    Failed {
        /// Final SIP status, `None` when no final response came (timeout, refused locally).
        status: Option<u16>,
        /// Reason phrase, Q.850 text, or why the gateway refused the call.
        reason: String,
        /// Q.850 cause from the `Reason` header.
        q850: Option<u16>,
        outcome: Outcome,
    },
    /// An answered call ended.
    HungUp { by: HangupBy },
}

/// The application's end of an outbound call. Dropping it hangs the call up.
pub struct CallHandle {
    id: String,
    events: mpsc::UnboundedReceiver<CallEvent>,
    hangup: CancellationToken,
    _guard: DropGuard,
}

impl CallHandle {
    /// Call-ID of the first INVITE (a failover attempt uses `<id>-<n>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Next event, or `None` once the call is over and every event was read.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }

    /// Ends the call: CANCEL while it rings, BYE once answered. Idempotent.
    pub fn hangup(&self) {
        self.hangup.cancel();
    }
}

/// A failed attempt: the event to report unless another trunk is tried.
struct Failure {
    status: Option<u16>,
    reason: String,
    q850: Option<u16>,
    outcome: Outcome,
    failover: bool,
}

impl Failure {
    fn local(outcome: Outcome, reason: &str, failover: bool) -> Self {
        Failure { status: None, reason: reason.into(), q850: None, outcome, failover }
    }
    fn event(self) -> CallEvent {
        CallEvent::Failed { status: self.status, reason: self.reason, q850: self.q850, outcome: self.outcome }
    }
}

/// Validates the request, starts the call's owner task and returns its handle.
pub(crate) fn originate(shared: &Arc<Shared>, req: OriginateRequest) -> Result<CallHandle, GatewayError> {
    let first = shared.trunk_index(&req.trunk).ok_or_else(|| GatewayError::UnknownTrunk(req.trunk.clone()))?;
    check_digits("number", &req.number)?;
    if let Some(cid) = &req.caller_id {
        check_digits("caller_id", cid)?;
    }
    let mut order = vec![first];
    for name in &shared.trunks[first].cfg.failover {
        match shared.trunk_index(name) {
            Some(i) if !order.contains(&i) => order.push(i),
            _ => {}
        }
    }
    let id = rsipstack::transaction::random_text(24);
    let (tx, rx) = mpsc::unbounded_channel();
    let hangup = CancellationToken::new();
    let span = info_span!("call", call_id = %id, number = %req.number);
    tokio::spawn(run(shared.clone(), req, order, id.clone(), tx, hangup.clone()).instrument(span));
    Ok(CallHandle { id, events: rx, hangup: hangup.clone(), _guard: hangup.drop_guard() })
}

async fn run(shared: Arc<Shared>, req: OriginateRequest, order: Vec<usize>, id: String, events: mpsc::UnboundedSender<CallEvent>, hangup: CancellationToken) {
    let mut last = Failure::local(Outcome::NetworkFailure, "no trunk available", false);
    for (attempt, &idx) in order.iter().enumerate() {
        let trunk = shared.trunks[idx].clone();
        if !trunk.is_up() {
            last = Failure::local(Outcome::NetworkFailure, &format!("trunk {} is down", trunk.name()), true);
            continue;
        }
        let Some(permit) = trunk.try_acquire(&shared.metrics) else {
            last = Failure::local(Outcome::Congestion, &format!("trunk {} is at max_concurrent", trunk.name()), true);
            continue;
        };
        let now = tokio::time::Instant::now();
        let Some(slot) = trunk.reserve_slot(now, req.ring_timeout) else {
            last = Failure::local(Outcome::Congestion, &format!("trunk {} is at max_cps", trunk.name()), true);
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(slot) => {}
            _ = hangup.cancelled() => {
                last = Failure::local(Outcome::Cancelled, "hung up before dialling", false);
                break;
            }
        }
        let call_id = if attempt == 0 { id.clone() } else { format!("{id}-{attempt}") };
        let span = info_span!("attempt", call_id = %call_id, trunk = %trunk.name());
        let result = attempt_call(&shared, &trunk, &req, call_id, &events, &hangup).instrument(span).await;
        drop(permit);
        match result {
            Ok(()) => return,
            Err(f) => {
                shared.metrics.calls.with_label_values(&[trunk.name(), f.outcome.as_str()]).inc();
                let failover = f.failover && !hangup.is_cancelled();
                last = f;
                if !failover {
                    break;
                }
                info!(trunk = %trunk.name(), reason = %last.reason, "trying the next trunk");
            }
        }
    }
    events.send(last.event()).ok();
}

/// One INVITE on one trunk. `Ok` when the call reached its end with an answer (the final
/// events were sent); `Err` with the failure otherwise.
async fn attempt_call(shared: &Shared, trunk: &Arc<Trunk>, req: &OriginateRequest, call_id: String, events: &mpsc::UnboundedSender<CallEvent>, hangup: &CancellationToken) -> Result<(), Failure> {
    let internal = |e: &dyn std::fmt::Display| Failure::local(Outcome::NetworkFailure, &e.to_string(), false);
    let number = trunk.rewrite(&req.number);
    let callee = trunk.request_uri(&number).map_err(|e| internal(&e))?;
    let cid = req.caller_id.clone().or_else(|| trunk.cfg.caller_id.clone());
    let user = cid.clone().unwrap_or_else(|| "anonymous".into());
    let caller = Uri::try_from(format!("sip:{user}@{}", shared.host)).map_err(|e| internal(&e))?;
    let mut headers = Vec::new();
    if let Some(cid) = &cid {
        // Carriers take the billed/presented number from P-Asserted-Identity (RFC 3325).
        headers.push(Header::Other("P-Asserted-Identity".into(), format!("<sip:{cid}@{}>", shared.host)));
    }
    let credential = match (&trunk.cfg.username, &trunk.cfg.password) {
        (Some(u), Some(p)) => Some(Credential { username: u.clone(), password: p.clone(), realm: None, auth_username: None }),
        _ => None,
    };
    let opt = InviteOption {
        caller,
        callee,
        destination: Some(trunk.dest.clone()),
        content_type: (!req.sdp_offer.is_empty()).then(|| "application/sdp".into()),
        offer: Some(req.sdp_offer.clone()),
        contact: shared.contact.clone(),
        credential,
        headers: Some(headers),
        call_id: Some(call_id.clone()),
        ..Default::default()
    };
    let (state_tx, mut state_rx) = shared.dialogs.new_dialog_state_channel();
    let (dialog, mut join) = shared.dialogs.do_invite_async(opt, state_tx).map_err(|e| Failure::local(Outcome::NetworkFailure, &e.to_string(), true))?;
    events.send(CallEvent::Dialing { trunk: trunk.name().into(), call_id }).ok();

    let ring = tokio::time::sleep(req.ring_timeout);
    tokio::pin!(ring);
    let (mut answered, mut ringing, mut early) = (false, false, false);
    let mut confirmed = None;
    // Set once we sent (or asked for) a CANCEL: what the failure will be reported as.
    let mut cancelled: Option<(Outcome, &str)> = None;
    let mut join_done = false;
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
                    shared.metrics.calls.with_label_values(&[trunk.name(), "answered"]).inc();
                    events.send(CallEvent::Answered(resp.body.clone())).ok();
                }
                Some(DialogState::Updated(_, request, handle)) => {
                    // re-INVITE / UPDATE (hold, unhold, session refresh): our media does not
                    // change, so the answer is our offer again (RFC 3264 §8).
                    let body = (!request.body.is_empty()).then(|| req.sdp_offer.clone());
                    let hdrs = body.as_ref().map(|_| vec![Header::ContentType("application/sdp".into())]);
                    handle.respond(StatusCode::OK, hdrs, body).await.ok();
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
                        break Err(Failure::local(Outcome::NetworkFailure, "dialog ended without a final response", false));
                    }
                    // The state channel closed first: the INVITE's result still decides.
                    let r = (&mut join).await;
                    join_done = true;
                    if let Some(f) = final_failure(r, cancelled) {
                        break Err(f);
                    }
                }
            },
            r = &mut join, if !join_done => {
                join_done = true;
                if let Some(f) = final_failure(r, cancelled) {
                    break Err(f);
                }
            }
            _ = &mut ring, if !answered && cancelled.is_none() => {
                info!(timeout = ?req.ring_timeout, "ring timeout, cancelling");
                cancelled = Some((Outcome::NoAnswer, "ring timeout"));
                cancel(&dialog);
            }
            _ = hangup.cancelled(), if cancelled.is_none() && !(answered && confirmed.is_none()) => {
                if answered {
                    events.send(CallEvent::HungUp { by: HangupBy::Local }).ok();
                    if let Err(e) = dialog.bye().await {
                        warn!(error = %e, "BYE failed");
                    }
                    confirmed.take().map(|id| shared.dialogs.remove_dialog(&id));
                    break Ok(());
                }
                cancelled = Some((Outcome::Cancelled, "hung up before answer"));
                cancel(&dialog);
            }
        }
    };
    if let Some(id) = confirmed {
        shared.dialogs.remove_dialog(&id);
    }
    end
}

type InviteResult = Result<rsipstack::dialog::invitation::InviteAsyncResult, tokio::task::JoinError>;

/// The failure a completed INVITE transaction means, or `None` when it was answered (the
/// `Confirmed` state carries on). A 2xx after our CANCEL is a failure: the stack has ACKed
/// it and sent BYE (RFC 3261 §15), the call is reported as the cancel's outcome.
fn final_failure(r: InviteResult, cancelled: Option<(Outcome, &str)>) -> Option<Failure> {
    let resp = match r {
        Ok(Ok((_, resp))) => resp,
        Ok(Err(e)) => {
            return Some(match cancelled {
                Some((o, why)) => Failure::local(o, why, false),
                None => Failure::local(Outcome::NetworkFailure, &format!("INVITE failed: {e}"), true),
            });
        }
        Err(e) => return Some(Failure::local(Outcome::NetworkFailure, &format!("INVITE task failed: {e}"), false)),
    };
    let Some(resp) = resp else {
        return Some(match cancelled {
            Some((o, why)) => Failure::local(o, why, false),
            None => Failure::local(Outcome::NetworkFailure, "no final response to INVITE", true),
        });
    };
    let status = resp.status_code.code();
    if resp.status_code.kind() == StatusCodeKind::Successful {
        return cancelled.map(|(o, why)| Failure {
            status: Some(status),
            reason: format!("{why}; the 200 that crossed the CANCEL was ACKed and ended with BYE"),
            q850: None,
            outcome: o,
            failover: false,
        });
    }
    let q850 = outcome::q850_cause(&resp);
    let reason = q850.as_ref().and_then(|(_, t)| t.clone()).unwrap_or_else(|| resp.status_code.to_string());
    let cause = q850.map(|(c, _)| c);
    Some(match cancelled {
        Some((o, _)) => Failure { status: Some(status), reason, q850: cause, outcome: o, failover: false },
        None => Failure { status: Some(status), reason, q850: cause, outcome: outcome::classify(status, cause), failover: outcome::fails_over(status) },
    })
}
