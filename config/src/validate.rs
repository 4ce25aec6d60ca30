//! Value checks that types alone cannot express. Every check runs; each failure is one
//! [`Problem`], so a user fixes a file in one pass.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use crate::{Config, Problem};

struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn fail(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), reason: reason.into() });
    }

    fn check(&mut self, ok: bool, key: impl Into<String>, reason: impl Into<String>) {
        if !ok {
            self.fail(key, reason);
        }
    }

    fn readable_file(&mut self, key: &str, path: &Path) {
        if let Err(e) = std::fs::File::open(path) {
            self.fail(key, format!("cannot read {}: {e}", path.display()));
        }
    }

    /// A certificate and its key come together, and both must be readable.
    fn cert_pair(&mut self, section: &str, cert: Option<&Path>, key: Option<&Path>) {
        match (cert, key) {
            (Some(c), Some(k)) => {
                self.readable_file(&format!("{section}.tls_cert"), c);
                self.readable_file(&format!("{section}.tls_key"), k);
            }
            (Some(_), None) => self.fail(format!("{section}.tls_key"), "missing: tls_cert is set"),
            (None, Some(_)) => self.fail(format!("{section}.tls_cert"), "missing: tls_key is set"),
            (None, None) => {}
        }
    }
}

/// Parse `HH:MM` (00:00–24:00) into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

/// `+` then 1 to 15 digits, the first not 0: the start of an E.164 number.
pub fn is_e164_prefix(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
}

/// An address or a CIDR block such as `192.0.2.0/24`.
fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, len)) => match (ip.parse::<IpAddr>(), len.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(l)) => l <= 32,
            (Ok(IpAddr::V6(_)), Ok(l)) => l <= 128,
            _ => false,
        },
    }
}

