//! Every message of every transport passes here before the transaction layer sees it:
//! incoming messages are counted (retransmissions apart), requests from stream transports
//! get the same validity checks the UDP guard makes (400 with a Warning), banned sources
//! are dropped, out-of-dialog requests are held to the per-source rate (503 with
//! Retry-After, counting toward a ban), and closed connections take their station bindings
//! with them. Trunk addresses (`inbound_from`) are exempt from rate limits and bans: a
//! carrier sends hundreds of calls a second from one address.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, SipMessage};
use rsipstack::transaction::endpoint::TransportEventInspector;
use rsipstack::transport::{SipConnection, TransportEvent};
use tracing::{debug, warn};

use crate::guard;
use crate::inbound::matches_spec;
use crate::limits::{Admit, SourceLimits};
use crate::metrics::Metrics;
use crate::registrar::Registrar;
use crate::trunk::Trunk;

pub(crate) struct Inspector {
    pub metrics: Metrics,
    pub limits: Arc<SourceLimits>,
    pub registrar: Arc<Registrar>,
    pub trunks: Vec<Arc<Trunk>>,
    pub server: String,
}

impl Inspector {
    fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunks.iter().any(|t| t.cfg.inbound_from.iter().any(|spec| matches_spec(spec, ip)) || t.peer_ip() == Some(ip))
    }

    async fn answer(&self, conn: &SipConnection, from: &rsipstack::transport::SipAddr, bytes: Vec<u8>) {
        match SipMessage::try_from(bytes.as_slice()) {
            Ok(msg) => {
                self.metrics.count(&msg, "out");
                if let Err(e) = conn.send(msg, Some(from)).await {
                    debug!(error = %e, %from, "stateless answer not sent");
                }
            }
            Err(e) => warn!(error = %e, "stateless answer does not parse"),
        }
    }
}

#[async_trait]
impl TransportEventInspector for Inspector {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        let (msg, conn, from) = match event {
            TransportEvent::Incoming(msg, conn, from) => (msg, conn, from),
            TransportEvent::New(conn) => {
                if conn.is_reliable() {
                    self.metrics.connections.inc();
                }
                return Some(TransportEvent::New(conn));
            }
            TransportEvent::Closed(conn) => {
                if conn.is_reliable() {
                    self.metrics.connections.dec();
                }
                if let Some(remote) = conn.get_remote_addr() {
                    self.registrar.connection_closed(remote, &self.metrics);
                }
                return Some(TransportEvent::Closed(conn));
            }
        };
        self.metrics.count(&msg, "in");
        let SipMessage::Request(req) = &msg else {
            return Some(TransportEvent::Incoming(msg, conn, from));
        };
        let ip = from.get_socketaddr().ok().map(|s| s.ip());
        let trunk = ip.is_some_and(|ip| self.is_trunk(ip));
        let now = Instant::now();
        if let (Some(ip), false) = (ip, trunk) {
            if self.limits.is_banned(ip, now) {
                self.metrics.blocked.with_label_values(&["banned"]).inc();
                return None;
            }
        }
        // Datagrams were checked byte by byte by the guard; streams arrive parsed.
        if conn.is_reliable() {
            if let Some((why, status)) = guard::check_request(req) {
                self.metrics.bad_messages.with_label_values(&[why]).inc();
                if why != "no_via" && req.method != Method::Ack {
                    self.answer(&conn, &from, guard::response(req, status, why, &self.server)).await;
                }
                return None;
            }
        }
        let in_dialog = req.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
        let exempt = trunk || in_dialog || matches!(req.method, Method::Ack | Method::Cancel | Method::Bye | Method::PRack);
        if let (Some(ip), false) = (ip, exempt) {
            match self.limits.admit(ip, now) {
                Admit::Yes => {}
                Admit::Banned => {
                    self.metrics.blocked.with_label_values(&["banned"]).inc();
                    return None;
                }
                Admit::RateLimited => {
                    self.metrics.blocked.with_label_values(&["rate_limited"]).inc();
                    if self.limits.record_failure(ip, now) {
                        self.metrics.blocked.with_label_values(&["banned_now"]).inc();
                        warn!(%ip, "source banned: over the request rate again and again");
                    }
                    let mut bytes = guard::response(req, "503 Service Unavailable", "rate limited", &self.server);
                    // Retry-After goes before the blank line that ends the header.
                    let at = bytes.len() - 4;
                    bytes.splice(at..at, b"\r\nRetry-After: 1".iter().copied());
                    self.answer(&conn, &from, bytes).await;
                    return None;
                }
            }
        }
        Some(TransportEvent::Incoming(msg, conn, from))
    }
}
