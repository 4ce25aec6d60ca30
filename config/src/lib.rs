//! `pacer-config`: Pacer's typed settings.
//!
//! One struct per section ([`HttpConfig`], [`SipConfig`], [`TrunkConfig`], [`MediaConfig`],
//! [`DatabaseConfig`], [`RecordingsConfig`], [`AuthConfig`], [`MetricsConfig`],
//! [`LoggingConfig`], [`DialerConfig`]), gathered in [`Config`]. Every section has defaults
//! that run out of the box on loopback, so an empty file (or no file) is a valid config.
//!
//! Loading merges, in order: the defaults, a TOML file, and `PACER_…` environment
//! variables where `__` separates the section from the key
//! (`PACER_HTTP__LISTEN=127.0.0.1:9000`, `PACER_DATABASE__URL=postgres://…`).
//! Unknown keys are refused (`deny_unknown_fields`).
//!
//! [`Config::load`] reports **every** problem it finds at once, each as `key: reason`:
//! a type error in one section does not hide a bad value in another.
//!
//! ```
//! let cfg = pacer_config::Config::from_toml_str("[http]\nlisten = \"127.0.0.1:9000\"").unwrap();
//! assert_eq!(cfg.http.listen.port(), 9000);
//! ```

mod validate;

pub use validate::is_e164_prefix;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "PACER_";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where Pacer keeps its files (the SQLite database, recordings) unless told otherwise.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub sip: SipConfig,
    /// Outbound/inbound SIP trunks to carriers (`[[trunks]]`, zero or more).
    pub trunks: Vec<TrunkConfig>,
    pub media: MediaConfig,
    pub database: DatabaseConfig,
    pub recordings: RecordingsConfig,
    pub auth: AuthConfig,
    pub metrics: MetricsConfig,
    pub logging: LoggingConfig,
    pub dialer: DialerConfig,
    pub webhooks: WebhooksConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            http: HttpConfig::default(),
            sip: SipConfig::default(),
            trunks: Vec::new(),
            media: MediaConfig::default(),
            database: DatabaseConfig::default(),
            recordings: RecordingsConfig::default(),
            auth: AuthConfig::default(),
            metrics: MetricsConfig::default(),
            logging: LoggingConfig::default(),
            dialer: DialerConfig::default(),
            webhooks: WebhooksConfig::default(),
        }
    }
}

/// HTTP server: API, agent and supervisor pages, `/metrics`, health checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Certificate chain (PEM) for HTTPS/WSS; plain HTTP when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted, in bytes (CSV imports stream past this limit).
    pub max_body_bytes: u64,
    /// Seconds given to in-flight requests on shutdown.
    pub shutdown_grace_s: u64,
    /// The URL CRMs and browsers reach this server at (signed recording links in
    /// webhooks); `http://LISTEN` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 1 << 20,
            shutdown_grace_s: 10,
            public_url: None,
        }
    }
}

/// SIP transports and the station registrar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP listen address.
    pub listen_udp: SocketAddr,
    /// TCP listen address (disabled when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_tcp: Option<SocketAddr>,
    /// TLS listen address (needs `tls_cert` and `tls_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_tls: Option<SocketAddr>,
    /// SIP over WebSocket (RFC 7118) listen address for WebRTC SIP clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_ws: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Address written into Via/Contact/SDP when it differs from the bound one (NAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_address: Option<IpAddr>,
    /// Domain (realm) of agent stations' registrations.
    pub domain: String,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// Longest registration granted to a station, in seconds.
    pub max_register_expires_s: u32,
    /// REGISTER/INVITE requests per second allowed from one source address.
    pub rate_limit_per_source: u32,
    /// Failed authentications from one source before it is blocked.
    pub ban_after_failures: u32,
    /// How long a blocked source stays blocked, in seconds.
    pub ban_seconds: u64,
    /// Session interval (RFC 4028) offered on outbound calls and accepted on inbound ones,
    /// in seconds; 0 leaves session timers to the peer.
    pub session_expires_s: u32,
    /// Smallest session interval accepted (Min-SE); shorter requests get 422.
    pub min_session_expires_s: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen_udp: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            listen_tcp: None,
            listen_tls: None,
            listen_ws: None,
            tls_cert: None,
            tls_key: None,
            public_address: None,
            domain: "pacer.local".into(),
            user_agent: concat!("Pacer/", env!("CARGO_PKG_VERSION")).into(),
            max_register_expires_s: 3600,
            rate_limit_per_source: 50,
            ban_after_failures: 10,
            ban_seconds: 600,
            session_expires_s: 1800,
            min_session_expires_s: 90,
        }
    }
}

