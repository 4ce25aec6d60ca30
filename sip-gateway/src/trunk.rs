//! A carrier trunk at run time: where to send INVITEs, how many calls it may carry, how fast
//! new calls may start, whether its keep-alives say it is up, and how numbers are rewritten.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use pacer_config::{Transport, TrunkConfig};
use rsipstack::sip::{self, HostWithPort, Method, Param, SipMessage, StatusCodeKind, Uri};
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::{Transaction, make_tag};
use rsipstack::transport::SipAddr;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::GatewayError;
use crate::metrics::Metrics;

/// Run-time state of one configured trunk.
pub(crate) struct Trunk {
    pub cfg: TrunkConfig,
    /// Where requests to this trunk go.
    pub dest: SipAddr,
    concurrent: AtomicU32,
    up: AtomicBool,
    /// Earliest instant the next call may start: calls are spaced `1 / max_cps` apart so a
    /// burst is spread out (queued) instead of sent at once.
    next_slot: Mutex<Option<Instant>>,
    successes: AtomicU32,
    failures: AtomicU32,
}

/// One call's claim on a trunk's concurrency; released on drop, whatever path ends the call.
pub(crate) struct CallPermit {
    trunk: Arc<Trunk>,
    metrics: Metrics,
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        let now = self.trunk.concurrent.fetch_sub(1, Ordering::AcqRel) - 1;
        self.metrics.trunk_calls.with_label_values(&[&self.trunk.cfg.name]).set(now as i64);
    }
}

