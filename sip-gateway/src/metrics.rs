//! Prometheus collectors of the gateway. They are created with the gateway and registered
//! into the application's registry by [`crate::SipGateway::register_metrics`], so the crate
//! never owns a global registry.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use rsipstack::sip::SipMessage;
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
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition")
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            requests: counter("pacer_sip_requests_total", "SIP requests by direction (in/out) and method, retransmissions excluded", &["direction", "method"]),
            responses: counter("pacer_sip_responses_total", "SIP responses by direction (in/out) and status code", &["direction", "status"]),
            bad_messages: counter("pacer_sip_bad_messages_total", "Malformed SIP datagrams dropped or answered 400/501, by reason", &["reason"]),
            calls: counter("pacer_sip_calls_total", "Outbound call attempts per trunk by result (answered or failure outcome)", &["trunk", "result"]),
            trunk_calls: gauge("pacer_sip_trunk_calls", "Calls in progress per trunk", &["trunk"]),
            trunk_up: gauge("pacer_sip_trunk_up", "1 when the trunk's keep-alives say it is up, else 0", &["trunk"]),
            blocked: counter("pacer_sip_blocked_requests_total", "Requests refused because of their source, by reason", &["reason"]),
            registrations: gauge("pacer_sip_registrations", "Station registrations currently bound", &["transport"]),
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
        Ok(())
    }

    fn count(&self, msg: &SipMessage, direction: &str) {
        match msg {
            SipMessage::Request(r) => self.requests.with_label_values(&[direction, &r.method.to_string()]).inc(),
            SipMessage::Response(r) => self.responses.with_label_values(&[direction, &r.status_code.code().to_string()]).inc(),
        }
    }
}

/// Counts every message the transaction layer sends or takes in.
pub(crate) struct CountingInspector(pub Metrics);

impl MessageInspector for CountingInspector {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        self.0.count(&msg, "out");
        msg
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        self.0.count(&msg, "in");
        msg
    }
}
