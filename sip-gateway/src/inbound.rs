//! Requests that arrive on their own: in-dialog requests go to their dialog, OPTIONS is
//! answered, REGISTER goes to the registrar, INVITE becomes an [`InboundCall`] when it comes
//! from a trunk's `inbound_from` address or from a station user that passes digest
//! authentication (an agent's phone dialling in for its persistent media leg), and a 403
//! otherwise.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use rsipstack::dialog::dialog::{Dialog, DialogState, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::registrar::Auth;
use crate::session_timer::{self, Offer};
use crate::{CallEvent, HangupBy, Outcome, Shared};

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO";

/// A call a trunk sent us. Answer it with [`InboundCall::answer`], refuse it with
/// [`InboundCall::reject`]; its progress (ACK, BYE, CANCEL) arrives as [`CallEvent`]s.
pub struct InboundCall {
    /// Call-ID of the INVITE.
    pub call_id: String,
    /// The trunk whose `inbound_from` matched the source; empty for a station's call.
    pub trunk: String,
    /// The station user that authenticated this INVITE (an agent's phone calling in);
    /// `None` for calls from trunks.
    pub station: Option<String>,
    /// User part of the From URI (the caller's number).
    pub caller: String,
    /// User part of the Request-URI (the number called).
    pub called: String,
    /// The INVITE's body (SDP offer), possibly empty.
    pub sdp_offer: Vec<u8>,
    pub source: SocketAddr,
    dialog: InviteDialog,
    events: mpsc::UnboundedReceiver<CallEvent>,
    /// Our SDP once answered: re-INVITEs and UPDATEs are answered with it again.
    answer_sdp: Arc<Mutex<Vec<u8>>>,
    /// The session timer the INVITE asked for and we accepted.
    session: Offer,
}

impl InboundCall {
    /// Sends 180 Ringing.
    pub fn ring(&self) -> Result<(), crate::GatewayError> {
        Ok(self.dialog.ringing(None, None)?)
    }

    /// Sends 200 OK with `sdp_answer`; [`CallEvent::Answered`] follows when the ACK arrives.
    pub fn answer(&self, sdp_answer: Vec<u8>) -> Result<(), crate::GatewayError> {
        let mut hdrs = vec![Header::ContentType("application/sdp".into())];
        hdrs.extend(self.session.headers());
        *self.answer_sdp.lock().unwrap_or_else(|p| p.into_inner()) = sdp_answer.clone();
        Ok(self.dialog.accept(Some(hdrs), Some(sdp_answer))?)
    }

    /// Refuses the call with a final status (486, 480, 603...).
    pub fn reject(&self, status: u16) -> Result<(), crate::GatewayError> {
        Ok(self.dialog.reject(Some(StatusCode::from(status)), None)?)
    }

    /// Ends an answered call with BYE.
    pub async fn hangup(&self) -> Result<(), crate::GatewayError> {
        Ok(self.dialog.bye().await?)
    }

    /// Next event: `Answered` once the ACK arrived, then `HungUp`; or `Failed` when the
    /// caller cancelled.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }
}

pub(crate) async fn dispatch(shared: Arc<Shared>, mut incoming: TransactionReceiver, inbound: mpsc::Sender<InboundCall>, cancel: CancellationToken) {
    loop {
        let tx = tokio::select! {
            _ = cancel.cancelled() => return,
            tx = incoming.recv() => match tx { Some(tx) => tx, None => return },
        };
        let span = info_span!("sip_request", call_id = %tx.original.call_id_header().map(|c| c.value().to_string()).unwrap_or_default(), method = %tx.original.method);
        tokio::spawn(handle(shared.clone(), tx, inbound.clone()).instrument(span));
    }
}

fn source_of(tx: &Transaction) -> Option<SocketAddr> {
    tx.connection.as_ref()?.get_remote_addr()?.get_socketaddr().ok()
}

