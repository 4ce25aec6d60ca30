//! Prometheus collectors of the gateway. They are created with the gateway and registered
//! into the application's registry by [`crate::SipGateway::register_metrics`], so the crate
//! never owns a global registry.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Param, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

/// Every collector of the gateway (cheap to clone: each is an `Arc` inside).
#[derive(Clone)]
pub(crate) struct Metrics {
    pub requests: IntCounterVec,
    pub responses: IntCounterVec,
    pub bad_messages: IntCounterVec,
    pub calls: IntCounterVec,
    pub trunk_calls: IntGaugeVec,
    pub trunk_up: IntGaugeVec,
    pub blocked: IntCounterVec,
    pub registrations: IntGaugeVec,
    pub retransmissions: IntCounterVec,
    pub transactions: IntGauge,
    pub banned_sources: IntGauge,
    pub connections: IntGauge,
    seen: Arc<Mutex<Seen>>,
}

/// Recently seen messages, by a hash of what identifies them (Via branch, CSeq, method or
/// status, direction): a second sighting within a transaction's lifetime (64×T1) is a
/// retransmission.
#[derive(Default)]
struct Seen {
    at: HashMap<u64, Instant>,
    pruned: Option<Instant>,
}

const TRANSACTION_LIFETIME: Duration = Duration::from_secs(32);

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition")
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            requests: counter("pacer_sip_requests_total", "SIP requests by direction (in/out) and method, retransmissions excluded (see pacer_sip_retransmissions_total)", &["direction", "method"]),
            responses: counter("pacer_sip_responses_total", "SIP responses by direction (in/out), method (of the CSeq) and status code, retransmissions excluded", &["direction", "method", "status"]),
            bad_messages: counter("pacer_sip_bad_messages_total", "Malformed SIP datagrams dropped or answered 400/501, by reason", &["reason"]),
            calls: counter("pacer_sip_calls_total", "Outbound call attempts per trunk by result (answered or failure outcome)", &["trunk", "result"]),
            trunk_calls: gauge("pacer_sip_trunk_calls", "Calls in progress per trunk", &["trunk"]),
            trunk_up: gauge("pacer_sip_trunk_up", "1 when the trunk's keep-alives say it is up, else 0", &["trunk"]),
            blocked: counter("pacer_sip_blocked_requests_total", "Requests refused because of their source, by reason", &["reason"]),
            registrations: gauge("pacer_sip_registrations", "Station registrations currently bound", &["transport"]),
            retransmissions: counter("pacer_sip_retransmissions_total", "Retransmitted SIP messages by direction (in/out) and kind (request/response)", &["direction", "kind"]),
            transactions: IntGauge::new("pacer_sip_transactions", "SIP transactions in flight (sampled every second)").expect("static metric definition"),
            banned_sources: IntGauge::new("pacer_sip_banned_sources", "Source addresses blocked now after repeated failures").expect("static metric definition"),
            connections: IntGauge::new("pacer_sip_connections", "Open stream connections (TCP, TLS, WebSocket)").expect("static metric definition"),
            seen: Arc::default(),
        }
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.requests.clone()))?;
        registry.register(Box::new(self.responses.clone()))?;
        registry.register(Box::new(self.bad_messages.clone()))?;
        registry.register(Box::new(self.calls.clone()))?;
        registry.register(Box::new(self.trunk_calls.clone()))?;
        registry.register(Box::new(self.trunk_up.clone()))?;
        registry.register(Box::new(self.blocked.clone()))?;
        registry.register(Box::new(self.registrations.clone()))?;
        registry.register(Box::new(self.retransmissions.clone()))?;
        registry.register(Box::new(self.transactions.clone()))?;
        registry.register(Box::new(self.banned_sources.clone()))?;
        registry.register(Box::new(self.connections.clone()))?;
        Ok(())
    }

    /// Whether `msg` was already seen going this way within a transaction's lifetime.
    fn is_retransmission(&self, msg: &SipMessage, direction: &str) -> bool {
        let branch = msg.via_header().ok().and_then(|v| v.typed().ok()).and_then(|v| {
            v.params.iter().find_map(|p| match p {
                Param::Branch(b) => Some(b.to_string()),
                _ => None,
            })
        });
        let Some(branch) = branch else { return false };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (direction, branch.as_str()).hash(&mut h);
        msg.cseq_header().ok().map(|c| c.value().to_string()).hash(&mut h);
        match msg {
            SipMessage::Request(r) => r.method.to_string().hash(&mut h),
            SipMessage::Response(r) => r.status_code.code().hash(&mut h),
        }
        let key = h.finish();
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.pruned.is_none_or(|t| now.duration_since(t) > Duration::from_secs(5)) {
            seen.at.retain(|_, t| now.duration_since(*t) < TRANSACTION_LIFETIME);
            seen.pruned = Some(now);
        }
        match seen.at.insert(key, now) {
            Some(before) => now.duration_since(before) < TRANSACTION_LIFETIME,
            None => false,
        }
    }

    /// Counts a message under requests/responses, or under retransmissions when it repeats one.
    pub(crate) fn count(&self, msg: &SipMessage, direction: &str) {
        if self.is_retransmission(msg, direction) {
            let kind = if matches!(msg, SipMessage::Request(_)) { "request" } else { "response" };
            self.retransmissions.with_label_values(&[direction, kind]).inc();
            return;
        }
        match msg {
            SipMessage::Request(r) => self.requests.with_label_values(&[direction, &r.method.to_string()]).inc(),
            SipMessage::Response(r) => {
                let method = r.cseq_header().ok().and_then(|c| c.method().ok()).map(|m| m.to_string()).unwrap_or_else(|| "unknown".into());
                self.responses.with_label_values(&[direction, &method, &r.status_code.code().to_string()]).inc()
            }
        }
    }
}

/// Counts every message the transaction layer sends (incoming ones are counted by the
/// transport inspector, which also sees those the stack absorbs as retransmissions).
pub(crate) struct CountingInspector(pub Metrics);

impl MessageInspector for CountingInspector {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        self.0.count(&msg, "out");
        msg
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        msg
    }
}
