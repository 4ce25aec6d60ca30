//! A small SIP user agent for the transports SIPp cannot play here: a station that stays
//! on one TCP or WebSocket connection, and a carrier behind TLS. It speaks SIP as text and
//! checks what it receives; every wait is bounded.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

/// One side of a SIP connection.
pub trait Ua {
    async fn send(&mut self, msg: &str);
    /// The next SIP message (CRLF keep-alives skipped), or a panic after 5 s.
    async fn recv(&mut self) -> String;
    /// Transport token for Via (`TCP`, `TLS`, `WS`).
    fn via_transport(&self) -> &'static str;
}

/// SIP over a byte stream (TCP, TLS): messages framed by Content-Length (RFC 3261 §18.3).
pub struct StreamUa<S> {
    pub stream: S,
    buf: Vec<u8>,
    transport: &'static str,
}

impl<S: AsyncRead + AsyncWrite + Unpin> StreamUa<S> {
    pub fn new(stream: S, transport: &'static str) -> Self {
        Self { stream, buf: Vec::new(), transport }
    }

    fn take_message(&mut self) -> Option<String> {
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        let len = header(&head, "Content-Length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        if self.buf.len() < end + len {
            return None;
        }
        let msg = String::from_utf8_lossy(&self.buf[..end + len]).to_string();
        self.buf.drain(..end + len);
        Some(msg)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ua for StreamUa<S> {
    async fn send(&mut self, msg: &str) {
        self.stream.write_all(msg.as_bytes()).await.expect("send over the stream");
        self.stream.flush().await.ok();
    }

    async fn recv(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self.take_message() {
                return m;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await.expect("a SIP message within 5 s").expect("read");
            assert!(n > 0, "connection closed while waiting for a SIP message");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn via_transport(&self) -> &'static str {
        self.transport
    }
}

/// SIP over WebSocket (RFC 7118): one SIP message per text frame.
pub struct WsUa {
    pub ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl WsUa {
    /// Connects to `ws://addr/` offering the `sip` subprotocol; returns the subprotocol the
    /// server selected with the connection.
    pub async fn connect(addr: std::net::SocketAddr) -> (WsUa, Option<String>) {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "sip".parse().unwrap());
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await.expect("WS handshake within 5 s").expect("WS handshake");
        let proto = resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_string);
        (WsUa { ws }, proto)
    }
}

impl Ua for WsUa {
    async fn send(&mut self, msg: &str) {
        self.ws.send(Message::Text(msg.to_string().into())).await.expect("send over WebSocket");
    }

    async fn recv(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("a SIP message within 5 s").expect("WebSocket open").expect("WebSocket frame");
            match frame {
                Message::Text(t) => return t.to_string(),
                Message::Binary(b) if b.iter().all(u8::is_ascii_whitespace) => continue,
                Message::Binary(b) => return String::from_utf8_lossy(&b).to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected WebSocket frame {other:?}"),
            }
        }
    }

    fn via_transport(&self) -> &'static str {
        "WS"
    }
}

/// The value of the first header `name` (case-insensitive), without its parameters trimmed.
pub fn header(msg: &str, name: &str) -> Option<String> {
    let head = msg.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

pub fn all_headers(msg: &str, name: &str) -> Vec<String> {
    let head = msg.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .collect()
}

pub fn start_line(msg: &str) -> &str {
    msg.lines().next().unwrap_or_default()
}

pub fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default()
}

/// A response to `req` echoing Via, From, To (with `to_tag` added when it has none),
/// Call-ID and CSeq.
pub fn response(req: &str, status: &str, to_tag: &str, extra: &[String], body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in all_headers(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!("From: {}\r\n", header(req, "From").unwrap()));
    let to = header(req, "To").unwrap();
    if to.contains(";tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    out.push_str(&format!("Call-ID: {}\r\nCSeq: {}\r\n", header(req, "Call-ID").unwrap(), header(req, "CSeq").unwrap()));
    for h in extra {
        out.push_str(h);
        out.push_str("\r\n");
    }
    if !body.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `Authorization` value answering a `WWW-Authenticate` challenge (MD5, qop=auth).
pub fn digest(challenge: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
    let param = |k: &str| {
        let at = challenge.find(&format!("{k}=\""))? + k.len() + 2;
        Some(challenge[at..].split('"').next()?.to_string())
    };
    let (realm, nonce) = (param("realm").unwrap(), param("nonce").unwrap());
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let cnonce = "0a4f113b";
    let resp = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"")
}

/// A station's REGISTER (CSeq `cseq`), optionally with credentials.
pub fn register_request(ua: &impl Ua, user: &str, contact_host: &str, cseq: u32, expires: u32, auth: Option<&str>) -> String {
    let t = ua.via_transport();
    let mut m = format!(
        "REGISTER sip:pacer.local SIP/2.0\r\nVia: SIP/2.0/{t} {contact_host};branch=z9hG4bK{user}{cseq}\r\nFrom: <sip:{user}@pacer.local>;tag=reg{user}\r\nTo: <sip:{user}@pacer.local>\r\nCall-ID: reg-{user}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{contact_host};transport={}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n",
        t.to_lowercase()
    );
    if let Some(a) = auth {
        m.push_str(&format!("Authorization: {a}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// Registers `user` over `ua` through the digest challenge; returns the final response.
pub async fn register(ua: &mut impl Ua, user: &str, password: &str, contact_host: &str, expires: u32) -> String {
    let first = register_request(ua, user, contact_host, 1, expires, None);
    ua.send(&first).await;
    let challenge = ua.recv().await;
    assert!(start_line(&challenge).starts_with("SIP/2.0 401"), "{challenge}");
    let www = header(&challenge, "WWW-Authenticate").expect("a digest challenge");
    let auth = digest(&www, user, password, "REGISTER", "sip:pacer.local");
    let second = register_request(ua, user, contact_host, 2, expires, Some(&auth));
    ua.send(&second).await;
    ua.recv().await
}

pub const STATION_SDP: &str = "v=0\r\no=station 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// A request inside the dialog the INVITE `invite` opened, sent by its callee.
pub fn in_dialog_request(ua: &impl Ua, invite: &str, method: &str, cseq: u32, to_tag: &str, host: &str) -> String {
    let contact = header(invite, "Contact").unwrap();
    let target = contact.trim_start_matches('<').split('>').next().unwrap().to_string();
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/{} {host};branch=z9hG4bK{method}{cseq}\r\nFrom: {};tag={to_tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        ua.via_transport(),
        header(invite, "To").unwrap(),
        header(invite, "From").unwrap(),
        header(invite, "Call-ID").unwrap()
    )
}
