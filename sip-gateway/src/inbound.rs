//! Requests that arrive on their own: in-dialog requests go to their dialog, OPTIONS is
//! answered, REGISTER goes to the registrar, INVITE becomes an [`InboundCall`] when it comes
//! from a trunk's `inbound_from` address and a 403 otherwise.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rsipstack::dialog::dialog::{Dialog, DialogState, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::{CallEvent, HangupBy, Outcome, Shared};

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO";

/// A call a trunk sent us. Answer it with [`InboundCall::answer`], refuse it with
/// [`InboundCall::reject`]; its progress (ACK, BYE, CANCEL) arrives as [`CallEvent`]s.
pub struct InboundCall {
    /// Call-ID of the INVITE.
    pub call_id: String,
    /// The trunk whose `inbound_from` matched the source.
    pub trunk: String,
    /// User part of the From URI (the caller's number).
    pub caller: String,
    /// User part of the Request-URI (the number called).
    pub called: String,
    /// The INVITE's body (SDP offer), possibly empty.
    pub sdp_offer: Vec<u8>,
    pub source: SocketAddr,
    dialog: InviteDialog,
    events: mpsc::UnboundedReceiver<CallEvent>,
}

impl InboundCall {
    /// Sends 180 Ringing.
    pub fn ring(&self) -> Result<(), crate::GatewayError> {
        Ok(self.dialog.ringing(None, None)?)
    }

    /// Sends 200 OK with `sdp_answer`; [`CallEvent::Answered`] follows when the ACK arrives.
    pub fn answer(&self, sdp_answer: Vec<u8>) -> Result<(), crate::GatewayError> {
        let hdrs = vec![Header::ContentType("application/sdp".into())];
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
            shared.registrar.handle(&mut tx, source, &shared.metrics).await;
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
    let Some((source, trunk)) = source.and_then(|s| Some((s, trunk_for(shared, s.ip())?))) else {
        shared.metrics.blocked.with_label_values(&["inbound_not_allowed"]).inc();
        debug!(?source, "INVITE from an address no trunk lists in inbound_from");
        tx.reply(StatusCode::Forbidden).await.ok();
        return;
    };
    let (state_tx, mut state_rx) = shared.dialogs.new_dialog_state_channel();
    let dialog = match shared.dialogs.get_or_create_server_invite(&tx, state_tx, None, Some(shared.contact.clone())) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot create the inbound dialog");
            tx.reply(StatusCode::ServerInternalError).await.ok();
            return;
        }
    };
    let user = |uri: &rsipstack::sip::Uri| uri.user().map(str::to_string).unwrap_or_default();
    let caller = tx.original.from_header().and_then(|f| f.typed()).map(|f| user(&f.uri)).unwrap_or_default();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let call = InboundCall {
        call_id: dialog.id().call_id.clone(),
        trunk,
        caller,
        called: user(&tx.original.uri),
        sdp_offer: tx.original.body.clone(),
        source,
        dialog: dialog.clone(),
        events: events_rx,
    };
    if inbound.try_send(call).is_err() {
        // Nobody takes inbound calls (or they are far behind): say so rather than ring out.
        tx.reply(StatusCode::TemporarilyUnavailable).await.ok();
        return;
    }
    let dialogs = shared.dialogs.clone();
    tokio::spawn(async move {
        let mut answered = false;
        while let Some(st) = state_rx.recv().await {
            match st {
                DialogState::Confirmed(_, resp) if !answered => {
                    answered = true;
                    events_tx.send(CallEvent::Answered(resp.body.clone())).ok();
                }
                DialogState::Terminated(id, reason) => {
                    let ev = match reason {
                        _ if answered => CallEvent::HungUp { by: if matches!(reason, TerminatedReason::UasBye) { HangupBy::Local } else { HangupBy::Remote } },
                        TerminatedReason::UacCancel => CallEvent::Failed { status: Some(487), reason: "caller cancelled".into(), q850: None, outcome: Outcome::Cancelled },
                        _ => CallEvent::Failed { status: None, reason: format!("{reason:?}"), q850: None, outcome: Outcome::Rejected },
                    };
                    events_tx.send(ev).ok();
                    dialogs.remove_dialog(&id);
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
