//! Registrar of agent stations (RFC 3261 §10) with digest authentication (RFC 2617, MD5,
//! qop=auth). Passwords come from the application ([`crate::SipGateway::set_station_password`]);
//! bindings live in memory and expire.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use pacer_config::SipConfig;
use rsipstack::dialog::authenticate::verify_digest;
use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, Param, StatusCode};
use rsipstack::transaction::random_text;
use rsipstack::transaction::transaction::Transaction;
use tokio::time::Instant;
use tracing::{debug, info};

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
    /// Seconds left before the binding expires.
    pub expires_in: u64,
}

struct Binding {
    contact: String,
    source: Option<SocketAddr>,
    until: Instant,
}

/// How long a nonce we issued stays acceptable.
const NONCE_TTL: Duration = Duration::from_secs(300);

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

    pub fn stations(&self) -> Vec<Station> {
        let now = Instant::now();
        let mut out: Vec<_> = lock(&self.bindings)
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(user, b)| Station { user: user.clone(), contact: b.contact.clone(), source: b.source, expires_in: (b.until - now).as_secs() })
            .collect();
        out.sort_by(|a, b| a.user.cmp(&b.user));
        out
    }

    fn new_nonce(&self) -> String {
        let nonce = random_text(24);
        let now = Instant::now();
        let mut nonces = lock(&self.nonces);
        // Unanswered challenges (scanners) must not grow the table without bound.
        nonces.retain(|_, t| now.duration_since(*t) < NONCE_TTL);
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

    pub async fn handle(&self, tx: &mut Transaction, source: Option<SocketAddr>, metrics: &Metrics) {
        let Some(user) = tx.original.to_header().and_then(|t| t.typed()).ok().and_then(|t| t.uri.user().map(str::to_string)) else {
            tx.reply(StatusCode::BadRequest).await.ok();
            return;
        };
        let Some(auth) = tx.original.authorization_header().cloned() else {
            self.challenge(tx).await;
            return;
        };
        let raw = auth.value().to_string();
        let typed = match rsipstack::sip::typed::Authorization::parse(&raw) {
            Ok(t) => t,
            Err(_) => {
                tx.reply(StatusCode::BadRequest).await.ok();
                return;
            }
        };
        if !self.nonce_ok(&typed.nonce) {
            // Unknown or old nonce: challenge again, the station retries with the new one.
            self.challenge(tx).await;
            return;
        }
        let password = lock(&self.passwords).get(&user).cloned();
        let ok = typed.username == user && typed.realm == self.realm && password.is_some_and(|p| verify_digest(&typed, &p, &Method::Register, &raw));
        if !ok {
            metrics.blocked.with_label_values(&["bad_credentials"]).inc();
            debug!(%user, ?source, "REGISTER with wrong credentials");
            tx.reply(StatusCode::Forbidden).await.ok();
            return;
        }
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
            let mut bindings = lock(&self.bindings);
            match contact {
                Some(c) if expires > 0 => {
                    let uri = c.uri.to_string();
                    info!(%user, contact = %uri, expires, "station registered");
                    bindings.insert(user.clone(), Binding { contact: uri.clone(), source, until: Instant::now() + Duration::from_secs(expires as u64) });
                    hdrs.push(Header::Contact(format!("<{uri}>;expires={expires}").into()));
                }
                _ => {
                    info!(%user, "station unregistered");
                    bindings.remove(&user);
                }
            }
            let now = Instant::now();
            bindings.retain(|_, b| b.until > now);
            metrics.registrations.with_label_values(&["udp"]).set(bindings.len() as i64);
        }
        hdrs.push(Header::Expires(expires.to_string().into()));
        tx.reply_with(StatusCode::OK, hdrs, None).await.ok();
    }
}
