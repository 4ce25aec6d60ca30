//! Stream listeners: SIP over TCP, TLS and WebSocket (RFC 7118). The gateway accepts the
//! connections itself, so that it knows the port it bound (port 0 in tests), refuses banned
//! sources before any byte is read, and insists on the `sip` WebSocket subprotocol; each
//! accepted connection is then handed to rsipstack's transport layer, which reads it and
//! sends requests for that peer back over it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rsipstack::sip;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::tls::TlsConnection;
use rsipstack::transport::websocket::{WebSocketConnection, WebSocketInner};
use rsipstack::transport::{SipAddr, SipConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::GatewayError;
use crate::limits::SourceLimits;
use crate::metrics::Metrics;

/// Which protocol a listener speaks over its TCP connections.
#[derive(Clone)]
pub(crate) enum Kind {
    Tcp,
    Tls(tokio_rustls::TlsAcceptor),
    Ws,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls(_) => "tls",
            Kind::Ws => "ws",
        }
    }

    fn transport(&self) -> sip::Transport {
        match self {
            Kind::Tcp => sip::Transport::Tcp,
            Kind::Tls(_) => sip::Transport::Tls,
            Kind::Ws => sip::Transport::Ws,
        }
    }
}

/// Binds `addr` and returns the bound address; connections are accepted until `cancel`.
pub(crate) async fn start(
    kind: Kind,
    addr: SocketAddr,
    endpoint: Arc<EndpointInner>,
    limits: Arc<SourceLimits>,
    metrics: Metrics,
    cancel: CancellationToken,
) -> Result<SocketAddr, GatewayError> {
    let transport = kind.name();
    let listener = TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { transport, addr, source })?;
    let local = listener.local_addr().map_err(|source| GatewayError::Bind { transport, addr, source })?;
    info!(%local, transport, "SIP listener ready");
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, transport, "accept failed");
                        continue;
                    }
                },
            };
            if limits.is_banned(peer.ip(), Instant::now()) {
                metrics.blocked.with_label_values(&["banned"]).inc();
                continue;
            }
            stream.set_nodelay(true).ok();
            let (kind, endpoint, cancel) = (kind.clone(), endpoint.clone(), cancel.clone());
            // The handshakes run apart, so a slow or silent client cannot hold up the others.
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), accept(kind.clone(), stream, local, peer, cancel.child_token()));
                match handshake.await {
                    Ok(Ok(conn)) => endpoint.transport_layer.add_connection(conn),
                    Ok(Err(e)) => debug!(%peer, transport = kind.name(), error = %e, "connection refused"),
                    Err(_) => debug!(%peer, transport = kind.name(), "handshake timed out"),
                }
            });
        }
    });
    Ok(local)
}

async fn accept(kind: Kind, stream: TcpStream, local: SocketAddr, peer: SocketAddr, cancel: CancellationToken) -> Result<SipConnection, String> {
    let local_addr = SipAddr { r#type: Some(kind.transport()), addr: local.into() };
    let remote_addr = SipAddr { r#type: Some(kind.transport()), addr: peer.into() };
    match kind {
        Kind::Tcp => TcpConnection::from_stream(stream, local_addr, Some(cancel)).map(SipConnection::Tcp).map_err(|e| e.to_string()),
        Kind::Tls(acceptor) => {
            let tls = acceptor.accept(stream).await.map_err(|e| format!("TLS handshake: {e}"))?;
            TlsConnection::from_server_stream(tls, local_addr, remote_addr, Some(cancel)).await.map(SipConnection::Tls).map_err(|e| e.to_string())
        }
        Kind::Ws => {
            use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
            use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
            // RFC 7118 §4.1: the client offers the `sip` subprotocol and the server selects it;
            // a client that does not speak SIP over WebSocket is refused at the handshake.
            let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
                let offered = req
                    .headers()
                    .get_all("sec-websocket-protocol")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|p| p.trim().eq_ignore_ascii_case("sip"));
                if !offered {
                    let mut err = ErrorResponse::new(Some("the `sip` WebSocket subprotocol is required (RFC 7118)".into()));
                    *err.status_mut() = StatusCode::BAD_REQUEST;
                    return Err(err);
                }
                resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
                Ok(resp)
            };
            let ws = tokio_tungstenite::accept_hdr_async(tokio_tungstenite::MaybeTlsStream::Plain(stream), callback)
                .await
                .map_err(|e| format!("WebSocket handshake: {e}"))?;
            use futures_util::StreamExt;
            let (sink, read) = ws.split();
            Ok(SipConnection::WebSocket(WebSocketConnection {
                inner: Arc::new(WebSocketInner {
                    local_addr,
                    remote_addr,
                    ws_sink: tokio::sync::Mutex::new(sink),
                    ws_read: tokio::sync::Mutex::new(Some(read)),
                }),
                cancel_token: Some(cancel),
            }))
        }
    }
}

/// A TLS acceptor from the PEM certificate chain and key named by `sip.tls_cert`/`tls_key`.
pub(crate) fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, GatewayError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| GatewayError::Tls(format!("{what}: {e}"));
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&format!("sip.tls_cert {}", cert.display()), &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&format!("sip.tls_cert {}", cert.display()), &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&format!("sip.tls_key {}", key.display()), &e))?;
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).map_err(|e| bad("sip TLS certificate", &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
