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
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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