async fn handle(shared: Arc<Shared>, mut tx: Transaction, inbound: mpsc::Sender<InboundCall>) {
    let in_dialog = tx.original.to_header().and_then(|t| t.tag()).ok().flatten().is_some();
    let method = tx.original.method;
    if in_dialog && method != Method::Options {
        let result = match shared.dialogs.match_dialog(&tx) {
            Some(Dialog::Invite(mut d)) => d.handle(&mut tx).await,
            _ => tx.reply(StatusCode::CallTransactionDoesNotExist).await,
        };
        if let Err(e) = result {
            debug!(error = %e, "in-dialog request failed");
        }
        return;
    }
    let source = source_of(&tx);
    let result = match method {
        Method::Options => tx.reply_with(StatusCode::OK, vec![Header::Allow(ALLOW.into()), Header::Accept("application/sdp".into())], None).await,
        Method::Register => {
            let route = tx.connection.as_ref().and_then(|c| c.get_remote_addr().cloned());
            shared.registrar.handle(&mut tx, source, route, &shared.limits, &shared.metrics).await;
            Ok(())
        }
        Method::Invite => {
            inbound_invite(&shared, tx, source, inbound).await;
            Ok(())
        }
        Method::Ack => Ok(()),
        Method::Bye | Method::Cancel | Method::PRack | Method::Update | Method::Info => tx.reply(StatusCode::CallTransactionDoesNotExist).await,
        _ => tx.reply_with(StatusCode::MethodNotAllowed, vec![Header::Allow(ALLOW.into())], None).await,
    };
    if let Err(e) = result {
        debug!(error = %e, "reply failed");
    }
}

/// The trunk whose `inbound_from` lists `ip` (an address or an IPv4/IPv6 CIDR).
fn trunk_for(shared: &Shared, ip: IpAddr) -> Option<String> {
    shared.trunks.iter().find(|t| t.cfg.inbound_from.iter().any(|spec| matches_spec(spec, ip))).map(|t| t.name().to_string())
}

pub(crate) fn matches_spec(spec: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match spec.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (spec, None),
    };
    let Ok(net) = addr.trim().parse::<IpAddr>() else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

