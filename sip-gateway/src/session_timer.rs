//! RFC 4028 session timers: reading `Session-Expires` and `Min-SE`, choosing who refreshes,
//! and when the next refresh is due (or when a session nobody refreshed must be ended).
//! Sans-I/O: deadlines are computed from an instant the caller passes in.

use std::time::Duration;

use rsipstack::sip::{Header, Headers};
use tokio::time::Instant;

/// Who refreshes the session, from the point of view of the dialog's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// The value of the first header named `name` (or its compact form), untyped.
pub(crate) fn header_value(headers: &Headers, name: &str, compact: Option<&str>) -> Option<String> {
    headers.iter().find_map(|h| {
        let text = h.to_string();
        let (n, v) = text.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))).then(|| v.trim().to_string())
    })
}

/// `Session-Expires: 1800;refresher=uac` → (1800, Some(Uac)).
pub(crate) fn session_expires(headers: &Headers) -> Option<(u32, Option<Refresher>)> {
    let value = header_value(headers, "session-expires", Some("x"))?;
    let mut parts = value.split(';');
    let secs = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match v.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(Refresher::Uac),
            "uas" => Some(Refresher::Uas),
            _ => None,
        }
    });
    Some((secs, refresher))
}

/// `Min-SE: 90` → 90.
pub(crate) fn min_se(headers: &Headers) -> Option<u32> {
    header_value(headers, "min-se", None)?.split(';').next()?.trim().parse().ok()
}

pub(crate) fn session_expires_header(secs: u32, refresher: Option<Refresher>) -> Header {
    let value = match refresher {
        Some(r) => format!("{secs};refresher={}", r.as_str()),
        None => secs.to_string(),
    };
    Header::Other("Session-Expires".into(), value)
}

/// A running session timer on one dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionTimer {
    pub interval: Duration,
    /// Whether this side sends the refreshes.
    pub we_refresh: bool,
}

impl SessionTimer {
    /// The next thing to do after a refresh at `at`: refresh at half the interval (RFC 4028
    /// §10), or, when the peer refreshes, give up on the session shortly before it expires
    /// (the smaller of 32 s and a third of the interval, §10).
    pub fn deadline(&self, at: Instant) -> Instant {
        if self.we_refresh {
            at + self.interval / 2
        } else {
            at + self.interval - (self.interval / 3).min(Duration::from_secs(32))
        }
    }

    /// From a 2xx to our INVITE (we are the UAC): a timer only when it names an interval.
    pub fn from_uac_response(headers: &Headers) -> Option<SessionTimer> {
        let (secs, refresher) = session_expires(headers)?;
        (secs > 0).then(|| SessionTimer { interval: Duration::from_secs(secs.into()), we_refresh: refresher == Some(Refresher::Uac) })
    }
}

/// What to do with a request that may ask for a session timer (INVITE, re-INVITE, UPDATE)
/// when we answer it (we are its UAS for this transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Offer {
    /// No timer asked for.
    None,
    /// Accept: answer with `Session-Expires: secs;refresher=...` and `Require: timer`.
    Accept { secs: u32, refresher: Refresher },
    /// Too short: answer 422 with `Min-SE: min`.
    TooSmall { min: u32 },
}

/// Decides the answer to a session-timer request; a request with no refresher leaves the
/// refreshing to its sender (the UAC of that transaction), which keeps our side passive.
pub(crate) fn answer(headers: &Headers, min: u32) -> Offer {
    match session_expires(headers) {
        None => Offer::None,
        Some((secs, _)) if secs < min => Offer::TooSmall { min },
        Some((secs, refresher)) => Offer::Accept { secs, refresher: refresher.unwrap_or(Refresher::Uac) },
    }
}

impl Offer {
    /// Headers of the 2xx answer for an accepted timer.
    pub fn headers(&self) -> Vec<Header> {
        match self {
            Offer::Accept { secs, refresher } => vec![session_expires_header(*secs, Some(*refresher)), Header::Require("timer".into())],
            _ => Vec::new(),
        }
    }

    /// The timer this side runs after answering (`Uas` refresher means we refresh).
    pub fn timer(&self) -> Option<SessionTimer> {
        match self {
            Offer::Accept { secs, refresher } => Some(SessionTimer { interval: Duration::from_secs((*secs).into()), we_refresh: *refresher == Refresher::Uas }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> Headers {
        let text = format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\nCall-ID: a\r\n{}\r\nContent-Length: 0\r\n\r\n", lines.join("\r\n"));
        match rsipstack::sip::SipMessage::try_from(text.as_str()).unwrap() {
            rsipstack::sip::SipMessage::Response(r) => r.headers,
            _ => unreachable!(),
        }
    }

    #[test]
    fn parses_session_expires_and_min_se() {
        assert_eq!(session_expires(&headers(&["Session-Expires: 1800;refresher=uac"])), Some((1800, Some(Refresher::Uac))));
        assert_eq!(session_expires(&headers(&["x: 90 ; refresher=UAS"])), Some((90, Some(Refresher::Uas))));
        assert_eq!(session_expires(&headers(&["Session-Expires: soon"])), None);
        assert_eq!(session_expires(&headers(&["Subject: none"])), None);
        assert_eq!(min_se(&headers(&["Min-SE: 120"])), Some(120));
    }

    #[test]
    fn deadlines_follow_rfc_4028() {
        let t0 = Instant::now();
        let ours = SessionTimer { interval: Duration::from_secs(90), we_refresh: true };
        assert_eq!(ours.deadline(t0), t0 + Duration::from_secs(45));
        let theirs = SessionTimer { interval: Duration::from_secs(90), we_refresh: false };
        assert_eq!(theirs.deadline(t0), t0 + Duration::from_secs(60));
        let long = SessionTimer { interval: Duration::from_secs(1800), we_refresh: false };
        assert_eq!(long.deadline(t0), t0 + Duration::from_secs(1768));
    }

    #[test]
    fn answers_requests() {
        assert_eq!(answer(&headers(&["Session-Expires: 60"]), 90), Offer::TooSmall { min: 90 });
        let ok = answer(&headers(&["Session-Expires: 120"]), 90);
        assert_eq!(ok, Offer::Accept { secs: 120, refresher: Refresher::Uac });
        assert_eq!(ok.timer(), Some(SessionTimer { interval: Duration::from_secs(120), we_refresh: false }));
        assert_eq!(answer(&headers(&["Session-Expires: 120;refresher=uas"]), 90).timer().unwrap().we_refresh, true);
        assert_eq!(answer(&headers(&[]), 90), Offer::None);
    }
}
