//! Malformed and hostile datagrams: none may crash or stall the stack. Each is dropped or
//! answered (400, 501, 513) as RFC 3261 says, and a valid OPTIONS is still answered after
//! the whole corpus. Needs no SIPp: the peer is a plain UDP socket.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ua::{self, StreamUa, Ua};
use pacer_config::SipConfig;
use pacer_sip::{Screened, screen_datagram};
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

/// The same corpus through the gateway's message path without sockets (the function the
/// fuzz target drives), plus the checked-in seed files of the fuzz corpus.
#[test]
fn corpus_through_the_message_path() {
    for (name, datagram, expected) in corpus() {
        let got = screen_datagram(&datagram);
        match expected {
            // 403 is the application's answer to an unknown source: the guard lets it through.
            Some(403) => assert_eq!(got, Screened::Pass, "{name}"),
            // A CRLF keep-alive goes to the stack, which answers it with CRLF, not with SIP.
            None if name == "empty lines only" => assert_eq!(got, Screened::Pass, "{name}"),
            Some(code) => assert!(matches!(got, Screened::Answered(_, c) if c == code), "{name}: {got:?}"),
            None => assert!(matches!(got, Screened::Dropped(_)), "{name}: {got:?}"),
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/message_path");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        screen_datagram(&bytes);
        seeds += 1;
    }
    assert!(seeds >= 10, "only {seeds} seeds in {}", dir.display());
}

fn limited() -> SipConfig {
    SipConfig { rate_limit_per_source: 5, ban_after_failures: 3, ban_seconds: 60, ..common::sip_config() }
}

/// Every answer that arrives within `within`, as status codes with their text.
async fn drain(sock: &UdpSocket, within: Duration) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    while let Some(got) = recv_status(sock, within).await {
        out.push(got);
    }
    out
}

#[tokio::test]
async fn floods_are_rate_limited_then_banned() {
    let gw = common::gateway_with(limited(), vec![]).await;
    let target = gw.local_addr();
    let scanner = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..12 {
        scanner.send_to(&request("OPTIONS", "", b"", "CSeq: 1 OPTIONS\r\n"), target).await.unwrap();
    }
    let answers = drain(&scanner, Duration::from_millis(500)).await;
    // The 503s are sent before the stack answers the admitted ones: compare as a multiset.
    let mut codes: Vec<u16> = answers.iter().map(|(c, _)| *c).collect();
    codes.sort();
    assert_eq!(codes, [200, 200, 200, 200, 200, 503, 503, 503], "5 allowed, 3 refused, then banned and dropped");
    let refused = answers.iter().find(|(c, _)| *c == 503).unwrap();
    assert!(refused.1.contains("Retry-After: 1"), "{}", refused.1);
    // Banned: even a request a second later gets nothing back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    scanner.send_to(&request("OPTIONS", "", b"", "CSeq: 1 OPTIONS\r\n"), target).await.unwrap();
    assert!(recv_status(&scanner, Duration::from_millis(300)).await.is_none(), "a banned source is dropped");
    // Another source is not affected.
    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    other.send_to(&request("OPTIONS", "", b"", "CSeq: 1 OPTIONS\r\n"), target).await.unwrap();
    assert_eq!(recv_status(&other, WAIT).await.map(|(c, _)| c), Some(200));
    assert!(common::eventually(WAIT, || common::metrics_text(&gw).contains("pacer_sip_banned_sources 1")).await);
    let text = common::metrics_text(&gw);
    assert!(text.contains("pacer_sip_blocked_requests_total{reason=\"rate_limited\"} 3"), "{text}");
    assert!(text.contains("pacer_sip_blocked_requests_total{reason=\"banned\"} 5"), "{text}");
    assert!(text.contains("pacer_sip_blocked_requests_total{reason=\"banned_now\"} 1"), "{text}");
}

