//! Helpers for tests that run the `pacer` binary as a real process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const PACER: &str = env!("CARGO_BIN_EXE_pacer");

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A `pacer` child process whose stderr lines are collected; killed on drop.
pub struct Pacer {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Pacer {
    /// Start `pacer ARGS` in `dir` with extra environment variables.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Pacer {
        let mut cmd = Command::new(PACER);
        cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.env("PACER_AUTH__ADMIN_TOKEN", ADMIN_TOKEN);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start pacer");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Pacer { child, lines, log: Vec::new() }
    }

    /// Wait (bounded) for a stderr line that contains `needle`; return it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line containing {needle:?} within {timeout:?}; log so far:\n{}", self.log.join("\n")),
            }
        }
    }

    /// Moves the lines logged so far into `log` (for a failure message).
    pub fn drain_log(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
    }

    /// The HTTP address from the "listening" log line.
    pub fn http_addr(&mut self) -> SocketAddr {
        // Other parts (SIP, media) may say "listening" first: the HTTP line has the URL.
        let line = loop {
            let line = self.wait_for_line("listening", Duration::from_secs(60));
            if line.contains("http://") {
                break line;
            }
        };
        let at = line.find("http://").expect("url in the listening line") + "http://".len();
        let rest = &line[at..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':' || c == '[' || c == ']')).unwrap_or(rest.len());
        rest[..end].parse().expect("socket address")
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                while let Ok(l) = self.lines.try_recv() {
                    self.log.push(l);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "pacer did not exit within {timeout:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin bearer token every test server accepts (`auth.admin_token`).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123";

/// A plain HTTP/1.1 request with the admin token; returns (status, headers, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    http_as(addr, method, path, body, Some(ADMIN_TOKEN))
}

/// A plain HTTP/1.1 request with `token` as the bearer token, or none.
#[allow(dead_code)]
pub fn http_as(addr: SocketAddr, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| ("Authorization", a)).into_iter().collect();
    http_with(addr, method, path, body, &headers)
}

/// A plain HTTP/1.1 request with extra headers (a cookie, an origin); returns (status,
/// headers, body).
pub fn http_with(addr: SocketAddr, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> (u16, String, String) {
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("complete response");
    let head = String::from_utf8_lossy(&raw[..at]).to_string();
    // Bodies that are not text (recordings) come back lossily; tests check their headers.
    let body = String::from_utf8_lossy(&raw[at + 4..]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status code");
    (status, head, body)
}

/// SIPp as the carrier: `scenario` (a file of tests/sipp/) run in `dir` on a free local
/// port for `calls` calls (failing after 120 s), with `extra` SIPp arguments. Returns the
/// process and its SIP port once SIPp holds that port (UDP).
///
/// A port found free can be taken by a parallel test before SIPp binds it (SIPp then exits
/// with errno 98): the start is retried on another fresh port, a few times.
pub fn sipp_carrier(dir: &Path, scenario: &str, calls: u32, extra: &[&str]) -> (Child, u16) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let errors = dir.join(format!("sipp-{port}.stderr"));
        let mut child = Command::new("/usr/bin/sipp")
            .arg("-sf")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &free_port().to_string()])
            .args(["-m", &calls.to_string(), "-nostdin", "-timeout", "120s", "-timeout_error"])
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).expect("SIPp's stderr file"))
            .spawn()
            .expect("start sipp");
        let deadline = Instant::now() + Duration::from_secs(5);
        let exited = loop {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                // Held, by SIPp or by whoever took the port first: SIPp exits at once then.
                std::thread::sleep(Duration::from_millis(150));
                break child.try_wait().unwrap();
            }
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("sipp {scenario} did not bind port {port} within 5 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let Some(status) = exited else { return (child, port) };
        last = std::fs::read_to_string(&errors).unwrap_or_default();
        if !last.contains("errno = 98") {
            panic!("sipp {scenario} exited at start: {status}; {last}");
        }
    }
    panic!("sipp {scenario}: {last} (five fresh ports were taken)");
}

