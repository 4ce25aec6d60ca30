//! SIPp as a real peer: start a scenario on its own ports, wait (bounded) until it listens,
//! wait (bounded) for its verdict, and kill it on every exit path (Drop).
#![allow(dead_code)]

pub mod ua;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pacer_config::{SipConfig, TrunkConfig};
use pacer_sip::{CallEvent, CallHandle, SipGateway};

pub const SIPP: &str = "/usr/bin/sipp";

/// `false` (after saying why) when SIPp is not installed; in CI that is a failure.
pub fn sipp_available() -> bool {
    if std::path::Path::new(SIPP).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{SIPP} is missing (Debian package sip-tester) and CI=true");
    }
    eprintln!("skipped: {SIPP} is missing (install the Debian package sip-tester)");
    false
}

/// A UDP port nobody uses right now.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(name)
}

pub struct Sipp {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    name: String,
}

impl Sipp {
    /// Starts SIPp with `scenario` listening on a fresh port, for `calls` calls, with extra
    /// arguments (e.g. a remote address for a UAC) and waits until it has bound its port.
    ///
    /// A port found free can be taken by a parallel test before SIPp binds it (SIPp then
    /// exits with errno 98): the start is retried on another fresh port, a few times.
    pub fn start(scenario_file: &str, calls: u32, extra: &[&str]) -> Sipp {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start_on(free_port(), scenario_file, calls, extra) {
                Ok(sipp) => return sipp,
                Err(e) if e.contains("errno = 98") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last} (five fresh ports were taken)");
    }

    /// As [`Sipp::start`], on a given port.
    pub fn start_on(port: u16, scenario_file: &str, calls: u32, extra: &[&str]) -> Sipp {
        Self::try_start_on(port, scenario_file, calls, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_on(port: u16, scenario_file: &str, calls: u32, extra: &[&str]) -> Result<Sipp, String> {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(SIPP)
            .arg("-sf")
            .arg(scenario(scenario_file))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &free_port().to_string(), "-cp", &free_port().to_string()])
            .args(["-m", &calls.to_string(), "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_err"])
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .args(extra)
            .args(if std::env::var_os("SIPP_TRACE").is_some() { &["-trace_msg"][..] } else { &[][..] })
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sipp");
        let tcp = extra.windows(2).any(|w| w[0] == "-t" && w[1].starts_with('t'));
        let mut sipp = Sipp { child: Some(child), port, dir, name: scenario_file.into() };
        if !tcp {
            sipp.wait_listening(|p| UdpSocket::bind(("127.0.0.1", p)).is_err())?;
        } else if !scenario_file.starts_with("uac") {
            sipp.wait_listening(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_err())?;
        }
        Ok(sipp)
    }

    /// Polls (bounded) until SIPp holds its port: binding it ourselves then fails.
    fn wait_listening(&mut self, held: impl Fn(u16) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if held(self.port) {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let e = self.errors();
                return Err(format!("sipp {} exited at start: {status}; {e}", self.name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("sipp {} did not bind port {} within 5 s", self.name, self.port))
    }

    fn errors(&mut self) -> String {
        let mut out = std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default();
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            if let Ok(o) = child.wait_with_output() {
                out.push_str(&String::from_utf8_lossy(&o.stderr));
            }
        }
        out
    }

    /// Waits (bounded) for SIPp to finish and asserts that every call passed its scenario.
    pub async fn assert_passed(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                if !status.success() {
                    let e = self.errors();
                    panic!("sipp {} failed ({status}): {e}", self.name);
                }
                return;
            }
            if Instant::now() > deadline {
                let e = self.errors();
                panic!("sipp {} still running after {within:?}: {e}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if std::env::var_os("SIPP_TRACE").is_some() {
            let keep = std::env::temp_dir().join(format!("sipp-trace-{}", self.port));
            let _ = std::process::Command::new("cp").arg("-r").arg(self.dir.path()).arg(&keep).status();
            eprintln!("sipp trace kept in {}", keep.display());
        }
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

pub fn sip_config() -> SipConfig {
    SipConfig { listen_udp: "127.0.0.1:0".parse().unwrap(), ..Default::default() }
}

/// A gateway that also listens on TCP and WebSocket (free ports).
pub async fn gateway_with(sip: SipConfig, trunks: Vec<TrunkConfig>) -> SipGateway {
    init_logs();
    SipGateway::start(&sip, &trunks).await.expect("gateway starts")
}

/// The Prometheus text of the gateway's metrics.
pub fn metrics_text(gw: &SipGateway) -> String {
    let registry = prometheus::Registry::new();
    gw.register_metrics(&registry).unwrap();
    prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap()
}

pub fn trunk(name: &str, port: u16) -> TrunkConfig {
    TrunkConfig { name: name.into(), host: "127.0.0.1".into(), port, options_interval_s: 0, caller_id: Some("+15550001111".into()), ..Default::default() }
}

/// Logs to stderr when `RUST_LOG` is set (for debugging a failing test).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
    }
}

pub async fn gateway(trunks: Vec<TrunkConfig>) -> SipGateway {
    init_logs();
    SipGateway::start(&sip_config(), &trunks).await.expect("gateway starts")
}

pub const OFFER: &[u8] = b"v=0\r\no=pacer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Next event within `within`, or a panic naming what was awaited.
pub async fn next(call: &mut CallHandle, within: Duration) -> CallEvent {
    match tokio::time::timeout(within, call.next_event()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("call {} ended without further events", call.id()),
        Err(_) => panic!("no event on call {} within {within:?}", call.id()),
    }
}

/// Reads events until one matches `pred`, returning every event read (bounded).
pub async fn until(call: &mut CallHandle, within: Duration, pred: impl Fn(&CallEvent) -> bool) -> Vec<CallEvent> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = match tokio::time::timeout(left, call.next_event()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("call ended before the awaited event; saw {seen:?}"),
            Err(_) => panic!("awaited event not seen within {within:?}; saw {seen:?}"),
        };
        let done = pred(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
