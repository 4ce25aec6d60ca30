//! The first line of defence: every UDP datagram is checked here before the SIP stack sees
//! it. rsipstack's own receive loop drops what it cannot parse without telling anyone and
//! lets requests without a usable CSeq or From reach the transaction layer, where they fail
//! deep inside; so the socket handed to it is this wrapper, which drops and counts what is
//! unusable and answers what can be answered (RFC 3261 §8.2, §16.3, §18.3, §21.5.11).

use std::net::SocketAddr;

use async_trait::async_trait;
use rsipstack::platform::net::UdpSocket as StackSocket;
use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, Request, SipMessage};
use tracing::debug;

use crate::metrics::Metrics;

/// What to do with one datagram.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    Pass,
    Drop(&'static str),
    /// Answer with these bytes (a 400/501/513) and do not hand it on.
    Reply(&'static str, Vec<u8>),
}

pub(crate) struct GuardedUdp {
    sock: tokio::net::UdpSocket,
    buf: tokio::sync::Mutex<Vec<u8>>,
    metrics: Metrics,
    server: String,
}

impl GuardedUdp {
    pub fn new(sock: tokio::net::UdpSocket, metrics: Metrics, server: String) -> Self {
        Self { sock, buf: tokio::sync::Mutex::new(vec![0; 65536]), metrics, server }
    }
}

#[async_trait]
impl StackSocket for GuardedUdp {
    async fn recv_from(&self, out: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        // Only the stack's single receive loop calls this, so the lock is never contended.
        let mut buf = self.buf.lock().await;
        loop {
            let (n, from) = self.sock.recv_from(&mut buf).await?;
            let packet = &buf[..n];
            match check(packet, out.len(), &self.server) {
                Verdict::Pass => {
                    out[..n].copy_from_slice(packet);
                    return Ok((n, from));
                }
                Verdict::Drop(reason) => {
                    debug!(src = %from, len = n, reason, "dropped SIP datagram");
                    self.metrics.bad_messages.with_label_values(&[reason]).inc();
                }
                Verdict::Reply(reason, bytes) => {
                    debug!(src = %from, len = n, reason, "answered bad SIP request");
                    self.metrics.bad_messages.with_label_values(&[reason]).inc();
                    self.sock.send_to(&bytes, from).await.ok();
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.sock.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }
}

/// Judges one datagram; `room` is how many bytes the stack can take.
pub(crate) fn check(packet: &[u8], room: usize, server: &str) -> Verdict {
    if packet.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Pass; // keep-alive (RFC 5626 CRLF), the stack answers it
    }
    let msg = match SipMessage::try_from(packet) {
        Ok(m) => m,
        Err(_) => return unknown_method(packet, server),
    };
    let req = match msg {
        SipMessage::Response(resp) => {
            let ok = resp.via_header().and_then(|v| v.typed()).is_ok()
                && resp.cseq_header().and_then(|c| c.seq()).is_ok()
                && resp.cseq_header().and_then(|c| c.method()).is_ok()
                && resp.call_id_header().is_ok();
            return if !ok {
                Verdict::Drop("bad_response")
            } else if packet.len() > room {
                Verdict::Drop("too_large")
            } else {
                Verdict::Pass
            };
        }
        SipMessage::Request(req) => req,
    };
    // Without a Via there is nowhere to send an answer.
    if req.via_header().and_then(|v| v.typed()).is_err() {
        return Verdict::Drop("no_via");
    }
    let bad = |why: &'static str, status: &str| {
        if req.method == Method::Ack {
            Verdict::Drop(why) // ACK is never answered
        } else {
            Verdict::Reply(why, response(&req, status, why, server))
        }
    };
    if packet.len() > room {
        return bad("too_large", "513 Message Too Large");
    }
    // Header fields are UTF-8 (RFC 3261 §7.3.1); the parser reads them lossily, so a
    // damaged header would otherwise surface as a misleading error further down.
    if std::str::from_utf8(&packet[..header_end(packet).unwrap_or(packet.len())]).is_err() {
        return bad("non_utf8", "400 Bad Header Encoding");
    }
    match content_length(packet) {
        Some(Ok(declared)) if declared <= body_len(packet) => {}
        None => {}
        _ => return bad("bad_content_length", "400 Bad Content-Length"),
    }
    match check_request(&req) {
        Some((why, status)) => bad(why, status),
        None => Verdict::Pass,
    }
}

/// The checks of a parsed request that every transport needs (streams arrive parsed, so
/// the inspector runs these for them): `Some((reason, status line))` when it is invalid.
/// A request without a Via is reported as `no_via`; it cannot be answered.
pub(crate) fn check_request(req: &Request) -> Option<(&'static str, &'static str)> {
    if req.via_header().and_then(|v| v.typed()).is_err() {
        return Some(("no_via", "400 Missing Via"));
    }
    let cseq_ok = req
        .cseq_header()
        .and_then(|c| Ok((c.seq()?, c.method()?)))
        .is_ok_and(|(_, m)| m == req.method);
    if !cseq_ok {
        return Some(("bad_cseq", "400 Bad CSeq"));
    }
    if req.call_id_header().is_err() {
        return Some(("no_call_id", "400 Missing Call-ID"));
    }
    if req.from_header().and_then(|f| f.typed()).is_err() || req.to_header().and_then(|t| t.typed()).is_err() {
        return Some(("bad_from_to", "400 Bad From or To"));
    }
    None
}

/// A request line whose method we do not know makes the whole parse fail; with a known
/// method in its place the rest may be fine, and then RFC 3261 §8.2.1 wants a 501.
fn unknown_method(packet: &[u8], server: &str) -> Verdict {
    let Some(sp) = packet.iter().take(32).position(|&b| b == b' ') else {
        return Verdict::Drop("unparseable");
    };
    let token = &packet[..sp];
    if token.is_empty() || !token.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-') {
        return Verdict::Drop("unparseable");
    }
    let mut patched = b"OPTIONS".to_vec();
    patched.extend_from_slice(&packet[sp..]);
    match SipMessage::try_from(patched.as_slice()) {
        Ok(SipMessage::Request(req)) if req.via_header().and_then(|v| v.typed()).is_ok() => {
            Verdict::Reply("unknown_method", response(&req, "501 Not Implemented", "unknown method", server))
        }
        _ => Verdict::Drop("unparseable"),
    }
}

/// A minimal stateless response echoing the headers RFC 3261 §8.2.6.2 requires.
pub(crate) fn response(req: &Request, status: &str, warning: &str, server: &str) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for h in req.headers.iter() {
        if matches!(h, Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_)) {
            out.push_str(&format!("{h}\r\n"));
        }
    }
    out.push_str(&format!("Warning: 399 pacer \"{warning}\"\r\nServer: {server}\r\nContent-Length: 0\r\n\r\n"));
    out.into_bytes()
}