/// A `pacer serve` configuration: HTTP and SIP on loopback, RTP ports from `rtp_min` (999 of
/// them), calls allowed at any hour, and one trunk `carrier` at `carrier_port`.
pub fn carrier_config(carrier_port: u16, rtp_min: u16) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten_udp = \"127.0.0.1:{}\"\n[media]\nrtp_port_min = {rtp_min}\nrtp_port_max = {}\n\
         [dialer]\nlegal_window_start = \"00:00\"\nlegal_window_end = \"24:00\"\n\
         [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {carrier_port}\noptions_interval_s = 0\n",
        free_port(),
        rtp_min + 998
    )
}

/// A free local port (UDP; the same number is nearly always free for TCP too).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CTI WebSocket (agent or supervisor desktop) as the tests drive it.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next CTI message of type `kind` or `error` within 30 s (the caller decides whether
/// an error is what it expected); other messages are skipped.
pub async fn next_of(ws: &mut Ws, kind: &str) -> serde_json::Value {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.unwrap_or_else(|_| panic!("no {kind} message in time"));
        match m {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind || v["type"] == "error" {
                    return v;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("the CTI socket ended while waiting for {kind}: {other:?}"),
        }
    }
}

/// The next CTI message of type `kind`; an `error` instead fails the test.
pub async fn expect(ws: &mut Ws, kind: &str) -> serde_json::Value {
    let v = next_of(ws, kind).await;
    assert_eq!(v["type"], kind, "expected {kind}, got {v}");
    v
}

/// The next `error` message (other messages are skipped).
pub async fn expect_error(ws: &mut Ws) -> serde_json::Value {
    expect(ws, "error").await
}

pub async fn send(ws: &mut Ws, v: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(v.to_string().into())).await.unwrap();
}

/// Logs `username` in on the agent socket of `addr` with a persistent plain-RTP leg from
/// `media` (what a softphone does), and returns the socket and the leg.
pub async fn agent_desk(addr: SocketAddr, media: &pacer_media::MediaEngine, username: &str, password: &str) -> (Ws, pacer_media::Endpoint) {
    let leg = media.rtp_endpoint().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
    send(&mut ws, serde_json::json!({"type":"login","username":username,"password":password})).await;
    expect(&mut ws, "logged_in").await;
    send(&mut ws, serde_json::json!({"type":"media_offer","sdp":leg.local_offer()})).await;
    let answer = expect(&mut ws, "media_answer").await;
    leg.accept_answer(answer["sdp"].as_str().unwrap()).unwrap();
    (ws, leg)
}

/// Raw G.711 µ-law of a `freq` Hz tone at about a quarter of full scale, `secs` long:
/// what SIPp plays as the customer (`rtp_stream`).
pub fn ulaw_tone(freq: f64, secs: f64) -> Vec<u8> {
    let n = (secs * 8000.0) as usize;
    (0..n).map(|i| pacer_media::Codec::Pcmu.encode(((i as f64 * 2.0 * std::f64::consts::PI * freq / 8000.0).sin() * 8000.0) as i16)).collect()
}

/// Power of `freq` in `s` (Goertzel), normalised so a full-scale sine gives 0.25.
pub fn tone_power(s: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in s {
        let s0 = x as f64 / 32768.0 + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (s.len().max(1) as f64).powi(2)
}

/// What a leg hears for `d` (its tapped audio, decoded).
pub async fn hears(tap: &mut tokio::sync::mpsc::Receiver<pacer_media::AudioFrame>, d: Duration) -> Vec<i16> {
    // Drop what queued up before: the test asks about now.
    while tap.try_recv().is_ok() {}
    let end = tokio::time::Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout_at(end, tap.recv()).await {
        out.extend_from_slice(&f.samples);
    }
    out
}
