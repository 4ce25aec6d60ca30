//! A whole campaign end to end: SIPp as the carrier (people, machines, busy lines, lines
//! that ring out), five simulated agents on the CTI socket with persistent RTP legs, 200
//! leads, `pacer demo --carrier` driving the real server. Afterwards the database, the
//! recordings, SIPp's own count and the Prometheus counters must all agree.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{PACER, http, in_ci};
use pacer_dialer::store::{Store, StoreOptions};
use pacer_media::Codec;
use pacer_media::amd::synth;

const SIPP: &str = "/usr/bin/sipp";

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A pcap of RTP (PCMU, 20 ms packets) carrying `samples`, as SIPp's `play_pcap_audio` reads.
fn write_pcap(path: &Path, samples: &[i16]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, frame) in samples.chunks(160).enumerate() {
        let mut rtp = vec![0x80, 0x00];
        rtp.extend_from_slice(&(i as u16).to_be_bytes());
        rtp.extend_from_slice(&((i * 160) as u32).to_be_bytes());
        rtp.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        rtp.extend(frame.iter().map(|s| Codec::Pcmu.encode(*s)));
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut pkt = vec![0u8; 12];
        pkt.extend_from_slice(&[0x08, 0x00]);
        pkt.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        pkt.extend_from_slice(&4000u16.to_be_bytes());
        pkt.extend_from_slice(&5000u16.to_be_bytes());
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 0]);
        pkt.extend_from_slice(&rtp);
        let t_us = i as u64 * 20_000;
        out.extend_from_slice(&((t_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((t_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&pkt);
    }
    std::fs::write(path, out).unwrap();
}

/// RMS of one channel of a stereo WAV.
fn channel_rms(path: &Path, channel: usize) -> f64 {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(r.spec().channels, 2, "{} is stereo", path.display());
    let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let ch: Vec<f64> = s.chunks(2).map(|f| f64::from(f[channel])).collect();
    (ch.iter().map(|x| x * x).sum::<f64>() / ch.len().max(1) as f64).sqrt()
}

/// SIPp's count of calls it received, from its statistics file.
fn sipp_incoming_calls(stat: &Path) -> u64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
    let col = header.iter().position(|h| *h == "IncomingCall(C)").expect("IncomingCall(C) column");
    lines.filter_map(|l| l.split(';').nth(col)?.parse().ok()).max().unwrap_or(0)
}

#[test]
fn a_campaign_against_sipp_settles_every_call_once() {
    if !Path::new(SIPP).exists() {
        assert!(!in_ci(), "{SIPP} is required in CI (Debian package sip-tester)");
        eprintln!("skipped: {SIPP} is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // E2E_KEEP=1 keeps the run's files (database, recordings, SIPp's logs) to look at.
    let keep = std::env::var_os("E2E_KEEP").is_some();
    let sipp_dir = dir.path().join("sipp");
    std::fs::create_dir_all(&sipp_dir).unwrap();
    // A person: "hello?" and a pause (they wait for an answer), then talk for the rest of
    // the call; a machine: a long greeting and a beep.
    let mut human = synth::human_greeting(7);
    // The pause after "hello?" lasts until the agent speaks; here, 1.2 s, enough for the
    // detector (which decides after ~0.8 s of it) and short enough that the customer
    // talks as soon as they are connected.
    let last_voice = human.iter().rposition(|s| s.unsigned_abs() > 500).unwrap_or(0);
    human.truncate((last_voice + 9600).min(human.len()));
    for i in 0..6 {
        human.extend(synth::speech_like(100 + i, Duration::from_secs(3)));
    }
    write_pcap(&sipp_dir.join("human.pcap"), &human);
    write_pcap(&sipp_dir.join("machine.pcap"), &synth::machine_greeting(11, true));

    // A CRM: takes webhooks, refusing each event's first delivery (so retries are used).
    let crm = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let crm_addr = crm.local_addr().unwrap();
    let hooks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String, String)>::new()));
    let h = hooks.clone();
    std::thread::spawn(move || {
        let mut refused = std::collections::HashSet::new();
        for conn in crm.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some((head, body)) = read_request(&mut conn) else { continue };
            let header = |name: &str| head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())).unwrap_or_default();
            let status = if refused.insert(body.clone()) { "500 Internal Server Error" } else { "200 OK" };
            if status.starts_with("200") {
                h.lock().unwrap().push((header("x-pacer-event"), header("x-pacer-signature"), body));
            }
            let _ = conn.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
        }
    });

    let port = free_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/carrier_mix.xml");
    let mut sipp = Command::new(SIPP)
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &free_port().to_string()])
        .args(["-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-timeout", "600s", "-trace_err"])
        .args(if keep { &["-trace_msg"][..] } else { &[][..] })
        .current_dir(&sipp_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    let data = dir.path().join("data");
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/agents.toml");
    let mut pacer = Command::new(PACER)
        .args(["demo", "--json", "--keep", "--agents", "5", "--leads", "200", "--duration", "60", "--listen", "127.0.0.1:0"])
        .arg("--carrier")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--scenario")
        .arg(&agents)
        .arg("--data-dir")
        .arg(&data)
        .env("PACER_WEBHOOKS__URLS", format!("[\"http://{crm_addr}/hook\"]"))
        .env("PACER_MEDIA__RTP_PORT_MIN", "41000")
        .env("PACER_MEDIA__RTP_PORT_MAX", "44998")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pacer demo");
    let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
    let (out, err) = (pacer.stdout.take().unwrap(), pacer.stderr.take().unwrap());
    let t2 = tx.clone();
    std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send((true, l)))));
    std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(t2.send((false, l)))));
    let guard = Kill(vec![sipp.id(), pacer.id()]);

    // The summary (stdout) comes when the campaign is over; the server then stays up.
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut summary, mut base, mut log) = (None, None, Vec::new());
    while summary.is_none() || base.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (is_out, line) = rx.recv_timeout(left).unwrap_or_else(|_| panic!("pacer demo did not finish in time; log:\n{}", log.join("\n")));
        if is_out && line.starts_with('{') {
            summary = Some(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        } else if let Some(at) = line.find("stays up at http://") {
            base = line[at + "stays up at http://".len()..].split_whitespace().next().map(str::to_string);
        } else {
            log.push(line);
        }
    }
    let summary = summary.unwrap();
    let addr: std::net::SocketAddr = base.unwrap().parse().unwrap();
    let (status, _, metrics) = http(addr, "GET", "/metrics", None);
    assert_eq!(status, 200);

    // The database: one settled outcome per attempt, no lead left claimed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}", data.join("pacer.db").display());
    let (attempts, leads, verdicts) = rt.block_on(async {
        let store = Store::connect(&url, &StoreOptions::default()).await.unwrap();
        let q = |sql: &'static str| {
            let store = store.clone();
            async move { sqlx::query_as::<_, (i64, String, Option<String>, Option<String>, Option<i64>)>(sql).fetch_all(store.pool()).await.unwrap() }
        };
        let attempts = q("SELECT lead_id, outcome, answered_by, recording_path, agent_id FROM lead_attempts").await;
        let leads = sqlx::query_as::<_, (i64, String, i64)>("SELECT id, state, attempts FROM leads").fetch_all(store.pool()).await.unwrap();
        let verdicts = sqlx::query_as::<_, (i64, Option<i64>, Option<i64>)>(
            "SELECT lead_id, answered_at, verdict_at FROM lead_attempts WHERE answered_by IN ('human', 'machine')",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        (attempts, leads, verdicts)
    });
    // The CRM got every event (retried after its refusals), signed, with links that work
    // while the server is up.
    let key = std::fs::read_to_string(data.join("signing.key")).unwrap();
    let want = attempts.len() + attempts.iter().filter(|a| a.4.is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while hooks.lock().unwrap().len() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let events = hooks.lock().unwrap().clone();
    assert_eq!(events.len(), want, "a call.ended per call and a call.dispositioned per connected call");
    let mut fetched = 0;
    for (event, sig, body) in &events {
        let (t, v1) = sig.split_once(',').unwrap();
        let t = t.strip_prefix("t=").unwrap();
        assert_eq!(v1.strip_prefix("v1=").unwrap(), hmac_hex(key.as_bytes(), &format!("{t}.{body}")), "signature of {body}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["event"].as_str(), Some(event.as_str()));
        if let Some(url) = v["recording_url"].as_str().filter(|_| fetched < 3) {
            let path = &url[url.find("/recordings/").unwrap()..];
            let (status, head, _) = http(addr, "GET", path, None);
            assert_eq!(status, 200, "{url}");
            assert!(head.to_ascii_lowercase().contains("audio/wav"), "{head}");
            let tampered = path.replace("sig=", "sig=0");
            assert_eq!(http(addr, "GET", &tampered, None).0, 403);
            fetched += 1;
        }
    }
    assert!(fetched > 0, "some dispositioned calls carried a recording link");
    // SIPp's verdict on how many calls it took, once its statistics file is flushed.
    std::thread::sleep(Duration::from_millis(1500));
    let seen = sipp_incoming_calls(&sipp_dir.join("stat.csv"));
    drop(guard);
    let _ = sipp.wait();
    let _ = pacer.wait();
    if keep {
        eprintln!("kept: {}", dir.keep().display());
    }

    assert!(attempts.len() >= 20, "a minute of dialling makes a few dozen calls: {} ({summary})", attempts.len());
    assert_eq!(attempts.len() as u64, seen, "one CDR per call SIPp saw");
    assert_eq!(summary["dials"].as_u64(), Some(seen), "{summary}");
    let mut per_lead: HashMap<i64, i64> = HashMap::new();
    for a in &attempts {
        *per_lead.entry(a.0).or_default() += 1;
    }
    for (id, state, n) in &leads {
        assert!(!matches!(state.as_str(), "hopper" | "dialling"), "lead {id} left {state}");
        assert_eq!(per_lead.get(id).copied().unwrap_or(0), *n, "lead {id}: attempts counted on the lead = attempts written");
    }
    // Every outcome SIPp can produce happened, and the verdicts are right.
    let count = |o: &str| attempts.iter().filter(|a| a.1 == o).count();
    // (The carrier draws each call's fate at random; with a few dozen calls each kind is
    // all but certain, and failures of either kind are.)
    assert!(count("busy") + count("no_answer") > 0, "{summary}");
    let humans = attempts.iter().filter(|a| a.2.as_deref() == Some("human")).count();
    let machines = attempts.iter().filter(|a| a.2.as_deref() == Some("machine")).count();
    assert!(humans > 0 && machines > 0, "people and machines told apart: {summary}");
    // Each verdict's time is in its CDR (what `simulate --from-campaign` learns from).
    for (lead, answered, verdict) in &verdicts {
        let (a, v) = (answered.unwrap_or_else(|| panic!("lead {lead}: no answer time")), verdict.unwrap_or_else(|| panic!("lead {lead}: no verdict time")));
        assert!(v >= a && v - a < 10_000, "lead {lead}: verdict {} ms after the answer", v - a);
    }
    // Answered calls connected to agents were recorded with both parties' audio.
    let connected: Vec<_> = attempts.iter().filter(|a| a.4.is_some()).collect();
    assert!(!connected.is_empty(), "{summary}");
    for a in &connected {
        let path = a.3.as_ref().unwrap_or_else(|| panic!("connected call of lead {} has no recording", a.0));
        let p = Path::new(path);
        assert!(p.exists(), "{path}");
        assert!(channel_rms(p, 0) > 50.0, "{path}: the customer's channel has audio");
        assert!(channel_rms(p, 1) > 50.0, "{path}: the agent's channel has audio");
    }
    // Within the abandon target.
    let abandoned = attempts.iter().filter(|a| a.1 == "abandoned").count();
    assert!(abandoned as f64 <= 0.03 * humans as f64 + 1e-9, "abandoned {abandoned} of {humans} people: {summary}");
    // The counters agree with the database.
    let mut counted: HashMap<String, u64> = HashMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("pacer_calls_total{")) {
        let outcome = line.split("outcome=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string();
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counted.entry(outcome).or_default() += v as u64;
    }
    for o in ["busy", "no_answer", "machine", "answered", "abandoned"] {
        assert_eq!(counted.get(o).copied().unwrap_or(0), count(o) as u64, "pacer_calls_total{{outcome=\"{o}\"}} vs the database:\n{metrics}");
    }
    let _ = std::io::stderr().flush();
}

fn hmac_hex(key: &[u8], text: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(text.as_bytes());
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// One HTTP/1.1 request: the head and the body (by Content-Length).
fn read_request(conn: &mut std::net::TcpStream) -> Option<(String, String)> {
    use std::io::Read;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, String::from_utf8_lossy(&buf[head_end..]).to_string()))
}

/// Kills the test's processes on every exit path.
struct Kill(Vec<u32>);

impl Drop for Kill {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").arg("-INT").arg(pid.to_string()).status();
        }
        std::thread::sleep(Duration::from_millis(300));
        for pid in &self.0 {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}
