//! Registrar of agent stations (RFC 3261 §10) with digest authentication (RFC 2617, MD5,
//! qop=auth), over every transport the gateway listens on. Passwords come from the
//! application ([`crate::SipGateway::set_station_password`]); bindings live in memory and
//! expire. A binding remembers the connection it came over (transport and source address),
//! so requests to a station registered over TCP or WebSocket go back over that connection
//! (RFC 5626 §5, RFC 7118 §5), and the binding is dropped when that connection closes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use pacer_config::SipConfig;
use rsipstack::dialog::authenticate::verify_digest;
use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::{self, Header, HeadersExt, Param, StatusCode};
use rsipstack::transaction::random_text;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::limits::SourceLimits;
use crate::metrics::Metrics;

/// A registered agent station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    /// User part of the address of record (the agent's SIP user).
    pub user: String,
    /// Contact URI the station registered.
    pub contact: String,
    /// Address the REGISTER came from (where requests to the station go behind NAT).
    pub source: Option<SocketAddr>,
    /// Transport of the registration: `udp`, `tcp`, `tls`, `ws` or `wss`.
    pub transport: &'static str,
    /// Seconds left before the binding expires.
    pub expires_in: u64,
}

struct Binding {
    contact: String,
    source: Option<SocketAddr>,
    /// Where requests to the station are sent: its source over the transport it used.
    route: Option<SipAddr>,
    until: Instant,
}

/// How long a nonce we issued stays acceptable.
const NONCE_TTL: Duration = Duration::from_secs(300);
/// Most nonces outstanding at once: a scanner that never answers challenges must not grow
/// the table without bound (the oldest are forgotten first, their station retries).
const MAX_NONCES: usize = 100_000;

/// Result of checking a request's credentials.
pub(crate) enum Auth {
    /// Credentials verified for this user.
    Ok(String),
    /// A challenge (401) was sent; the client retries with credentials.
    Challenged,
    /// Refused (400 or 403 sent).
    Refused,
}

pub(crate) struct Registrar {
    realm: String,
    max_expires: u32,
    passwords: Mutex<HashMap<String, String>>,
    bindings: Mutex<HashMap<String, Binding>>,
    nonces: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn transport_name(t: Option<sip::Transport>) -> &'static str {
    match t {
        Some(sip::Transport::Tcp) => "tcp",
        Some(sip::Transport::Tls) => "tls",
        Some(sip::Transport::Ws) => "ws",
        Some(sip::Transport::Wss) => "wss",
        _ => "udp",
    }
}

impl Registrar {
    pub fn new(cfg: &SipConfig) -> Self {
        Self {
            realm: cfg.domain.clone(),
            max_expires: cfg.max_register_expires_s.max(1),
            passwords: Mutex::default(),
            bindings: Mutex::default(),
            nonces: Mutex::default(),
        }
    }

    pub fn set_password(&self, user: &str, password: &str) {
        lock(&self.passwords).insert(user.to_string(), password.to_string());
    }

    pub fn has_user(&self, user: &str) -> bool {
        lock(&self.passwords).contains_key(user)
    }

