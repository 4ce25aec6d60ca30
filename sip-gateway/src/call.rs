//! Outbound calls: the request the application makes, the events it gets back, and the
//! owner task that drives one call across its trunk attempts (failover) to the end.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::sip::{Header, Uri};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Instrument, info, info_span};

use crate::leg::{Target, attempt};
use crate::outcome::Outcome;
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
    /// An INVITE went out on `trunk` with this Call-ID (again after a failover). For a call
    /// to a station ([`crate::SipGateway::call_station`]) `trunk` is `station:<user>`.
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
pub(crate) struct Failure {
    pub status: Option<u16>,
    pub reason: String,
    pub q850: Option<u16>,
    pub outcome: Outcome,
    pub failover: bool,
}

impl Failure {
    pub fn local(outcome: Outcome, reason: &str, failover: bool) -> Self {
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

/// Rings a registered station: one INVITE to its Contact, over the connection it registered
/// from (so a WebSocket or TCP station is reached through its own connection).
pub(crate) fn call_station(shared: &Arc<Shared>, user: &str, sdp_offer: Vec<u8>, ring_timeout: Duration) -> Result<CallHandle, GatewayError> {
    let (contact, route) = shared.registrar.lookup(user).ok_or_else(|| GatewayError::StationNotRegistered(user.to_string()))?;
    let callee = Uri::try_from(contact.as_str()).map_err(|e| GatewayError::Stack(e.into()))?;
    let caller = Uri::try_from(format!("sip:pacer@{}", shared.domain)).map_err(|e| GatewayError::Stack(e.into()))?;
    let target = Target {
        label: format!("station:{user}"),
        metrics_label: "station".into(),
        callee,
        caller,
        destination: route,
        headers: Vec::new(),
        credential: None,
    };
    let id = rsipstack::transaction::random_text(24);
    let (tx, rx) = mpsc::unbounded_channel();
    let hangup = CancellationToken::new();
    let span = info_span!("station_call", call_id = %id, station = %user);
    let (shared, call_id, token) = (shared.clone(), id.clone(), hangup.clone());
    tokio::spawn(
        async move {
            if let Err(f) = attempt(&shared, &target, &sdp_offer, ring_timeout, call_id, &tx, &token).await {
                shared.metrics.calls.with_label_values(&["station", f.outcome.as_str()]).inc();
                tx.send(f.event()).ok();
            }
        }
        .instrument(span),
    );
    Ok(CallHandle { id, events: rx, hangup: hangup.clone(), _guard: hangup.drop_guard() })
}

/// How a call goes out on `trunk`: rewritten number, caller ID in From and
/// P-Asserted-Identity, the trunk's credentials.
fn trunk_target(shared: &Shared, trunk: &Trunk, req: &OriginateRequest) -> Result<Target, GatewayError> {
    let number = trunk.rewrite(&req.number);
    let callee = trunk.request_uri(&number)?;
    let cid = req.caller_id.clone().or_else(|| trunk.cfg.caller_id.clone());
    let user = cid.clone().unwrap_or_else(|| "anonymous".into());
    let caller = Uri::try_from(format!("sip:{user}@{}", shared.host)).map_err(|e| GatewayError::Stack(e.into()))?;
    let mut headers = Vec::new();
    if let Some(cid) = &cid {
        // Carriers take the billed/presented number from P-Asserted-Identity (RFC 3325).
        headers.push(Header::Other("P-Asserted-Identity".into(), format!("<sip:{cid}@{}>", shared.host)));
    }
    let credential = match (&trunk.cfg.username, &trunk.cfg.password) {
        (Some(u), Some(p)) => Some(Credential { username: u.clone(), password: p.clone(), realm: None, auth_username: None }),
        _ => None,
    };
    Ok(Target {
        label: trunk.name().into(),
        metrics_label: trunk.name().into(),
        callee,
        caller,
        destination: Some(trunk.dest.clone()),
        headers,
        credential,
    })
}

async fn run(shared: Arc<Shared>, req: OriginateRequest, order: Vec<usize>, id: String, events: mpsc::UnboundedSender<CallEvent>, hangup: CancellationToken) {
    let mut last = Failure::local(Outcome::NetworkFailure, "no trunk available", false);
    for (n, &idx) in order.iter().enumerate() {
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
        let call_id = if n == 0 { id.clone() } else { format!("{id}-{n}") };
        let span = info_span!("attempt", call_id = %call_id, trunk = %trunk.name());
        let result = match trunk_target(&shared, &trunk, &req) {
            Ok(target) => attempt(&shared, &target, &req.sdp_offer, req.ring_timeout, call_id, &events, &hangup).instrument(span).await,
            Err(e) => Err(Failure::local(Outcome::NetworkFailure, &e.to_string(), false)),
        };
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