pub(crate) fn validate(cfg: &Config, problems: &mut Vec<Problem>) {
    let mut c = Checker { problems };

    c.check(!cfg.data_dir.as_os_str().is_empty(), "data_dir", "must not be empty");

    // http
    c.cert_pair("http", cfg.http.tls_cert.as_deref(), cfg.http.tls_key.as_deref());
    c.check(cfg.http.max_body_bytes >= 1024, "http.max_body_bytes", "must be at least 1024");

    // sip
    let sip = &cfg.sip;
    c.cert_pair("sip", sip.tls_cert.as_deref(), sip.tls_key.as_deref());
    if sip.listen_tls.is_some() && sip.tls_cert.is_none() {
        c.fail("sip.listen_tls", "needs sip.tls_cert and sip.tls_key");
    }
    let mut bound = vec![("sip.listen_udp", sip.listen_udp)];
    bound.extend(sip.listen_tcp.map(|a| ("sip.listen_tcp", a)));
    bound.extend(sip.listen_tls.map(|a| ("sip.listen_tls", a)));
    bound.extend(sip.listen_ws.map(|a| ("sip.listen_ws", a)));
    for (i, (ka, a)) in bound.iter().enumerate() {
        // UDP and TCP may share a port; two stream listeners may not.
        for (kb, b) in &bound[i + 1..] {
            if a == b && *ka != "sip.listen_udp" && a.port() != 0 {
                c.fail(*kb, format!("same address as {ka} ({a})"));
            }
        }
    }
    if (sip.listen_ws.is_some_and(|a| a == cfg.http.listen)) && cfg.http.listen.port() != 0 {
        c.fail("sip.listen_ws", "same address as http.listen");
    }
    c.check(!sip.domain.trim().is_empty(), "sip.domain", "must not be empty");
    c.check(sip.max_register_expires_s >= 60, "sip.max_register_expires_s", "must be at least 60");
    c.check(sip.rate_limit_per_source > 0, "sip.rate_limit_per_source", "must be greater than 0");
    c.check(sip.min_session_expires_s >= 90, "sip.min_session_expires_s", "must be at least 90 (RFC 4028)");
    c.check(
        sip.session_expires_s == 0 || sip.session_expires_s >= sip.min_session_expires_s,
        "sip.session_expires_s",
        "must be 0 or at least sip.min_session_expires_s",
    );

    // trunks
    let mut names = HashSet::new();
    for (i, t) in cfg.trunks.iter().enumerate() {
        let k = |f: &str| format!("trunks[{i}].{f}");
        if t.name.trim().is_empty() {
            c.fail(k("name"), "must not be empty");
        } else if !names.insert(t.name.as_str()) {
            c.fail(k("name"), format!("duplicate trunk name {:?}", t.name));
        }
        c.check(!t.host.trim().is_empty(), k("host"), "must not be empty");
        c.check(t.port != 0, k("port"), "must be between 1 and 65535");
        c.check(t.max_concurrent > 0, k("max_concurrent"), "must be greater than 0");
        c.check(t.max_cps > 0, k("max_cps"), "must be greater than 0");
        c.check(t.down_after > 0, k("down_after"), "must be greater than 0");
        c.check(t.up_after > 0, k("up_after"), "must be greater than 0");
        if t.username.is_some() != t.password.is_some() {
            c.fail(k("password"), "username and password go together");
        }
        c.check(t.strip_prefix.chars().all(|ch| ch.is_ascii_digit() || ch == '+'), k("strip_prefix"), "digits only");
        c.check(t.add_prefix.chars().all(|ch| ch.is_ascii_digit() || ch == '+'), k("add_prefix"), "digits only");
        if t.transport == crate::Transport::Tls {
            c.readable_file(&k("tls_ca"), &t.tls_ca);
        }
        for (j, a) in t.inbound_from.iter().enumerate() {
            c.check(is_ip_or_cidr(a), k(&format!("inbound_from[{j}]")), format!("{a:?} is not an IP address or CIDR block"));
        }
    }

    // media
    let m = &cfg.media;
    if m.rtp_port_min > m.rtp_port_max {
        c.fail("media.rtp_port_min", format!("empty RTP port range {}..={}", m.rtp_port_min, m.rtp_port_max));
    } else if u32::from(m.rtp_port_max) - u32::from(m.rtp_port_min) < 1 {
        c.fail("media.rtp_port_max", "the RTP range needs at least two ports (RTP and RTCP)");
    }
    c.check(m.rtp_port_min >= 1024, "media.rtp_port_min", "must be at least 1024");
    c.check(m.rtp_port_min.is_multiple_of(2), "media.rtp_port_min", "must be even (RTP uses even ports)");
    if m.codecs.is_empty() {
        c.fail("media.codecs", "must name at least one codec");
    }
    for (i, codec) in m.codecs.iter().enumerate() {
        c.check(matches!(codec.as_str(), "PCMU" | "PCMA"), format!("media.codecs[{i}]"), format!("unknown codec {codec:?} (PCMU, PCMA)"));
    }

    // database
    let url = &cfg.database.url;
    c.check(
        url.is_empty() || url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "database.url",
        "must start with sqlite:, postgres:// or postgresql://",
    );
    c.check(cfg.database.max_connections > 0, "database.max_connections", "must be greater than 0");
    c.check(cfg.database.acquire_timeout_s > 0, "database.acquire_timeout_s", "must be greater than 0");

    // auth, metrics, logging
    c.check(cfg.auth.session_hours > 0, "auth.session_hours", "must be greater than 0");
    c.check(cfg.auth.signed_url_ttl_s > 0, "auth.signed_url_ttl_s", "must be greater than 0");
    if let Some(t) = &cfg.auth.admin_token {
        c.check(t.len() >= 32, "auth.admin_token", "must be at least 32 characters");
    }
    if let Some(k) = &cfg.auth.signing_key {
        c.check(k.len() >= 32, "auth.signing_key", "must be at least 32 characters");
    }
    c.check(cfg.metrics.path.starts_with('/'), "metrics.path", "must start with /");
    c.check(!cfg.logging.level.trim().is_empty(), "logging.level", "must not be empty");

    // dialer
    let d = &cfg.dialer;
    c.check(
        d.default_country.len() == 2 && d.default_country.chars().all(|ch| ch.is_ascii_uppercase()),
        "dialer.default_country",
        format!("{:?} is not an ISO 3166 alpha-2 code such as US or GB", d.default_country),
    );
    if d.time_zone.parse::<chrono_tz::Tz>().is_err() {
        c.fail("dialer.time_zone", format!("unknown time zone {:?} (use an IANA name such as Europe/Paris)", d.time_zone));
    }
    match (parse_hhmm(&d.legal_window_start), parse_hhmm(&d.legal_window_end)) {
        (Some(s), Some(e)) => c.check(s < e, "dialer.legal_window_end", "must be later than legal_window_start"),
        (s, e) => {
            if s.is_none() {
                c.fail("dialer.legal_window_start", format!("{:?} is not a time HH:MM", d.legal_window_start));
            }
            if e.is_none() {
                c.fail("dialer.legal_window_end", format!("{:?} is not a time HH:MM", d.legal_window_end));
            }
        }
    }
    c.check(d.lease_s >= 30, "dialer.lease_s", "must be at least 30");
    if let Some(n) = &d.node_name {
        c.check(!n.is_empty() && n.len() <= 64 && !n.contains(char::is_whitespace), "dialer.node_name", "1 to 64 characters, no spaces");
    }
    if let Some(list) = &d.allowed_destinations {
        c.check(!list.is_empty(), "dialer.allowed_destinations", "lists no prefix, so nothing could be dialled (leave it out for default_country's calling code)");
        for (i, p) in list.iter().enumerate() {
            c.check(is_e164_prefix(p), format!("dialer.allowed_destinations[{i}]"), format!("{p:?} is not an E.164 prefix (+ then 1 to 15 digits, the first not 0)"));
        }
    }

    if let Some(u) = &cfg.http.public_url {
        c.check(u.starts_with("http://") || u.starts_with("https://"), "http.public_url", format!("{u:?} is not an http:// or https:// URL"));
    }
    let w = &cfg.webhooks;
    for (i, u) in w.urls.iter().enumerate() {
        let ok = (u.starts_with("http://") || u.starts_with("https://")) && u.len() > "https://".len() && !u.contains(char::is_whitespace);
        c.check(ok, format!("webhooks.urls[{i}]"), format!("{u:?} is not an http:// or https:// URL"));
    }
    c.check((1..=300).contains(&w.timeout_s), "webhooks.timeout_s", "must be between 1 and 300");
    c.check((1..=50).contains(&w.max_attempts), "webhooks.max_attempts", "must be between 1 and 50");
}
