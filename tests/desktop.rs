//! The agent desktop and the supervisor page end to end: `pacer serve` as a process,
//! SIPp as the customer's carrier playing a 600 Hz tone, and headless Chromium (driven by
//! playwright-core from tests/browser/desktop.mjs) with a 1 kHz tone as the agent's
//! microphone. Each side's tone is measured where it should arrive: the customer's in the
//! agent's page (and the supervisor's), the agent's in the call recording's agent channel
//! (what the bridge sends the carrier) and in the supervisor's page.
//!
//! `SCREENSHOTS_DIR=docs cargo test -p pacer --test desktop` refreshes the
//! screenshots shown in the README.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Pacer, PACER, http, in_ci};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

const SIPP: &str = "/usr/bin/sipp";
const CHROMIUM: &str = "/usr/bin/chromium";
const FIREFOX: &str = "/usr/bin/firefox-esr";
const CUSTOMER_HZ: f64 = 600.0;
const AGENT_HZ: f64 = 1000.0;
// Not a multiple of 200 Hz, where the G.711 quantisation harmonics of the other two fall.
const SUPERVISOR_HZ: f64 = 1450.0;
const AGENT_PASSWORD: &str = "agent-secret-1";
const SUPERVISOR_PASSWORD: &str = "supervisor-secret-1";