/// SIP transport of a trunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// One carrier trunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkConfig {
    /// Name used by campaigns and in metrics labels.
    pub name: String,
    /// Carrier's host name or address.
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// CA certificates (PEM) trusted for a `tls` trunk's certificate.
    pub tls_ca: PathBuf,
    /// Digest credentials for 401/407 challenges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Default caller ID (E.164) when a campaign sets none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    /// Digits removed from the front of the dialled number.
    pub strip_prefix: String,
    /// Digits added in front of the dialled number (after stripping).
    pub add_prefix: String,
    /// Most concurrent calls on this trunk.
    pub max_concurrent: u32,
    /// Most new calls per second on this trunk.
    pub max_cps: u32,
    /// Seconds between OPTIONS keep-alives (0 disables them).
    pub options_interval_s: u64,
    /// Consecutive keep-alive failures before the trunk is marked down.
    pub down_after: u32,
    /// Consecutive keep-alive successes before a down trunk is marked up.
    pub up_after: u32,
    /// Addresses (IP or CIDR) whose INVITEs are accepted as inbound calls on this trunk.
    pub inbound_from: Vec<String>,
    /// Trunks tried next, in order, when this one answers 503 or 408, or does not answer.
    pub failover: Vec<String>,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            host: String::new(),
            port: 5060,
            transport: Transport::Udp,
            tls_ca: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            username: None,
            password: None,
            caller_id: None,
            strip_prefix: String::new(),
            add_prefix: String::new(),
            max_concurrent: 100,
            max_cps: 10,
            options_interval_s: 30,
            down_after: 3,
            up_after: 2,
            inbound_from: Vec::new(),
            failover: Vec::new(),
        }
    }
}

/// RTP media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address RTP sockets bind.
    pub rtp_ip: IpAddr,
    /// Address written into SDP when it differs from `rtp_ip` (NAT, WebRTC candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
    /// First port of the RTP range (even).
    pub rtp_port_min: u16,
    /// Last port of the RTP range.
    pub rtp_port_max: u16,
    /// Codecs offered, in order of preference (`PCMU`, `PCMA`).
    pub codecs: Vec<String>,
    /// Seconds without RTP from a live call before it is considered dead (0 disables).
    pub rtp_timeout_s: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: None,
            rtp_port_min: 20000,
            rtp_port_max: 29999,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            rtp_timeout_s: 30,
        }
    }
}

/// The store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` (embedded default; empty means `DATA_DIR/pacer.db`) or `postgres://…`.
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Seconds to wait for a connection from the pool.
    pub acquire_timeout_s: u64,
    /// Apply pending migrations when `pacer serve` starts.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 10, acquire_timeout_s: 5, migrate_on_start: true }
    }
}

/// Call recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingsConfig {
    /// Record answered calls.
    pub enabled: bool,
    /// Directory of the WAV files (empty means `DATA_DIR/recordings`).
    pub directory: PathBuf,
    /// Days recordings are kept (0 keeps them forever).
    pub retention_days: u32,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self { enabled: true, directory: PathBuf::new(), retention_days: 0 }
    }
}

/// Users, sessions and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Hours a web session lasts.
    pub session_hours: u32,
    /// Send cookies with `Secure` (turn off only for plain-HTTP development).
    pub secure_cookies: bool,
    /// Seconds a signed recording URL stays valid.
    pub signed_url_ttl_s: u64,
    /// Secret for signed URLs and webhook signatures; generated in `DATA_DIR` when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// A bearer token with the admin role, accepted besides the tokens in the database:
    /// for provisioning (create the first users and tokens) and tests. At least 32
    /// characters; leave unset in production once real tokens exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { session_hours: 12, secure_cookies: true, signed_url_ttl_s: 3600, signing_key: None, admin_token: None }
    }
}

/// Call events POSTed to a CRM: on call end and on disposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// `http://` or `https://` URLs that receive every event.
    pub urls: Vec<String>,
    /// Seconds a delivery may take before it counts as failed.
    pub timeout_s: u64,
    /// Deliveries tried per event and URL (1 s, 2 s, 4 s … apart, at most 5 min).
    pub max_attempts: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self { urls: Vec::new(), timeout_s: 5, max_attempts: 8 }
    }
}

/// Prometheus exposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve metrics at all.
    pub enabled: bool,
    /// Path on the HTTP server.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, path: "/metrics".into() }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `tracing` filter directive (`info`, `pacer=debug,sqlx=warn`, …); `RUST_LOG` wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// System-wide dialling rules that no campaign can loosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialerConfig {
    /// Country assumed for numbers written without a country code (ISO 3166 alpha-2).
    pub default_country: String,
    /// Time zone of the call centre (IANA name), used for reports and holidays.
    pub time_zone: String,
    /// Earliest local time (called party's) any call may be placed, `HH:MM`.
    pub legal_window_start: String,
    /// Latest local time (called party's) any call may be placed, `HH:MM`.
    pub legal_window_end: String,
    /// Seconds a claimed lead stays leased before it returns to the hopper.
    pub lease_s: u64,
    /// This node's name in lead leases; stable across restarts so that a restarted node
    /// takes back at once what it held when it stopped. The host name when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// E.164 prefixes (`"+1"`, `"+44"`) the dialer may call; anything else is international
    /// toll fraud waiting to happen and is refused. Campaigns can only narrow this list.
    /// The calling code of `default_country` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_destinations: Option<Vec<String>>,
    /// Dial premium-rate, shared-cost and personal numbers (refused by default: they cost
    /// the caller per minute, and are what a fraudster points a hijacked dialer at).
    pub allow_premium: bool,
}