impl Trunk {
    pub fn new(cfg: TrunkConfig) -> Result<Self, GatewayError> {
        let bad = |reason: &str| GatewayError::BadTrunk { trunk: cfg.name.clone(), reason: reason.into() };
        let addr = HostWithPort::try_from(format!("{}:{}", cfg.host, cfg.port))
            .map_err(|e| bad(&format!("host `{}`: {e}", cfg.host)))?;
        check_digits("strip_prefix", &cfg.strip_prefix)?;
        check_digits("add_prefix", &cfg.add_prefix)?;
        if let Some(cid) = &cfg.caller_id {
            check_digits("caller_id", cid)?;
        }
        Ok(Self {
            dest: SipAddr { r#type: Some(sip_transport(cfg.transport)), addr },
            concurrent: AtomicU32::new(0),
            up: AtomicBool::new(true),
            next_slot: Mutex::new(None),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            cfg,
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The carrier's address when `host` is one (requests from it are never rate limited).
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.cfg.host.parse().ok()
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn concurrent(&self) -> u32 {
        self.concurrent.load(Ordering::Acquire)
    }

    /// Claims one of the trunk's `max_concurrent` call slots, or `None` when all are taken.
    pub fn try_acquire(self: &Arc<Self>, metrics: &Metrics) -> Option<CallPermit> {
        let max = self.cfg.max_concurrent;
        let prev = self
            .concurrent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()?;
        metrics.trunk_calls.with_label_values(&[&self.cfg.name]).set(prev as i64 + 1);
        Some(CallPermit { trunk: self.clone(), metrics: metrics.clone() })
    }

    /// Reserves the next start slot under `max_cps` and returns when it is, or `None` when
    /// it is later than `max_wait` (the call is refused rather than queued for too long).
    pub fn reserve_slot(&self, now: Instant, max_wait: Duration) -> Option<Instant> {
        if self.cfg.max_cps == 0 {
            return None;
        }
        let spacing = Duration::from_secs(1) / self.cfg.max_cps;
        let mut next = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.map_or(now, |n| n.max(now));
        if slot.duration_since(now) > max_wait {
            return None;
        }
        *next = Some(slot + spacing);
        Some(slot)
    }

    /// The number as the carrier wants it: `strip_prefix` removed, then `add_prefix` added.
    pub fn rewrite(&self, number: &str) -> String {
        let rest = number.strip_prefix(self.cfg.strip_prefix.as_str()).unwrap_or(number);
        format!("{}{}", self.cfg.add_prefix, rest)
    }

    /// `;transport=` for the reliable transports (RFC 3261 §19.1.1); UDP is the default.
    fn uri_params(&self) -> &'static str {
        match self.cfg.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    /// Request-URI of a call to `number` on this trunk.
    pub fn request_uri(&self, number: &str) -> Result<Uri, GatewayError> {
        Uri::try_from(format!("sip:{}@{}{}", number, self.dest.addr, self.uri_params())).map_err(|e| GatewayError::BadTrunk {
            trunk: self.cfg.name.clone(),
            reason: format!("cannot build a request URI: {e}"),
        })
    }

    /// Records one keep-alive result and flips the up/down state after `down_after`
    /// failures or `up_after` successes in a row.
    pub fn record_probe(&self, ok: bool, metrics: &Metrics) {
        if ok {
            self.failures.store(0, Ordering::Release);
            let n = self.successes.fetch_add(1, Ordering::AcqRel) + 1;
            if !self.is_up() && n >= self.cfg.up_after.max(1) {
                self.up.store(true, Ordering::Release);
                info!(trunk = %self.cfg.name, "trunk is up again");
            }
        } else {
            self.successes.store(0, Ordering::Release);
            let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
            if self.is_up() && n >= self.cfg.down_after.max(1) {
                self.up.store(false, Ordering::Release);
                warn!(trunk = %self.cfg.name, failures = n, "trunk marked down: keep-alives unanswered");
            }
        }
        metrics.trunk_up.with_label_values(&[&self.cfg.name]).set(self.is_up() as i64);
    }
}

pub(crate) fn sip_transport(t: Transport) -> sip::Transport {
    match t {
        Transport::Udp => sip::Transport::Udp,
        Transport::Tcp => sip::Transport::Tcp,
        Transport::Tls => sip::Transport::Tls,
    }
}

/// The CA certificates trusted for TLS trunks: the `tls_ca` files of every `tls` trunk,
/// concatenated (rsipstack keeps one client TLS configuration for all connections).
pub(crate) fn tls_roots(trunks: &[Arc<Trunk>]) -> Result<Option<Vec<u8>>, GatewayError> {
    let mut bundle = Vec::new();
    let mut any = false;
    let mut read = std::collections::HashSet::new();
    for t in trunks.iter().filter(|t| t.cfg.transport == Transport::Tls) {
        any = true;
        if !read.insert(t.cfg.tls_ca.clone()) {
            continue;
        }
        let pem = std::fs::read(&t.cfg.tls_ca).map_err(|e| GatewayError::BadTrunk {
            trunk: t.cfg.name.clone(),
            reason: format!("tls_ca {}: {e}", t.cfg.tls_ca.display()),
        })?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(GatewayError::BadTrunk { trunk: t.cfg.name.clone(), reason: format!("tls_ca {}: no PEM certificate in it", t.cfg.tls_ca.display()) });
        }
        bundle.extend_from_slice(&pem);
        bundle.push(b'\n');
    }
    Ok(any.then_some(bundle))
}

/// Digits, `+`, `*` and `#` only: anything else could inject into the SIP URI or headers.
pub(crate) fn check_digits(what: &'static str, value: &str) -> Result<(), GatewayError> {
    if value.len() <= 64 && value.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#')) {
        Ok(())
    } else {
        Err(GatewayError::InvalidNumber { what, value: value.chars().take(80).collect() })
    }
}

/// Sends OPTIONS to the trunk every `options_interval_s` and records the result, until
/// `cancel`. Any response counts as alive (a 404 or 405 still proves the carrier is there).
pub(crate) async fn keepalive(trunk: Arc<Trunk>, endpoint: Arc<EndpointInner>, contact_host: String, metrics: Metrics, cancel: CancellationToken) {
    let interval = Duration::from_secs(trunk.cfg.options_interval_s);
    if interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // A probe must not outlive its interval, or slow carriers would pile probes up.
        let wait = interval.min(Duration::from_secs(32));
        let ok = match tokio::time::timeout(wait, options_probe(&trunk, &endpoint, &contact_host)).await {
            Ok(Ok(status)) => {
                debug!(trunk = %trunk.cfg.name, status, "keep-alive answered");
                true
            }
            Ok(Err(e)) => {
                debug!(trunk = %trunk.cfg.name, error = %e, "keep-alive failed");
                false
            }
            Err(_) => false,
        };
        trunk.record_probe(ok, &metrics);
    }
}

async fn options_probe(trunk: &Trunk, endpoint: &Arc<EndpointInner>, contact_host: &str) -> Result<u16, GatewayError> {
    let uri = Uri::try_from(format!("sip:{}{}", trunk.dest.addr, trunk.uri_params())).map_err(rsipstack::Error::from)?;
    let via = endpoint.get_via(None, None)?;
    let via = sip::typed::Via { transport: trunk.dest.r#type.unwrap_or_default(), ..via };
    let from = sip::typed::From {
        display_name: None,
        uri: Uri::try_from(format!("sip:pacer@{contact_host}")).map_err(rsipstack::Error::from)?,
        params: vec![Param::Tag(make_tag())],
    };
    let to = sip::typed::To { display_name: None, uri: uri.clone(), params: vec![] };
    let req = endpoint.make_request(Method::Options, uri, via, from, to, 1, None);
    let key = TransactionKey::from_request(&req, TransactionRole::Client)?;
    let mut tx = Transaction::new_client(key, req, endpoint.clone(), None);
    tx.destination = Some(trunk.dest.clone());
    tx.send().await?;
    while let Some(msg) = tx.receive().await {
        if let SipMessage::Response(resp) = msg {
            if resp.status_code.kind() != StatusCodeKind::Provisional {
                let code = resp.status_code.code();
                // A timeout is reported by the transaction as a 408 it made up itself.
                if code == 408 {
                    break;
                }
                return Ok(code);
            }
        }
    }
    Err(GatewayError::Stack(rsipstack::Error::Error("no response to OPTIONS".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(cfg: TrunkConfig) -> Trunk {
        Trunk::new(TrunkConfig { name: "t".into(), host: "127.0.0.1".into(), ..cfg }).unwrap()
    }

    #[test]
    fn rewrites_numbers() {
        let t = trunk(TrunkConfig { strip_prefix: "+1".into(), add_prefix: "9".into(), ..Default::default() });
        assert_eq!(t.rewrite("+15551234"), "95551234");
        assert_eq!(t.rewrite("5551234"), "95551234");
    }

    #[test]
    fn slots_are_spaced_by_max_cps_and_refused_beyond_the_wait() {
        let t = trunk(TrunkConfig { max_cps: 4, ..Default::default() });
        let now = Instant::now();
        let wait = Duration::from_millis(600);
        let slots: Vec<_> = (0..4).map(|_| t.reserve_slot(now, wait)).collect();
        assert_eq!(slots[0], Some(now));
        assert_eq!(slots[1], Some(now + Duration::from_millis(250)));
        assert_eq!(slots[2], Some(now + Duration::from_millis(500)));
        assert_eq!(slots[3], None, "750 ms away is beyond the 600 ms wait");
    }

    #[test]
    fn rejects_non_digits() {
        assert!(check_digits("n", "+33 1").is_err());
        assert!(check_digits("n", "1@evil").is_err());
        assert!(check_digits("n", "+331*#").is_ok());
    }
}
