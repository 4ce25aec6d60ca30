//! Errors the gateway returns to the application.

use thiserror::Error;

/// Why a gateway operation failed. Failures of a call itself are not errors: they arrive
/// as [`crate::CallEvent::Failed`] on the call's event stream.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// A listen address could not be bound.
    #[error("cannot bind SIP {transport} listener on {addr}: {source}")]
    Bind { transport: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    /// `originate` named a trunk that is not configured.
    #[error("unknown trunk `{0}`")]
    UnknownTrunk(String),
    /// A trunk's configuration cannot be used (names the trunk and the reason).
    #[error("trunk `{trunk}`: {reason}")]
    BadTrunk { trunk: String, reason: String },
    /// A dialled number or caller ID holds characters that do not belong in a SIP URI user part.
    #[error("invalid {what} `{value}`: only digits, `+`, `*` and `#` are allowed")]
    InvalidNumber { what: &'static str, value: String },
    /// A TLS certificate, key or CA file cannot be used (names the file and the reason).
    #[error("TLS: {0}")]
    Tls(String),
    /// `call_station` named a user with no current registration.
    #[error("station `{0}` is not registered")]
    StationNotRegistered(String),
    /// The SIP stack refused the operation.
    #[error("SIP stack: {0}")]
    Stack(#[from] rsipstack::Error),
    /// The gateway is shutting down.
    #[error("the SIP gateway is shut down")]
    Closed,
}