impl Default for DialerConfig {
    fn default() -> Self {
        Self {
            default_country: "US".into(),
            time_zone: "UTC".into(),
            legal_window_start: "08:00".into(),
            legal_window_end: "21:00".into(),
            lease_s: 600,
            node_name: None,
            allowed_destinations: None,
            allow_premium: false,
        }
    }
}

/// One problem found in a configuration: the dotted key and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Load defaults, then `file` (when given), then `PACER_…` environment variables;
    /// validate; report every problem.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        if let Some(path) = file {
            if let Err(e) = std::fs::metadata(path) {
                return Err(ConfigError {
                    problems: vec![Problem { key: path.display().to_string(), reason: format!("cannot read file: {e}") }],
                });
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__"));
        Self::from_figment(fig)
    }

    /// Parse a TOML text on top of the defaults (no environment), validate.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)))
    }

    fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        // A TOML syntax error stops everything: there is nothing else to read.
        let root: figment::value::Dict = match fig.extract() {
            Ok(d) => d,
            Err(e) => {
                return Err(ConfigError { problems: figment_problems(e, "") });
            }
        };
        const SECTIONS: [&str; 12] =
            ["data_dir", "http", "sip", "trunks", "media", "database", "recordings", "auth", "metrics", "logging", "dialer", "webhooks"];
        for key in root.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(Problem {
                    key: key.clone(),
                    reason: format!("unknown section or key (expected one of: {})", SECTIONS.join(", ")),
                });
            }
        }
        // Each section is read on its own so that one section's type error does not hide
        // another's.
        let defaults = Config::default();
        let cfg = Config {
            data_dir: section(&fig, "data_dir", defaults.data_dir, &mut problems),
            http: section(&fig, "http", defaults.http, &mut problems),
            sip: section(&fig, "sip", defaults.sip, &mut problems),
            trunks: section(&fig, "trunks", defaults.trunks, &mut problems),
            media: section(&fig, "media", defaults.media, &mut problems),
            database: section(&fig, "database", defaults.database, &mut problems),
            recordings: section(&fig, "recordings", defaults.recordings, &mut problems),
            auth: section(&fig, "auth", defaults.auth, &mut problems),
            metrics: section(&fig, "metrics", defaults.metrics, &mut problems),
            logging: section(&fig, "logging", defaults.logging, &mut problems),
            dialer: section(&fig, "dialer", defaults.dialer, &mut problems),
            webhooks: section(&fig, "webhooks", defaults.webhooks, &mut problems),
        };
        validate::validate(&cfg, &mut problems);
        if problems.is_empty() { Ok(cfg) } else { Err(ConfigError { problems }) }
    }

    /// The database URL in effect: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("pacer.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The recordings directory in effect.
    pub fn recordings_dir(&self) -> PathBuf {
        if self.recordings.directory.as_os_str().is_empty() {
            self.data_dir.join("recordings")
        } else {
            self.recordings.directory.clone()
        }
    }
}

fn section<T: DeserializeOwned + Serialize>(fig: &Figment, name: &str, default: T, problems: &mut Vec<Problem>) -> T {
    if !fig.contains(name) {
        return default;
    }
    // Re-seed the section with its defaults so that partial sections are filled in.
    let seeded = Figment::from(Serialized::default(name, &default)).merge(fig.clone());
    match seeded.extract_inner::<T>(name) {
        Ok(v) => v,
        Err(e) => {
            problems.extend(figment_problems(e, name));
            default
        }
    }
}

fn figment_problems(err: figment::Error, section: &str) -> Vec<Problem> {
    err.into_iter()
        .map(|e| {
            // `extract_inner` reports the focused section after the inner path.
            let mut path: Vec<&str> = e.path.iter().map(String::as_str).filter(|p| *p != section).collect();
            if !section.is_empty() {
                path.insert(0, section);
            }
            let key = path.join(".");
            let mut reason = e.kind.to_string();
            if let Some(md) = &e.metadata {
                if let Some(src) = &md.source {
                    reason = format!("{reason} (in {src})");
                } else {
                    reason = format!("{reason} (from {})", md.name);
                }
            }
            Problem { key, reason }
        })
        .collect()
}