#[tokio::test]
async fn register_scanner_with_bad_credentials_is_banned() {
    let gw = common::gateway_with(limited(), vec![]).await;
    gw.set_station_password("agent1", "pw1");
    let target = gw.local_addr();
    let scanner = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = scanner.local_addr().unwrap().to_string();
    let register = |cseq: u32, auth: Option<&str>| {
        let mut m = format!("REGISTER sip:pacer.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKscan{cseq}\r\nFrom: <sip:agent1@pacer.local>;tag=s\r\nTo: <sip:agent1@pacer.local>\r\nCall-ID: scan@x\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:agent1@{local}>\r\nMax-Forwards: 70\r\n");
        if let Some(a) = auth {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m.into_bytes()
    };
    scanner.send_to(&register(1, None), target).await.unwrap();
    let (code, challenge) = recv_status(&scanner, WAIT).await.unwrap();
    assert_eq!(code, 401);
    let www = ua::header(&challenge, "WWW-Authenticate").unwrap();
    let wrong = ua::digest(&www, "agent1", "guess", "REGISTER", "sip:pacer.local");
    let mut codes = Vec::new();
    for cseq in 2..6 {
        scanner.send_to(&register(cseq, Some(&wrong)), target).await.unwrap();
        codes.push(recv_status(&scanner, Duration::from_millis(500)).await.map(|(c, _)| c));
    }
    assert_eq!(codes, [Some(403), Some(403), Some(403), None], "three wrong passwords, then banned");
    let text = common::metrics_text(&gw);
    assert!(text.contains("pacer_sip_blocked_requests_total{reason=\"bad_credentials\"} 3"), "{text}");
    assert!(gw.stations().is_empty());
}

#[tokio::test]
async fn invalid_requests_over_tcp_get_400_with_a_warning() {
    let sip = SipConfig { listen_tcp: Some("127.0.0.1:0".parse().unwrap()), ..common::sip_config() };
    let gw = common::gateway_with(sip, vec![]).await;
    let tcp = tokio::net::TcpStream::connect(gw.tcp_addr().unwrap()).await.unwrap();
    let mut peer = StreamUa::new(tcp, "TCP");
    let bad = String::from_utf8(request("OPTIONS", "", b"", "CSeq: 1 INVITE\r\n")).unwrap();
    peer.send(&bad).await;
    let answer = peer.recv().await;
    assert!(ua::start_line(&answer).starts_with("SIP/2.0 400"), "{answer}");
    assert!(ua::header(&answer, "Warning").is_some_and(|w| w.starts_with("399 pacer")), "{answer}");
    let good = String::from_utf8(request("OPTIONS", "", b"", "CSeq: 1 OPTIONS\r\n")).unwrap();
    peer.send(&good).await;
    let answer = peer.recv().await;
    assert!(ua::start_line(&answer).starts_with("SIP/2.0 200"), "the connection still works: {answer}");
}

#[tokio::test]
async fn retransmissions_are_counted_apart_and_metrics_are_valid() {
    let gw = common::gateway(vec![]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let options = request("OPTIONS", "", b"", "CSeq: 1 OPTIONS\r\n");
    sock.send_to(&options, gw.local_addr()).await.unwrap();
    assert_eq!(recv_status(&sock, WAIT).await.map(|(c, _)| c), Some(200));
    // The same datagram again is a retransmission: answered again, counted apart.
    sock.send_to(&options, gw.local_addr()).await.unwrap();
    assert_eq!(recv_status(&sock, WAIT).await.map(|(c, _)| c), Some(200));
    let text = common::metrics_text(&gw);
    assert!(text.contains("pacer_sip_requests_total{direction=\"in\",method=\"OPTIONS\"} 1"), "{text}");
    assert!(text.contains("pacer_sip_retransmissions_total{direction=\"in\",kind=\"request\"} 1"), "{text}");
    assert!(text.contains("pacer_sip_responses_total{direction=\"out\",method=\"OPTIONS\",status=\"200\"} 1"), "{text}");
    for family in ["pacer_sip_transactions", "pacer_sip_banned_sources", "pacer_sip_connections"] {
        assert!(text.contains(&format!("# TYPE {family} gauge")), "{family}:\n{text}");
    }
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "promtool is missing and CI=true");
        eprintln!("promtool check skipped: /usr/bin/promtool is missing (Debian package prometheus)");
        return;
    }
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
