//! `pacer-sip`: Pacer's SIP gateway, built on rsipstack's transactions and dialogs.
//!
//! It knows nothing of campaigns. It offers the application:
//! - [`SipGateway::originate`]: call a number on a trunk with an SDP offer; the returned
//!   [`CallHandle`] streams [`CallEvent`]s (trying, ringing, early media, answered, failed
//!   with an [`Outcome`] and the Q.850 cause, hung up) and hangs up on request;
//! - [`SipGateway::take_inbound`]: INVITEs from the trunks' `inbound_from` addresses, and
//!   from station users that pass digest authentication ([`InboundCall::station`]), as
//!   [`InboundCall`]s (other sources get 403 and are counted);
//! - [`SipGateway::stations`]: agent stations registered with digest authentication over
//!   UDP, TCP, TLS or SIP over WebSocket (RFC 7118), and [`SipGateway::call_station`] to
//!   ring one over the connection it registered from;
//! - [`SipGateway::trunk_status`] and [`SipGateway::register_metrics`] (`pacer_sip_*`).
//!
//! Trunks (UDP, TCP or TLS) enforce `max_concurrent` and `max_cps` (a call over the limit
//! is queued for the next start slot or refused, never sent), are probed with OPTIONS and
//! skipped while down, and fail over to their `failover` trunks on 503, 408, no response or
//! a transport failure. Answered calls answer re-INVITE and UPDATE (hold, unhold, refresh)
//! and run RFC 4028 session timers (refresh when the peer makes us the refresher, BYE when
//! a session it should refresh expires, 422 retried with the peer's Min-SE).
//!
//! Hostile input: every UDP datagram passes the guard ([`screen_datagram`], also the fuzz
//! target) which drops what cannot be parsed and answers invalid requests with 400 and a
//! Warning; requests from stream transports get the same checks; out-of-dialog requests
//! are held to `sip.rate_limit_per_source` (503) and sources that keep failing
//! authentication or the rate are banned for `sip.ban_seconds`.
//!
//! ```no_run
//! # async fn demo(cfg: pacer_config::Config) -> Result<(), pacer_sip::GatewayError> {
//! use pacer_sip::{CallEvent, OriginateRequest, SipGateway};
//! let gw = SipGateway::start(&cfg.sip, &cfg.trunks).await?;
//! let mut call = gw.originate(OriginateRequest {
//!     trunk: "carrier-a".into(),
//!     number: "+15551234567".into(),
//!     caller_id: None,
//!     sdp_offer: b"v=0\r\n...".to_vec(),
//!     ring_timeout: std::time::Duration::from_secs(30),
//! })?;
//! while let Some(event) = call.next_event().await {
//!     if let CallEvent::Answered(_sdp) = event { call.hangup(); }
//! }
//! # Ok(()) }
//! ```

mod call;
mod error;
mod guard;
mod inbound;
mod inspect;
mod leg;
mod limits;
mod listen;
mod metrics;
pub mod outcome;
mod registrar;
mod session_timer;
mod trunk;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pacer_config::{SipConfig, TrunkConfig};
use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::Uri;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use call::{CallEvent, CallHandle, HangupBy, OriginateRequest};
pub use error::GatewayError;
pub use inbound::InboundCall;
pub use outcome::Outcome;
pub use guard::{Screened, screen_datagram};
pub use registrar::Station;

use metrics::Metrics;
use trunk::Trunk;

/// State shared by the gateway's tasks.
pub(crate) struct Shared {
    pub endpoint: Arc<EndpointInner>,
    pub dialogs: Arc<DialogLayer>,
    pub trunks: Vec<Arc<Trunk>>,
    pub metrics: Metrics,
    /// Our Contact for dialogs.
    pub contact: Uri,
    /// Host (address) written into From, P-Asserted-Identity and Contact.
    pub host: String,
    /// Domain of stations (realm, and the host of our URI towards stations).
    pub domain: String,
    pub registrar: Arc<registrar::Registrar>,
    pub limits: Arc<limits::SourceLimits>,
    /// `sip.session_expires_s` (0: no session timer asked for).
    pub session_expires: u32,
    /// `sip.min_session_expires_s`.
    pub min_session_expires: u32,
}

impl Shared {
    fn trunk_index(&self, name: &str) -> Option<usize> {
        self.trunks.iter().position(|t| t.name() == name)
    }
}

/// Up/down state and load of one trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStatus {
    pub name: String,
    pub up: bool,
    pub calls: u32,
}