/// Two browsers and a media server per test are plenty for two cores: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `None` when every peer is installed; otherwise why not (a failure in CI).
fn missing_peer() -> Option<String> {
    if !Path::new(SIPP).exists() {
        return Some(format!("{SIPP} is missing (Debian package sip-tester)"));
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (Debian package chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not on PATH (Debian package nodejs)".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some("tests/browser has no node_modules: run `npm ci --prefix tests/browser` (scripts/test does)".into());
    }
    None
}

fn peers_or_skip() -> bool {
    match missing_peer() {
        None => true,
        Some(why) => {
            assert!(!in_ci(), "the browser tests cannot run in CI: {why}");
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `seconds` of a sine at `hz` as raw G.711 µ-law, SIPp's `rtp_stream` format.
fn ulaw_tone(path: &Path, hz: f64, seconds: u32) {
    let bytes: Vec<u8> = (0..8000 * seconds)
        .map(|i| pacer_media::Codec::Pcmu.encode(((2.0 * std::f64::consts::PI * hz * f64::from(i) / 8000.0).sin() * 8000.0) as i16))
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// A 48 kHz mono WAV of a sine at `hz`: Chromium's fake microphone plays it in a loop.
fn wav_tone(path: &Path, hz: f64, seconds: u32) {
    let spec = hound::WavSpec { channels: 1, sample_rate: 48000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..48000 * seconds {
        w.write_sample(((2.0 * std::f64::consts::PI * hz * f64::from(i) / 48000.0).sin() * 10000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// Share of a window's power at `hz` (Goertzel), 0 to 1: near 1 for a pure tone.
fn tone_share(x: &[i16], rate: f64, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
    for &v in x {
        let v = f64::from(v);
        let s0 = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
        energy += v * v;
    }
    if energy < 1.0 {
        return 0.0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    2.0 * power / (x.len() as f64 * energy)
}

/// SIPp as the carrier, on its own ports, killed on drop.
struct Sipp {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sipp {
    fn start(scenario: &str, extra: &[&str]) -> Sipp {
        let dir = tempfile::tempdir().unwrap();
        ulaw_tone(&dir.path().join("tone.ulaw"), CUSTOMER_HZ, 10);
        let port = free_udp_port();
        let child = Command::new(SIPP)
            .arg("-sf")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &free_udp_port().to_string()])
            .args(["-m", "1", "-timeout", "80s", "-timeout_error", "-nostdin", "-trace_err", "-error_file"])
            .arg(dir.path().join("errors.log"))
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sipp");
        let mut sipp = Sipp { child: Some(child), port, dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        // Listening once binding its port ourselves fails.
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Some(status) = sipp.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sipp exited at start ({status}): {}", sipp.errors());
            }
            assert!(Instant::now() < deadline, "sipp did not bind port {port} within 5 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        sipp
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

    /// Waits (bounded) for SIPp to end; panics unless its call passed the scenario.
    fn assert_passed(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                assert!(status.success(), "the carrier's call failed its scenario ({status}): {}", self.errors());
                return;
            }
            assert!(Instant::now() < deadline, "sipp still running after {within:?}: {}", self.errors());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// A `pacer serve` dialling SIPp, with an agent, a supervisor, dispositions and a running
/// progressive campaign (AMD off, so a tone is a person) with one lead.
struct Floor {
    pacer: Pacer,
    addr: SocketAddr,
    agent_id: i64,
    campaign_id: i64,
    lead_id: i64,
    dir: tempfile::TempDir,
}

fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let text = body.map(|b| b.to_string());
    let (status, _, body) = http(addr, method, path, text.as_deref());
    assert!((200..300).contains(&status), "{method} {path}: {status} {body}");
    if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {body}")) }
}

fn floor(sipp_port: u16, rtp_base: u16, wrap_up_s: u32) -> Floor {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pacer.toml");
    std::fs::write(
        &config,
        format!(
            r#"
data_dir = "{data}"
[http]
listen = "127.0.0.1:0"
[sip]
listen_udp = "127.0.0.1:0"
[media]
rtp_port_min = {rtp_base}
rtp_port_max = {rtp_max}
[logging]
level = "info,rsipstack=warn,sqlx=warn,webrtc=warn,rtc=warn"
[dialer]
legal_window_start = "00:00"
legal_window_end = "24:00"
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {sipp_port}
max_concurrent = 4
max_cps = 5
options_interval_s = 0
"#,
            data = dir.path().join("data").display(),
            rtp_max = rtp_base + 199,
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let out = {
        use std::io::Write;
        let mut child = Command::new(PACER)
            .args(["user", "add", "--username", "sue", "--role", "supervisor", "--password-stdin", "--config", config_arg])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{SUPERVISOR_PASSWORD}").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(out.status.success(), "pacer user add: {}", String::from_utf8_lossy(&out.stderr));
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", config_arg], &[]);
    let addr = pacer.http_addr();
    for (code, label, sale, callback) in [("sale", "Sale", true, false), ("call_back", "Call back", false, true)] {
        api(addr, "POST", "/api/v1/dispositions", Some(json!({"code": code, "label": label, "system": false, "human_contact": true, "sale": sale, "callback": callback, "dnc": false})));
    }
    let agent = api(addr, "POST", "/api/v1/agents", Some(json!({"username": "ann", "name": "Ann Agent", "password": AGENT_PASSWORD})));
    let settings = json!({
        "amd": {"enabled": false},
        "trunks": ["carrier"],
        "wrap_up_s": wrap_up_s,
        "script": "Hello {{name}}, this is Ann from Pacer about your {{plan}} plan.",
    });
    let campaign = api(addr, "POST", "/api/v1/campaigns", Some(json!({"name": "Renewals", "dial_mode": "progressive", "settings": settings})));
    let campaign_id = campaign["id"].as_i64().unwrap();
    let list = api(addr, "POST", &format!("/api/v1/campaigns/{campaign_id}/lists"), Some(json!({"name": "today"})));
    let (status, _, report) = http(addr, "POST", &format!("/api/v1/lists/{}/import", list["id"]), Some("phone,name,plan\n+12125550142,Carol Customer,Gold\n"));
    assert_eq!(status, 200, "{report}");
    let leads = api(addr, "GET", &format!("/api/v1/leads?campaign_id={campaign_id}"), None);
    let lead_id = leads[0]["id"].as_i64().unwrap_or_else(|| panic!("no lead: {leads}"));
    api(addr, "POST", &format!("/api/v1/campaigns/{campaign_id}/start"), None);
    Floor { pacer, addr, agent_id: agent["id"].as_i64().unwrap(), campaign_id, lead_id, dir }
}

impl Floor {
    /// Runs a scenario of tests/browser/desktop.mjs; returns its result line.
    fn browser(&mut self, scenario: &str, mut opts: Value) -> Value {
        let mic = |name: &str, hz: f64| {
            let p = self.dir.path().join(name);
            wav_tone(&p, hz, 20);
            p.display().to_string()
        };
        let o = opts.as_object_mut().unwrap();
        o.insert("base".into(), json!(format!("http://{}", self.addr)));
        o.insert("agent".into(), json!("ann"));
        o.insert("agent_password".into(), json!(AGENT_PASSWORD));
        o.insert("agent_id".into(), json!(self.agent_id));
        o.insert("agent_mic".into(), json!(mic("agent.wav", AGENT_HZ)));
        o.insert("supervisor".into(), json!("sue"));
        o.insert("supervisor_password".into(), json!(SUPERVISOR_PASSWORD));
        o.insert("supervisor_mic".into(), json!(mic("supervisor.wav", SUPERVISOR_HZ)));
        o.insert("customer_hz".into(), json!(CUSTOMER_HZ));
        o.insert("agent_hz".into(), json!(AGENT_HZ));
        o.insert("supervisor_hz".into(), json!(SUPERVISOR_HZ));
        if let Ok(d) = std::env::var("SCREENSHOTS_DIR") {
            let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(d);
            std::fs::create_dir_all(&d).unwrap();
            o.insert("screenshots".into(), json!(d.display().to_string()));
        }
        let mut node = Command::new("node");
        if scenario == "firefox" {
            node.arg(browser_dir().join("firefox.mjs"));
        } else {
            node.arg(browser_dir().join("desktop.mjs")).arg(scenario);
        }
        let out = node
            .arg(opts.to_string())
            .current_dir(browser_dir())
            .stdin(Stdio::null())
            .output()
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stdout.lines().last().unwrap_or("");
        let result: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("no result from the browser: {stdout}\n{stderr}"));
        if let Some(e) = result.get("error") {
            self.pacer.drain_log();
            panic!("the browser failed: {e}\n--- browser log\n{stderr}\n--- pacer log\n{}", self.pacer.log.join("\n"));
        }
        eprintln!("{stderr}");
        result
    }

    /// The one attempt of the lead, once it is written (bounded).
    fn attempt(&mut self, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let cdrs = api(self.addr, "GET", &format!("/api/v1/reports/cdr?campaign_id={}", self.campaign_id), None);
            if let Some(c) = cdrs.as_array().and_then(|a| a.first()) {
                return c.clone();
            }
            if Instant::now() > deadline {
                self.pacer.drain_log();
                panic!("no attempt written within {within:?}; log:\n{}", self.pacer.log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The agent's row on the live floor.
    fn agent_row(&self) -> Value {
        let floor = api(self.addr, "GET", "/api/v1/live/agents", None);
        floor["agents"].as_array().and_then(|a| a.iter().find(|r| r["agent_id"] == json!(self.agent_id)).cloned()).unwrap_or(Value::Null)
    }
}

/// Asserts the page heard (or sent) `hz` clearly above its noise floor.
fn assert_tone(m: &Value, hz: f64, what: &str) {
    let floor = m["floor"].as_f64().unwrap_or_else(|| panic!("{what}: no measurement: {m}"));
    let at = m["at"][format!("{hz}")].as_f64().or_else(|| m["at"][format!("{}", hz as i64)].as_f64()).unwrap_or_else(|| panic!("{what}: {hz} Hz not measured: {m}"));
    assert!(at - floor > 25.0, "{what}: {hz} Hz is only {:.1} dB above the floor: {m}", at - floor);
}

/// The share of `hz` in each second of `channel` (0 left = customer, 1 right = agent) of
/// the stereo recording.
fn recording_shares(path: &str, channel: usize, hz: f64) -> Vec<f64> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("recording {path}: {e}"));
    let spec = r.spec();
    assert_eq!(spec.channels, 2, "recordings are stereo: customer left, agent right");
    let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let chan: Vec<i16> = samples.chunks(2).map(|f| f[channel]).collect();
    let rate = f64::from(spec.sample_rate);
    chan.chunks(spec.sample_rate as usize).filter(|w| w.len() as u32 == spec.sample_rate).map(|w| (tone_share(w, rate, hz) * 100.0).round() / 100.0).collect()
}

#[test]
fn agent_takes_a_call_hears_and_is_heard_and_dispositions() {
    if !peers_or_skip() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut sipp = Sipp::start("carrier_tone.xml", &[]);
    let mut f = floor(sipp.port, 46_000, 60);
    let tomorrow = (chrono::Local::now() + chrono::Duration::days(1)).format("%Y-%m-%dT10:00").to_string();
    let r = f.browser("call", json!({"callback_at": tomorrow}));

    // The screen pop: the lead, its campaign, the script with the lead's fields filled in.
    let pop = &r["pop"];
    assert_eq!(pop["name"], "Carol Customer", "{r}");
    assert_eq!(pop["phone"], "+12125550142", "{r}");
    assert_eq!(pop["campaign"], "Renewals", "{r}");
    assert_eq!(pop["script"], "Hello Carol Customer, this is Ann from Pacer about your Gold plan.", "{r}");
    assert_eq!(pop["fields"]["plan"], "Gold", "{r}");
    assert_eq!(pop["state"], "On call", "{r}");
    // Customer → agent: the carrier's tone reaches the page; the page's own microphone is
    // the agent's tone.
    assert_tone(&r["heard"], CUSTOMER_HZ, "the agent's page");
    assert_tone(&r["sent"], AGENT_HZ, "the agent's microphone");
    assert_eq!(r["dtmf_error"], "", "the keypad's digit was refused: {r}");
    assert_eq!(r["wrap_state"], "Wrap-up", "{r}");
    assert!(r["saved"].as_str().unwrap().starts_with("Saved"), "{r}");
    assert_eq!(r["errors"], "", "the page showed an error: {r}");
    assert_eq!(r["logged_out"], true, "{r}");
    assert_eq!(f.agent_row(), Value::Null, "a logged-out agent leaves the floor");
    sipp.assert_passed(Duration::from_secs(10));

    // The disposition, notes, callback and edited field are in the database.
    let a = f.attempt(Duration::from_secs(10));
    assert_eq!(a["disposition"], "call_back", "{a}");
    assert_eq!(a["outcome"], "answered", "{a}");
    assert_eq!(a["agent_id"], json!(f.agent_id), "{a}");
    assert!(a["talk_s"].as_f64().unwrap() > 3.0, "{a}");
    let cb = api(f.addr, "GET", &format!("/api/v1/callbacks?campaign_id={}", f.campaign_id), None);
    let cb = cb.as_array().and_then(|c| c.first()).unwrap_or_else(|| panic!("no callback: {cb}"));
    assert_eq!((cb["lead_id"].as_i64(), cb["agent_id"].as_i64()), (Some(f.lead_id), Some(f.agent_id)), "{cb}");
    assert_eq!(cb["notes"], "Wants the Platinum plan; call back tomorrow", "{cb}");
    let now = chrono::Utc::now().timestamp_millis();
    assert!((now..now + 3 * 86_400_000).contains(&cb["due_at"].as_i64().unwrap()), "{cb}");
    let lead = api(f.addr, "GET", &format!("/api/v1/leads/{}", f.lead_id), None);
    assert_eq!(lead["fields"]["plan"], "Platinum", "the agent's edit of the lead: {lead}");

    // Agent → customer: the recording's agent channel (what the bridge sent the carrier)
    // is the page's microphone tone, and its customer channel the carrier's.
    let path = a["recording_path"].as_str().unwrap_or_else(|| panic!("no recording: {a}"));
    let frames = hound::WavReader::open(path).map(|r| r.duration()).unwrap_or(0);
    assert!(frames >= 8000 * 3, "the recording holds {frames} frames for a {} s call ({path})", a["talk_s"]);
    let agent = recording_shares(path, 1, AGENT_HZ);
    assert!(agent.iter().any(|s| *s > 0.5), "the agent's tone is not in the recording's agent channel ({path}): share by second {agent:?}");
    let customer = recording_shares(path, 0, CUSTOMER_HZ);
    assert!(customer.iter().any(|s| *s > 0.5), "the customer's tone is not in the recording's customer channel ({path}): share by second {customer:?}");
    f.pacer.terminate(Duration::from_secs(20));
}

#[test]
fn closing_the_page_mid_call_keeps_the_call_and_puts_the_agent_not_ready() {
    if !peers_or_skip() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // The customer talks for 8 s after answering, then hangs up.
    let mut sipp = Sipp::start("carrier_tone_bye.xml", &["-d", "8000"]);
    let mut f = floor(sipp.port, 46_200, 60);
    let r = f.browser("close", json!({}));
    assert_eq!(r["pop"]["name"], "Carol Customer", "{r}");
    assert_tone(&r["heard"], CUSTOMER_HZ, "the agent's page");
    // The page is gone; the call goes on until the customer ends it. A BYE from pacer
    // before then would fail SIPp's scenario.
    let row = f.agent_row();
    assert_eq!((row["state"].as_str(), row["online"].as_bool()), (Some("on_call"), Some(false)), "{row}");
    sipp.assert_passed(Duration::from_secs(20));
    let a = f.attempt(Duration::from_secs(10));
    assert_eq!(a["outcome"], "answered", "{a}");
    assert_eq!(a["disposition"], Value::Null, "{a}");
    assert_eq!(a["agent_id"], json!(f.agent_id), "{a}");
    assert!(a["talk_s"].as_f64().unwrap() > 7.0, "the call lasted until the customer hung up: {a}");
    // The agent is not ready (nobody at the desk), and was never made ready for a call.
    let row = f.agent_row();
    assert_eq!((row["state"].as_str(), row["reason"].as_str()), (Some("not_ready"), Some("disconnected")), "{row}");
    let time = api(f.addr, "GET", &format!("/api/v1/agents/{}/time", f.agent_id), None);
    let ready_s = time["seconds"]["ready"].as_f64().unwrap_or(0.0);
    assert!(ready_s < 10.0, "ready only before the call: {time}");
    f.pacer.terminate(Duration::from_secs(20));
}

#[test]
fn a_page_reloaded_mid_call_gets_the_screen_pop_and_the_audio_back() {
    if !peers_or_skip() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut sipp = Sipp::start("carrier_tone.xml", &[]);
    let mut f = floor(sipp.port, 46_600, 60);
    let r = f.browser("reload", json!({}));
    // The call's state may still read "Connecting" when the first pop is taken (it turns
    // to "On call" a moment later): the rest of the pop must be the same, and after the
    // reload the call is on.
    let without_state = |pop: &Value| {
        let mut pop = pop.clone();
        pop.as_object_mut().map(|o| o.remove("state"));
        pop
    };
    assert!(r["before"].is_object(), "{r}");
    assert_eq!(without_state(&r["before"]), without_state(&r["after"]), "the same screen pop after the reload: {r}");
    assert_eq!(r["after"]["state"], "On call", "{r}");
    assert_eq!(r["login_shown"], false, "the web session brings the desktop back without the password: {r}");
    assert_tone(&r["heard_before"], CUSTOMER_HZ, "the agent's page");
    // The new softphone's leg took over the call's audio.
    assert_tone(&r["heard_after"], CUSTOMER_HZ, "the reloaded page");
    sipp.assert_passed(Duration::from_secs(10));
    let a = f.attempt(Duration::from_secs(10));
    assert_eq!((a["disposition"].as_str(), a["agent_id"].as_i64()), (Some("sale"), Some(f.agent_id)), "{a}");
    f.pacer.terminate(Duration::from_secs(20));
}

#[test]
fn supervisor_listens_to_a_live_call_and_hears_both_sides() {
    if !peers_or_skip() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut sipp = Sipp::start("carrier_tone.xml", &[]);
    let mut f = floor(sipp.port, 46_400, 60);
    // Two more agents on the floor, not ready for the day's reasons (desktops without a
    // softphone, over the same socket).
    let _others: Vec<_> = [("bob", "lunch"), ("cy", "training")].into_iter().map(|(name, reason)| idle_agent(&f, name, reason)).collect();
    let r = f.browser("supervise", json!({}));
    assert_eq!(r["pop"]["name"], "Carol Customer", "{r}");
    let heard = &r["heard"];
    assert_tone(heard, CUSTOMER_HZ, "the supervisor (customer's side)");
    assert_tone(heard, AGENT_HZ, "the supervisor (agent's side)");
    let level = |hz: f64| heard["at"][format!("{}", hz as i64)].as_f64().unwrap();
    let floor = heard["floor"].as_f64().unwrap();
    assert!(level(SUPERVISOR_HZ) < floor + 15.0, "a listening supervisor does not hear their own microphone: {heard}");
    let row: Vec<&str> = r["floor"]["row"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!((row[0], row[1], row[3], row[4]), ("ann", "On call", "Renewals", "+12125550142"), "{r}");
    assert!(r["floor"]["listening"].as_str().unwrap().starts_with("listen · ann"), "{r}");
    assert!(r["floor"]["tiles"][0].as_str().unwrap().contains("Renewals"), "{r}");
    assert_eq!(r["floor"]["errors"], "", "{r}");
    sipp.assert_passed(Duration::from_secs(10));
    let a = f.attempt(Duration::from_secs(10));
    assert_eq!(a["disposition"], "sale", "{a}");
    f.pacer.terminate(Duration::from_secs(20));
}

/// An agent logged in over the CTI socket without a softphone, not ready for `reason`;
/// logged in until the returned socket is dropped.
fn idle_agent(f: &Floor, name: &str, reason: &str) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>> {
    api(f.addr, "POST", "/api/v1/agents", Some(json!({"username": name, "name": name, "password": AGENT_PASSWORD})));
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/cti/agent", f.addr)).expect("agent socket");
    ws.send(tungstenite::Message::Text(json!({"type": "login", "username": name, "password": AGENT_PASSWORD}).to_string().into())).unwrap();
    ws.send(tungstenite::Message::Text(json!({"type": "not_ready", "reason": reason}).to_string().into())).unwrap();
    // Read until the server confirms the state, so the floor shows it.
    loop {
        let m = ws.read().expect("agent socket open");
        if let tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == "state" && v["reason"] == reason {
                return ws;
            }
        }
    }
}

#[test]
fn agent_previews_skips_and_dials_a_number_from_the_page() {
    if !peers_or_skip() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut sipp = Sipp::start("carrier_tone.xml", &[]);
    let mut f = floor(sipp.port, 46_800, 60);
    let r = f.browser("own", json!({"manual_number": "(212) 555-0177"}));
    assert_eq!(r["preview"]["name"], "Carol Customer", "{r}");
    assert!(r["preview"]["script"].as_str().unwrap().starts_with("Hello Carol Customer"), "{r}");
    assert!(r["after_skip"].as_str().unwrap().contains("no lead"), "{r}");
    assert_eq!(r["pop"]["phone"], "+12125550177", "{r}");
    assert_tone(&r["heard"], CUSTOMER_HZ, "the agent's page");
    assert!(r["xfer_error"].as_str().unwrap().contains("no queue \"Nowhere\""), "{r}");
    assert_tone(&r["heard_after_xfer"], CUSTOMER_HZ, "the agent's page after a refused transfer");
    sipp.assert_passed(Duration::from_secs(10));
    let a = f.attempt(Duration::from_secs(10));
    assert_eq!((a["phone"].as_str(), a["disposition"].as_str(), a["agent_id"].as_i64()), (Some("+12125550177"), Some("sale"), Some(f.agent_id)), "{a}");
    // The skipped lead was not dialled.
    let lead = api(f.addr, "GET", &format!("/api/v1/leads/{}", f.lead_id), None);
    assert_eq!(lead["attempts"], 0, "{lead}");
    f.pacer.terminate(Duration::from_secs(20));
}

#[test]
fn agent_takes_a_call_in_firefox() {
    if !peers_or_skip() {
        return;
    }
    if !Path::new(FIREFOX).exists() || !browser_dir().join("node_modules/puppeteer-core").exists() {
        assert!(!in_ci(), "{FIREFOX} and puppeteer-core are required in CI (scripts/test installs them)");
        eprintln!("skipped: {FIREFOX} or puppeteer-core is missing");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut sipp = Sipp::start("carrier_tone.xml", &[]);
    let mut f = floor(sipp.port, 47_000, 60);
    let r = f.browser("firefox", json!({}));
    assert!(r["ua"].as_str().unwrap().contains("Firefox"), "{r}");
    assert_eq!(r["pop"]["name"], "Carol Customer", "{r}");
    // The customer's audio reaches Firefox: about 50 packets a second on its receiver.
    let (b, a) = (r["before"]["packets"].as_f64().unwrap_or(0.0), r["after"]["packets"].as_f64().unwrap_or(0.0));
    assert!(a - b >= 80.0, "Firefox received {} RTP packets in 2 s: {r}", a - b);
    sipp.assert_passed(Duration::from_secs(10));
    let a = f.attempt(Duration::from_secs(10));
    assert_eq!((a["disposition"].as_str(), a["agent_id"].as_i64()), (Some("sale"), Some(f.agent_id)), "{a}");
    // Agent → customer: Firefox's fake microphone is a 1 kHz tone; it is in the recording's
    // agent channel, which is what the bridge sent the carrier.
    let path = a["recording_path"].as_str().unwrap_or_else(|| panic!("no recording: {a}"));
    let agent = recording_shares(path, 1, AGENT_HZ);
    assert!(agent.iter().any(|s| *s > 0.5), "Firefox's microphone tone is not in the recording ({path}): {agent:?}");
    f.pacer.terminate(Duration::from_secs(20));
}
