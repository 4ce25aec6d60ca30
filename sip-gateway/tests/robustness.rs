//! Malformed and hostile datagrams: none may crash or stall the stack. Each is dropped or
//! answered (400, 501, 513) as RFC 3261 says, and a valid OPTIONS is still answered after
//! the whole corpus. Needs no SIPp: the peer is a plain UDP socket.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(3);

fn request(method: &str, extra_headers: &str, body: &[u8], cseq: &str) -> Vec<u8> {
    let mut m = format!(
        "{method} sip:pacer@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{}\r\nFrom: <sip:scanner@127.0.0.1>;tag=1\r\nTo: <sip:pacer@127.0.0.1>\r\nCall-ID: {}@corpus\r\n{cseq}Max-Forwards: 70\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        rand_token(),
        rand_token(),
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

fn rand_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!("c{}", N.fetch_add(1, Ordering::Relaxed))
}

/// (name, datagram, expected answer status or `None` for "dropped").
fn corpus() -> Vec<(&'static str, Vec<u8>, Option<u16>)> {
    let options = |extra: &str, body: &[u8]| request("OPTIONS", extra, body, "CSeq: 1 OPTIONS\r\n");
    let mut bad_cl = options("", b"");
    let at = bad_cl.windows(17).position(|w| w == b"Content-Length: 0").unwrap();
    bad_cl.splice(at..at + 17, b"Content-Length: 500".iter().copied());
    let mut nan_cl = options("", b"");
    nan_cl.splice(at..at + 17, b"Content-Length: lots".iter().copied());
    let valid = options("", b"");
    let truncated = valid[..valid.len() / 2].to_vec();
    let no_via = String::from_utf8(valid.clone()).unwrap().replace("Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKc", "X-Via: x").into_bytes();
    let mut non_utf8 = options("", b"");
    non_utf8.splice(0..0, []);
    let pos = non_utf8.windows(6).position(|w| w == b"From: ").unwrap();
    non_utf8.splice(pos + 6..pos + 6, [0xff, 0xfe, 0xc3, 0x28]);
    let mut garbage: Vec<u8> = (0..2000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    garbage[0] = b'I';
    vec![
        ("truncated", truncated, None),
        ("bad content-length", bad_cl, Some(400)),
        ("non-numeric content-length", nan_cl, Some(400)),
        ("missing CSeq", request("OPTIONS", "", b"", ""), Some(400)),
        ("CSeq method mismatch", request("OPTIONS", "", b"", "CSeq: 1 INVITE\r\n"), Some(400)),
        ("CSeq not a number", request("OPTIONS", "", b"", "CSeq: one OPTIONS\r\n"), Some(400)),
        ("missing Via", no_via, None),
        ("bad request URI", b"INVITE not a uri at all SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n".to_vec(), None),
        ("unknown method", request("FROBNICATE", "", b"", "CSeq: 1 FROBNICATE\r\n"), Some(501)),
        ("huge header", options(&format!("X-Junk: {}\r\n", "a".repeat(60_000)), b""), Some(513)),
        ("64 KiB body", options("Content-Type: application/sdp\r\n", &vec![b'v'; 65_000]), Some(513)),
        ("non-UTF-8 header", non_utf8, Some(400)),
        ("binary garbage", garbage, None),
        ("empty lines only", b"\r\n\r\n".to_vec(), None),
        ("response without CSeq", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKr\r\nCall-ID: r@x\r\nContent-Length: 0\r\n\r\n".to_vec(), None),
        ("ACK with a bad CSeq", request("ACK", "", b"", "CSeq: x\r\n"), None),
        ("INVITE from an unknown source", request("INVITE", "Contact: <sip:s@127.0.0.1:9>\r\n", b"", "CSeq: 1 INVITE\r\n"), Some(403)),
    ]
}

async fn recv_status(sock: &UdpSocket, within: Duration) -> Option<(u16, String)> {
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + within;
    let n = loop {
        let (n, _) = match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            Ok(Ok(got)) => got,
            Ok(Err(e)) => panic!("receive failed: {e}"),
            Err(_) => return None,
        };
        // The CRLF keep-alive ping of the corpus gets its CRLF pong (RFC 5626 §4.4.1).
        if !buf[..n].iter().all(u8::is_ascii_whitespace) {
            break n;
        }
    };
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    let code = text.strip_prefix("SIP/2.0 ").and_then(|t| t.get(..3)?.parse().ok()).unwrap_or_else(|| panic!("not a SIP response: {text:?}"));
    Some((code, text))
}

#[tokio::test]
async fn malformed_corpus_then_valid_options() {
    let gw = common::gateway(vec![]).await;
    let registry = prometheus::Registry::new();
    gw.register_metrics(&registry).unwrap();
    let target: SocketAddr = gw.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (name, datagram, expected) in corpus() {
        sock.send_to(&datagram, target).await.unwrap_or_else(|e| panic!("{name}: send: {e}"));
        if let Some(code) = expected {
            let got = recv_status(&sock, WAIT).await;
            let (status, text) = got.unwrap_or_else(|| panic!("{name}: no answer within {WAIT:?}"));
            assert_eq!(status, code, "{name}: {text}");
        }
    }
    // Anything still in flight for the dropped ones would be a bug: no answer expected.
    let stray = recv_status(&sock, Duration::from_millis(300)).await;
    assert!(stray.is_none(), "unexpected answer: {stray:?}");

    let ok = request("OPTIONS", "", b"", "CSeq: 1 OPTIONS\r\n");
    sock.send_to(&ok, target).await.unwrap();
    let (status, text) = recv_status(&sock, WAIT).await.expect("a valid OPTIONS is still answered");
    assert_eq!(status, 200, "{text}");

    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    for reason in ["unparseable", "bad_content_length", "bad_cseq", "no_via", "unknown_method", "too_large", "non_utf8"] {
        assert!(text.contains(&format!("pacer_sip_bad_messages_total{{reason=\"{reason}\"}}")), "{reason} not counted:\n{text}");
    }
    assert!(text.contains("pacer_sip_blocked_requests_total{reason=\"inbound_not_allowed\"} 1"), "{text}");
    assert!(text.contains("pacer_sip_requests_total{direction=\"in\",method=\"OPTIONS\"}"), "{text}");
}