fn header_end(packet: &[u8]) -> Option<usize> {
    packet.windows(4).position(|w| w == b"\r\n\r\n")
}

fn body_len(packet: &[u8]) -> usize {
    header_end(packet).map_or(0, |i| packet.len() - i - 4)
}

/// The declared Content-Length: `None` when absent, `Some(Err)` when not a number.
fn content_length(packet: &[u8]) -> Option<Result<usize, ()>> {
    let head = &packet[..header_end(packet)?];
    for line in head.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            return Some(value.trim().parse::<usize>().map_err(|_| ()));
        }
    }
    None
}

/// What the gateway does with one UDP datagram before the SIP stack sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screened {
    /// Handed to the SIP stack.
    Pass,
    /// Dropped and counted under this reason.
    Dropped(&'static str),
    /// Answered statelessly with this status (400, 501, 513) and counted under the reason.
    Answered(&'static str, u16),
}

/// The gateway's message path for one datagram, without sockets: the guard's verdict, and
/// for a stateless answer a check that the answer itself parses. Public so that the fuzz
/// target (`sip-gateway/fuzz`) and the malformed-message corpus test drive the same code
/// the listener runs.
#[doc(hidden)]
pub fn screen_datagram(packet: &[u8]) -> Screened {
    match check(packet, rsipstack::transport::connection::MAX_UDP_BUF_SIZE, "pacer") {
        Verdict::Pass => Screened::Pass,
        Verdict::Drop(why) => Screened::Dropped(why),
        Verdict::Reply(why, bytes) => {
            let Ok(SipMessage::Response(resp)) = SipMessage::try_from(bytes.as_slice()) else {
                panic!("the stateless answer to a bad request must itself parse: {:?}", String::from_utf8_lossy(&bytes));
            };
            Screened::Answered(why, resp.status_code.code())
        }
    }
}
