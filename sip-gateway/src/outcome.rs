//! How a final SIP response becomes a dialler outcome.
//!
//! Carriers disagree on status codes but most send a `Reason: Q.850;cause=N` header with the
//! ISDN cause behind the failure; when it names a cause we know, it wins over the status code,
//! because it is the more precise of the two (a 480 with cause 17 is a busy line).

use rsipstack::sip::{Header, Response};

/// What happened to a call that was not answered, in the dialler's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The line is busy (486, 600, Q.850 cause 17).
    Busy,
    /// Nobody answered before the ring timeout, or the far end reported no answer (480, 408).
    NoAnswer,
    /// The number does not exist or is incomplete (404, 484, 410, 604, Q.850 cause 1, 28).
    InvalidNumber,
    /// The carrier or the trunk has no capacity (503, trunk limits reached).
    Congestion,
    /// The call was refused (403, 603, 488, failed authentication).
    Rejected,
    /// The carrier could not be reached or failed (timeouts without any response, 5xx).
    NetworkFailure,
    /// The application hung up before the call was answered.
    Cancelled,
}

impl Outcome {
    /// Stable lower-case name, used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::InvalidNumber => "invalid_number",
            Outcome::Congestion => "congestion",
            Outcome::Rejected => "rejected",
            Outcome::NetworkFailure => "network_failure",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Outcome of a final non-2xx status, refined by a Q.850 cause when there is one.
pub fn classify(status: u16, q850: Option<u16>) -> Outcome {
    if let Some(outcome) = q850.and_then(from_q850) {
        return outcome;
    }
    match status {
        486 | 600 => Outcome::Busy,
        404 | 410 | 484 | 485 | 604 => Outcome::InvalidNumber,
        480 | 408 | 487 => Outcome::NoAnswer,
        503 | 502 | 504 | 580 => Outcome::Congestion,
        403 | 603 | 401 | 407 | 488 | 606 | 402 => Outcome::Rejected,
        500..=599 => Outcome::NetworkFailure,
        _ => Outcome::Rejected,
    }
}

fn from_q850(cause: u16) -> Option<Outcome> {
    Some(match cause {
        17 => Outcome::Busy,
        1 | 3 | 22 | 28 => Outcome::InvalidNumber,
        18 | 19 => Outcome::NoAnswer,
        21 => Outcome::Rejected,
        34 | 38 | 41 | 42 | 44 | 47 => Outcome::Congestion,
        _ => return None,
    })
}

/// Whether the next trunk should be tried after this status (RFC 3261 §21.5.4: 503 means
/// "try elsewhere"; a 408 means this carrier did not get an answer in time).
pub fn fails_over(status: u16) -> bool {
    matches!(status, 503 | 408)
}

/// The Q.850 cause and text of a response's `Reason` header(s), if any.
pub fn q850_cause(resp: &Response) -> Option<(u16, Option<String>)> {
    resp.headers.iter().find_map(|h| match h {
        Header::Reason(r) => parse_reason(&r.to_string()),
        Header::Other(name, value) if name.eq_ignore_ascii_case("reason") => parse_reason(value),
        _ => None,
    })
}

/// Parses `Q.850;cause=17;text="User busy"` (possibly one of several comma-separated
/// reasons). Only the Q.850 protocol is read: a `SIP;cause=...` reason repeats the status.
pub fn parse_reason(value: &str) -> Option<(u16, Option<String>)> {
    let value = value.trim().strip_prefix("Reason:").unwrap_or(value).trim();
    for reason in split_outside_quotes(value, ',') {
        let mut parts = split_outside_quotes(reason, ';').into_iter();
        let protocol = parts.next()?.trim();
        if !protocol.eq_ignore_ascii_case("q.850") {
            continue;
        }
        let (mut cause, mut text) = (None, None);
        for p in parts {
            let Some((k, v)) = p.split_once('=') else { continue };
            match k.trim().to_ascii_lowercase().as_str() {
                "cause" => cause = v.trim().parse::<u16>().ok(),
                "text" => text = Some(v.trim().trim_matches('"').to_string()),
                _ => {}
            }
        }
        if let Some(c) = cause {
            return Some((c, text));
        }
    }
    None
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_outcomes() {
        assert_eq!(classify(486, None), Outcome::Busy);
        assert_eq!(classify(404, None), Outcome::InvalidNumber);
        assert_eq!(classify(484, None), Outcome::InvalidNumber);
        assert_eq!(classify(480, None), Outcome::NoAnswer);
        assert_eq!(classify(408, None), Outcome::NoAnswer);
        assert_eq!(classify(503, None), Outcome::Congestion);
        assert_eq!(classify(403, None), Outcome::Rejected);
        assert_eq!(classify(603, None), Outcome::Rejected);
        assert_eq!(classify(500, None), Outcome::NetworkFailure);
    }

    #[test]
    fn q850_cause_wins_over_status() {
        assert_eq!(classify(480, Some(17)), Outcome::Busy);
        assert_eq!(classify(603, Some(1)), Outcome::InvalidNumber);
        assert_eq!(classify(486, Some(999)), Outcome::Busy);
    }

    #[test]
    fn reason_header_parsing() {
        assert_eq!(parse_reason("Q.850;cause=17;text=\"User busy\""), Some((17, Some("User busy".into()))));
        assert_eq!(parse_reason("SIP;cause=486, Q.850 ; cause=17"), Some((17, None)));
        assert_eq!(parse_reason("q.850;text=\"a;b,c\";cause=34"), Some((34, Some("a;b,c".into()))));
        assert_eq!(parse_reason("SIP;cause=200"), None);
        assert_eq!(parse_reason("Q.850;cause=abc"), None);
        assert_eq!(parse_reason(""), None);
        assert_eq!(parse_reason("\"unterminated"), None);
    }
}