/// The running gateway: its UDP listener, transaction layer, trunks and registrar. Dropping
/// it (or [`SipGateway::shutdown`]) stops every task it started.
pub struct SipGateway {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    inbound: Mutex<Option<mpsc::Receiver<InboundCall>>>,
    cancel: CancellationToken,
}

impl SipGateway {
    /// Binds `sip.listen_udp` and, when configured, `listen_tcp`, `listen_tls` and
    /// `listen_ws` (port 0 picks a free port, see [`SipGateway::local_addr`] and friends),
    /// starts the SIP stack and the trunks' keep-alives.
    pub async fn start(sip: &SipConfig, trunks: &[TrunkConfig]) -> Result<SipGateway, GatewayError> {
        // rustls needs a process-wide crypto provider; only ring is compiled in. A second
        // gateway in the same process finds it installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let trunks = trunks.iter().cloned().map(|t| Trunk::new(t).map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        let tls_roots = trunk::tls_roots(&trunks)?;
        let tls_acceptor = match (&sip.listen_tls, &sip.tls_cert, &sip.tls_key) {
            (Some(_), Some(cert), Some(key)) => Some(listen::tls_acceptor(cert, key)?),
            (Some(_), _, _) => return Err(GatewayError::Tls("sip.listen_tls needs sip.tls_cert and sip.tls_key".into())),
            _ => None,
        };
        let metrics = Metrics::new();
        let cancel = CancellationToken::new();
        let sock = tokio::net::UdpSocket::bind(sip.listen_udp)
            .await
            .map_err(|source| GatewayError::Bind { transport: "udp", addr: sip.listen_udp, source })?;
        let local_addr = sock.local_addr().map_err(|source| GatewayError::Bind { transport: "udp", addr: sip.listen_udp, source })?;
        // Bursts of hundreds of calls a second outrun the default buffer while the receive
        // loop is descheduled; the kernel caps the request at net.core.rmem_max.
        if let Err(e) = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20) {
            tracing::debug!(error = %e, "cannot enlarge the SIP UDP receive buffer");
        }
        let external = sip.public_address.map(|ip| SocketAddr::new(ip, local_addr.port()));
        let guarded = Arc::new(guard::GuardedUdp::new(sock, metrics.clone(), sip.user_agent.clone()));
        let conn = UdpConnection::from_socket(guarded, external, Some(cancel.child_token())).await?;
        let transport = TransportLayer::new(cancel.child_token());
        transport.add_transport(conn.into());
        if let Some(ca) = tls_roots {
            transport.set_tls_config(rsipstack::transport::TlsConfig { ca_certs: Some(ca), ..Default::default() });
        }
        // A station's connection is idle between re-registrations; keep it at least as long
        // as a registration may last, or its binding would lose its way back.
        transport.set_stream_idle_timeout(std::time::Duration::from_secs(u64::from(sip.max_register_expires_s.max(240)) + 60));
        let registrar = Arc::new(registrar::Registrar::new(sip));
        let limits = Arc::new(limits::SourceLimits::new(sip));
        let endpoint = EndpointBuilder::new()
            .with_user_agent(&sip.user_agent)
            .with_transport_layer(transport)
            .with_cancel_token(cancel.child_token())
            .with_inspector(Box::new(metrics::CountingInspector(metrics.clone())))
            .with_transport_inspector(Box::new(inspect::Inspector {
                metrics: metrics.clone(),
                limits: limits.clone(),
                registrar: registrar.clone(),
                trunks: trunks.clone(),
                server: sip.user_agent.clone(),
            }))
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let host = endpoint.get_addrs().first().map(|a| a.addr.to_string()).unwrap_or_else(|| local_addr.to_string());
        let contact = Uri::try_from(format!("sip:pacer@{host}")).map_err(rsipstack::Error::from)?;
        let host_only = host.rsplit_once(':').map_or(host.clone(), |(h, _)| h.to_string());
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        for t in &trunks {
            metrics.trunk_up.with_label_values(&[t.name()]).set(1);
            metrics.trunk_calls.with_label_values(&[t.name()]).set(0);
        }
        let shared = Arc::new(Shared {
            endpoint: endpoint.inner.clone(),
            dialogs,
            trunks,
            metrics,
            contact,
            host: host_only,
            domain: sip.domain.clone(),
            registrar,
            limits,
            session_expires: sip.session_expires_s,
            min_session_expires: sip.min_session_expires_s,
        });
        let listener = |kind: listen::Kind, addr: SocketAddr| listen::start(kind, addr, shared.endpoint.clone(), shared.limits.clone(), shared.metrics.clone(), cancel.child_token());
        let tcp_addr = match sip.listen_tcp {
            Some(a) => Some(listener(listen::Kind::Tcp, a).await?),
            None => None,
        };
        let tls_addr = match (sip.listen_tls, tls_acceptor) {
            (Some(a), Some(acceptor)) => Some(listener(listen::Kind::Tls(acceptor), a).await?),
            _ => None,
        };
        let ws_addr = match sip.listen_ws {
            Some(a) => Some(listener(listen::Kind::Ws, a).await?),
            None => None,
        };
        tokio::spawn(async move { endpoint.serve().await });
        let (inbound_tx, inbound_rx) = mpsc::channel(256);
        tokio::spawn(inbound::dispatch(shared.clone(), incoming, inbound_tx, cancel.child_token()));
        for t in &shared.trunks {
            tokio::spawn(trunk::keepalive(t.clone(), shared.endpoint.clone(), shared.host.clone(), shared.metrics.clone(), cancel.child_token()));
        }
        tokio::spawn(sample_gauges(Arc::downgrade(&shared), cancel.child_token()));
        tracing::info!(%local_addr, ?tcp_addr, ?tls_addr, ?ws_addr, "SIP gateway listening");
        Ok(SipGateway { shared, local_addr, tcp_addr, tls_addr, ws_addr, inbound: Mutex::new(Some(inbound_rx)), cancel })
    }

    /// The bound UDP address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound TCP listener (`sip.listen_tcp`), if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound TLS listener (`sip.listen_tls`), if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The bound SIP-over-WebSocket listener (`sip.listen_ws`), if any.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Rings a registered station (a desk phone that cannot hold a persistent leg, or a
    /// WebRTC SIP client), over the connection it registered from. The handle reports
    /// `Dialing { trunk: "station:<user>" }`, ringing, `Answered`, or `Failed` with
    /// [`Outcome::Busy`] (486), [`Outcome::NoAnswer`] (ring timeout: CANCEL) and so on.
    /// Errors when the user has no current registration.
    pub fn call_station(&self, user: &str, sdp_offer: Vec<u8>, ring_timeout: std::time::Duration) -> Result<CallHandle, GatewayError> {
        if self.cancel.is_cancelled() {
            return Err(GatewayError::Closed);
        }
        call::call_station(&self.shared, user, sdp_offer, ring_timeout)
    }

    /// Places a call; its progress arrives on the returned handle. Errors only for requests
    /// that cannot be made at all (unknown trunk, a number that is not a number).
    pub fn originate(&self, req: OriginateRequest) -> Result<CallHandle, GatewayError> {
        if self.cancel.is_cancelled() {
            return Err(GatewayError::Closed);
        }
        call::originate(&self.shared, req)
    }

    /// The inbound calls channel; `None` after the first call (there is one consumer).
    pub fn take_inbound(&self) -> Option<mpsc::Receiver<InboundCall>> {
        self.inbound.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Sets (or replaces) the digest password of a station user; the application loads
    /// these from its agents. Stations without a password cannot register.
    pub fn set_station_password(&self, user: &str, password: &str) {
        self.shared.registrar.set_password(user, password);
    }

    /// Stations registered now (expired bindings are left out).
    pub fn stations(&self) -> Vec<Station> {
        self.shared.registrar.stations()
    }

    /// Up/down state and current calls of every trunk, in configuration order.
    pub fn trunk_status(&self) -> Vec<TrunkStatus> {
        self.shared.trunks.iter().map(|t| TrunkStatus { name: t.name().into(), up: t.is_up(), calls: t.concurrent() }).collect()
    }

    /// Registers the gateway's collectors (`pacer_sip_*`) into `registry`.
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        self.shared.metrics.register(registry)
    }

    /// Stops the listener and every task of the gateway.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// Refreshes the gauges nothing else updates: transactions in flight, banned sources and
/// expired registrations. Holds the gateway weakly so it never keeps it alive.
async fn sample_gauges(shared: std::sync::Weak<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut n = 0u32;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(shared) = shared.upgrade() else { return };
        shared.metrics.transactions.set(shared.endpoint.transactions.len() as i64);
        shared.metrics.banned_sources.set(shared.limits.banned(std::time::Instant::now()) as i64);
        n = n.wrapping_add(1);
        if n % 10 == 0 {
            shared.registrar.purge(&shared.metrics);
        }
    }
}

impl Drop for SipGateway {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