async fn inbound_invite(shared: &Arc<Shared>, mut tx: Transaction, source: Option<SocketAddr>, inbound: mpsc::Sender<InboundCall>) {
    let user = |uri: &rsipstack::sip::Uri| uri.user().map(str::to_string).unwrap_or_default();
    let caller = tx.original.from_header().and_then(|f| f.typed()).map(|f| user(&f.uri)).unwrap_or_default();
    let Some(source) = source else {
        tx.reply(StatusCode::Forbidden).await.ok();
        return;
    };
    let (trunk, station) = match trunk_for(shared, source.ip()) {
        Some(trunk) => (trunk, None),
        None if shared.registrar.has_user(&caller) => {
            match shared.registrar.authenticate(&mut tx, &caller, Some(source.ip()), &shared.limits, &shared.metrics).await {
                Auth::Ok(u) => (String::new(), Some(u)),
                Auth::Challenged | Auth::Refused => return,
            }
        }
        None => {
            shared.metrics.blocked.with_label_values(&["inbound_not_allowed"]).inc();
            debug!(%source, "INVITE from an address no trunk lists in inbound_from, and not from a station");
            if shared.limits.record_failure(source.ip(), std::time::Instant::now()) {
                shared.metrics.blocked.with_label_values(&["banned_now"]).inc();
            }
            tx.reply(StatusCode::Forbidden).await.ok();
            return;
        }
    };
    let session = session_timer::answer(&tx.original.headers, shared.min_session_expires);
    if let Offer::TooSmall { min } = session {
        tx.reply_with(StatusCode::from(422), vec![Header::Other("Min-SE".into(), min.to_string())], None).await.ok();
        return;
    }
    let (state_tx, mut state_rx) = shared.dialogs.new_dialog_state_channel();
    let dialog = match shared.dialogs.get_or_create_server_invite(&tx, state_tx, None, Some(shared.contact.clone())) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot create the inbound dialog");
            tx.reply(StatusCode::ServerInternalError).await.ok();
            return;
        }
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let answer_sdp = Arc::new(Mutex::new(Vec::new()));
    let call = InboundCall {
        call_id: dialog.id().call_id.clone(),
        trunk,
        station,
        caller,
        called: user(&tx.original.uri),
        sdp_offer: tx.original.body.clone(),
        source,
        dialog: dialog.clone(),
        events: events_rx,
        answer_sdp: answer_sdp.clone(),
        session: session.clone(),
    };
    if inbound.try_send(call).is_err() {
        // Nobody takes inbound calls (or they are far behind): say so rather than ring out.
        tx.reply(StatusCode::TemporarilyUnavailable).await.ok();
        return;
    }
    let shared2 = shared.clone();
    let bye_dialog = dialog.clone();
    tokio::spawn(async move {
        let mut answered = false;
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365);
        let deadline = tokio::time::sleep_until(far);
        tokio::pin!(deadline);
        let mut timer = session.timer();
        loop {
            let st = tokio::select! {
                st = state_rx.recv() => match st { Some(st) => st, None => break },
                // We never refresh an inbound call: we answered with refresher=uac or the
                // caller's choice; the caller (or the far end) refreshes or the session ends.
                _ = &mut deadline, if answered && timer.is_some() => {
                    info_expired();
                    timer = None;
                    bye_dialog.bye_with_reason("SIP;cause=408;text=\"Session expired\"".into()).await.ok();
                    continue;
                }
            };
            match st {
                DialogState::Confirmed(_, resp) if !answered => {
                    answered = true;
                    if let Some(t) = timer {
                        deadline.as_mut().reset(t.deadline(tokio::time::Instant::now()));
                    }
                    events_tx.send(CallEvent::Answered(resp.body.clone())).ok();
                }
                DialogState::Updated(_, request, handle) => {
                    let sdp = answer_sdp.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if let Some(t) = crate::leg::answer_in_dialog(&shared2, &request, handle, &sdp).await {
                        timer = Some(t);
                        deadline.as_mut().reset(t.deadline(tokio::time::Instant::now()));
                    }
                }
                DialogState::Options(_, _, h) | DialogState::Info(_, _, h) | DialogState::Notify(_, _, h) | DialogState::Message(_, _, h) => {
                    h.reply(StatusCode::OK).await.ok();
                }
                DialogState::Refer(_, _, h) | DialogState::Publish(_, _, h) => {
                    h.reply(StatusCode::Decline).await.ok();
                }
                DialogState::Terminated(id, reason) => {
                    let ev = match reason {
                        _ if answered => CallEvent::HungUp { by: if matches!(reason, TerminatedReason::UasBye) { HangupBy::Local } else { HangupBy::Remote } },
                        TerminatedReason::UacCancel => CallEvent::Failed { status: Some(487), reason: "caller cancelled".into(), q850: None, outcome: Outcome::Cancelled },
                        _ => CallEvent::Failed { status: None, reason: format!("{reason:?}"), q850: None, outcome: Outcome::Rejected },
                    };
                    events_tx.send(ev).ok();
                    shared2.dialogs.remove_dialog(&id);
                    break;
                }
                _ => {}
            }
        }
    });
    let mut d = dialog;
    if let Err(e) = d.handle(&mut tx).await {
        debug!(error = %e, "inbound INVITE transaction ended with an error");
    }
}

fn info_expired() {
    tracing::info!("inbound session expired without a refresh, hanging up");
}

#[cfg(test)]
mod tests {
    use super::matches_spec;

    #[test]
    fn cidr_and_plain_addresses() {
        let ip = "10.1.2.3".parse().unwrap();
        assert!(matches_spec("10.1.2.3", ip));
        assert!(matches_spec("10.1.0.0/16", ip));
        assert!(!matches_spec("10.2.0.0/16", ip));
        assert!(matches_spec("0.0.0.0/0", ip));
        assert!(!matches_spec("::1", ip));
        assert!(!matches_spec("not an address", ip));
    }
}