    pub fn stations(&self) -> Vec<Station> {
        let now = Instant::now();
        let mut out: Vec<_> = lock(&self.bindings)
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(user, b)| Station {
                user: user.clone(),
                contact: b.contact.clone(),
                source: b.source,
                transport: transport_name(b.route.as_ref().and_then(|r| r.r#type)),
                expires_in: (b.until - now).as_secs(),
            })
            .collect();
        out.sort_by(|a, b| a.user.cmp(&b.user));
        out
    }

    /// Contact URI and route of a station registered now.
    pub fn lookup(&self, user: &str) -> Option<(String, Option<SipAddr>)> {
        let b = lock(&self.bindings);
        let b = b.get(user).filter(|b| b.until > Instant::now())?;
        Some((b.contact.clone(), b.route.clone()))
    }

    /// A stream connection closed: bindings that depended on it can no longer be reached.
    pub fn connection_closed(&self, remote: &SipAddr, metrics: &Metrics) {
        let mut bindings = lock(&self.bindings);
        let before = bindings.len();
        bindings.retain(|user, b| {
            let keep = b.route.as_ref() != Some(remote);
            if !keep {
                info!(%user, %remote, "station's connection closed: binding dropped");
            }
            keep
        });
        if bindings.len() != before {
            Self::update_gauges(&bindings, metrics);
        }
    }

    /// Forgets expired bindings, so the registration gauges stay true without REGISTERs.
    pub fn purge(&self, metrics: &Metrics) {
        let mut bindings = lock(&self.bindings);
        let now = Instant::now();
        bindings.retain(|_, b| b.until > now);
        Self::update_gauges(&bindings, metrics);
    }

    fn update_gauges(bindings: &HashMap<String, Binding>, metrics: &Metrics) {
        let mut counts: HashMap<&'static str, i64> = ["udp", "tcp", "tls", "ws", "wss"].into_iter().map(|t| (t, 0)).collect();
        for b in bindings.values() {
            *counts.entry(transport_name(b.route.as_ref().and_then(|r| r.r#type))).or_default() += 1;
        }
        for (t, n) in counts {
            metrics.registrations.with_label_values(&[t]).set(n);
        }
    }

    fn new_nonce(&self) -> String {
        let nonce = random_text(24);
        let now = Instant::now();
        let mut nonces = lock(&self.nonces);
        if nonces.len() >= MAX_NONCES {
            nonces.retain(|_, t| now.duration_since(*t) < NONCE_TTL);
            if nonces.len() >= MAX_NONCES {
                let oldest = nonces.iter().min_by_key(|(_, t)| **t).map(|(n, _)| n.clone());
                oldest.map(|n| nonces.remove(&n));
            }
        }
        nonces.insert(nonce.clone(), now);
        nonce
    }

    fn nonce_ok(&self, nonce: &str) -> bool {
        lock(&self.nonces).get(nonce).is_some_and(|t| t.elapsed() < NONCE_TTL)
    }

    async fn challenge(&self, tx: &mut Transaction) {
        let value = format!("Digest realm=\"{}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"", self.realm, self.new_nonce());
        tx.reply_with(StatusCode::Unauthorized, vec![Header::WwwAuthenticate(value.into())], None).await.ok();
    }

    /// Checks the digest credentials of a REGISTER or INVITE for `user`: challenges when
    /// there are none (or the nonce is stale), refuses wrong ones (counted as a failure of
    /// the source, which may ban it).
    pub async fn authenticate(&self, tx: &mut Transaction, user: &str, source: Option<IpAddr>, limits: &SourceLimits, metrics: &Metrics) -> Auth {
        let Some(auth) = tx.original.authorization_header().cloned() else {
            self.challenge(tx).await;
            return Auth::Challenged;
        };
        let raw = auth.value().to_string();
        let Ok(typed) = rsipstack::sip::typed::Authorization::parse(&raw) else {
            tx.reply(StatusCode::BadRequest).await.ok();
            return Auth::Refused;
        };
        if !self.nonce_ok(&typed.nonce) {
            // Unknown or old nonce: challenge again, the station retries with the new one.
            self.challenge(tx).await;
            return Auth::Challenged;
        }
        let password = lock(&self.passwords).get(user).cloned();
        let method = tx.original.method;
        let ok = typed.username == user && typed.realm == self.realm && password.is_some_and(|p| verify_digest(&typed, &p, &method, &raw));
        if !ok {
            metrics.blocked.with_label_values(&["bad_credentials"]).inc();
            debug!(%user, ?source, %method, "wrong credentials");
            if let Some(ip) = source {
                if limits.record_failure(ip, std::time::Instant::now()) {
                    metrics.blocked.with_label_values(&["banned_now"]).inc();
                    warn!(%ip, "source banned after repeated authentication failures");
                }
            }
            tx.reply(StatusCode::Forbidden).await.ok();
            return Auth::Refused;
        }
        if let Some(ip) = source {
            limits.record_success(ip);
        }
        Auth::Ok(user.to_string())
    }

    pub async fn handle(&self, tx: &mut Transaction, source: Option<SocketAddr>, route: Option<SipAddr>, limits: &SourceLimits, metrics: &Metrics) {
        let Some(user) = tx.original.to_header().and_then(|t| t.typed()).ok().and_then(|t| t.uri.user().map(str::to_string)) else {
            tx.reply(StatusCode::BadRequest).await.ok();
            return;
        };
        let Auth::Ok(user) = self.authenticate(tx, &user, source.map(|s| s.ip()), limits, metrics).await else {
            return;
        };
        let contact = tx.original.typed_contact_headers().ok().and_then(|c| c.into_iter().next());
        let header_expires = tx.original.expires_header().and_then(|e| e.value().trim().parse::<u32>().ok());
        let contact_expires = contact.as_ref().and_then(|c| {
            c.params.iter().find_map(|p| match p {
                Param::Expires(e) => e.value().parse::<u32>().ok(),
                _ => None,
            })
        });
        let expires = contact_expires.or(header_expires).unwrap_or(3600).min(self.max_expires);
        let mut hdrs = Vec::new();
        {
            // Gauges move by one here; `purge` recounts them from scratch every 10 s, so a
            // REGISTER never walks every binding (thousands of stations re-register).
            let gauge = |b: &Binding| metrics.registrations.with_label_values(&[transport_name(b.route.as_ref().and_then(|r| r.r#type))]);
            let mut bindings = lock(&self.bindings);
            let old = match contact {
                Some(c) if expires > 0 => {
                    let uri = c.uri.to_string();
                    info!(%user, contact = %uri, expires, transport = transport_name(route.as_ref().and_then(|r| r.r#type)), "station registered");
                    let binding = Binding { contact: uri.clone(), source, route, until: Instant::now() + Duration::from_secs(expires as u64) };
                    gauge(&binding).inc();
                    hdrs.push(Header::Contact(format!("<{uri}>;expires={expires}").into()));
                    bindings.insert(user.clone(), binding)
                }
                _ => {
                    info!(%user, "station unregistered");
                    bindings.remove(&user)
                }
            };
            if let Some(old) = old {
                gauge(&old).dec();
            }
        }
        hdrs.push(Header::Expires(expires.to_string().into()));
        tx.reply_with(StatusCode::OK, hdrs, None).await.ok();
    }
}
