//! SIP load through the gateway on loopback, with SIPp as the far end. Prints one JSON line.
//!
//! - `--mode originate` (default): the gateway originates `--cps` calls per second for
//!   `--secs` seconds to a SIPp UAS that answers (100, 180, 200) and hangs each up as soon
//!   as it is answered (INVITE → 200 → ACK → BYE). Figures: calls completed and failed,
//!   sustained calls per second, setup latency (originate → Answered) p50/p99.
//! - `--mode b2bua`: a SIPp UAC calls in through a trunk at `--cps`; each inbound call is
//!   bridged to an outbound call to a SIPp UAS (the B2BUA path of predictive dialling in
//!   reverse). Figures: latency from the inbound INVITE handed over to the outbound INVITE
//!   sent (`in_to_out`), and to the outbound answer, p50/p99; failed calls on either side.
//! - `--mode register`: `--stations` stations register over UDP with digest auth, `--window`
//!   at a time (UDP clients in this process: SIPp 3.6 cannot take per-row credentials).
//!   Figures: stations bound, failed registrations, registrations per second, latency of a
//!   registration (REGISTER → 401 → REGISTER → 200) p50/p99, memory growth per station.
//!
//! `cargo bench -p pacer-sip --bench originate_load -- --mode originate --cps 500 --secs 60`

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pacer_config::{SipConfig, TrunkConfig};
use pacer_sip::{CallEvent, OriginateRequest, SipGateway};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scenario(name: &str) -> String {
    format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))
}

struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Starts SIPp with `args` on `port`; for a UAS, waits (bounded) until it holds the port.
fn sipp(port: u16, args: &[String], uas: bool) -> Sipp {
    let child = Command::new("/usr/bin/sipp")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_port().to_string(), "-cp", &free_port().to_string(), "-nostdin"])
        // SIPp's default 64 KiB socket buffers overflow in bursts on a busy machine.
        .args(["-buff_size", "4194304"])
        .args(args)
        .args(if std::env::var_os("SIPP_TRACE").is_some() { &["-trace_msg", "-trace_err"][..] } else { &[][..] })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start /usr/bin/sipp (Debian package sip-tester)");
    let s = Sipp(child);
    if uas {
        let deadline = Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "sipp did not bind its port");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    s
}

fn carrier_trunk(port: u16, cps: u64) -> TrunkConfig {
    TrunkConfig {
        name: "load".into(),
        host: "127.0.0.1".into(),
        port,
        // Headroom over the offered rate: the trunk limiter would otherwise add its own
        // queueing to the latency whenever the ticker jitters ahead of its spacing.
        max_cps: (cps * 2) as u32,
        max_concurrent: (cps * 4 + 100) as u32,
        options_interval_s: 0,
        caller_id: Some("+15550001111".into()),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Sum of `pacer_sip_retransmissions_total` by direction, as `(in, out)`.
fn retransmissions(gw: &SipGateway) -> (u64, u64) {
    let registry = prometheus::Registry::new();
    gw.register_metrics(&registry).unwrap();
    let (mut inn, mut out) = (0, 0);
    for family in registry.gather().iter().filter(|f| f.name() == "pacer_sip_retransmissions_total") {
        for m in family.get_metric() {
            let dir = m.get_label().iter().find(|l| l.name() == "direction").map(|l| l.value().to_string()).unwrap_or_default();
            let v = m.get_counter().get_value() as u64;
            if dir == "in" { inn += v } else { out += v }
        }
    }
    (inn, out)
}

/// `{"reason": count, ...}` as JSON.
fn json_counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    let items: Vec<String> = map.iter().map(|(k, v)| format!("\"{}\":{v}", k.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", items.join(","))
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

const OFFER: &[u8] = b"v=0\r\no=pacer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

#[tokio::main]
async fn main() {
    let mode: String = arg("--mode", "originate".to_string());
    let cps: u64 = arg("--cps", 200u64).max(1);
    let secs: u64 = arg("--secs", 10u64).max(1);
    match mode.as_str() {
        "originate" => originate(cps, secs).await,
        "b2bua" => b2bua(cps, secs).await,
        "register" => register(arg("--stations", 5000u64), arg("--window", 100u64)).await,
        other => panic!("unknown --mode {other} (originate, b2bua, register)"),
    }
}

async fn originate(cps: u64, secs: u64) {
    let port = free_port();
    let _uas = sipp(port, &["-sf".into(), scenario("tests/sipp/uas_answer.xml"), "-timeout".into(), format!("{}s", secs + 60)], true);
    let sip = SipConfig { listen_udp: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let gw = Arc::new(SipGateway::start(&sip, &[carrier_trunk(port, cps)]).await.expect("gateway"));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity((cps * secs) as usize)));
    let why = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let total = cps * secs;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / cps as u32);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let req = OriginateRequest { trunk: "load".into(), number: format!("555{i:07}"), caller_id: None, sdp_offer: OFFER.to_vec(), ring_timeout: Duration::from_secs(10) };
        let (gw, answered, failed, latencies, why) = (gw.clone(), answered.clone(), failed.clone(), latencies.clone(), why.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let mut answered_at = false;
            let Ok(mut call) = gw.originate(req) else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            loop {
                match tokio::time::timeout(Duration::from_secs(40), call.next_event()).await {
                    Ok(Some(CallEvent::Answered(_))) => {
                        latencies.lock().unwrap().push(t0.elapsed());
                        answered_at = true;
                        call.hangup();
                    }
                    Ok(Some(CallEvent::HungUp { .. })) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(Some(CallEvent::Failed { status, reason, .. })) => {
                        *why.lock().unwrap().entry(format!("{status:?} {reason}")).or_default() += 1;
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(None) | Err(_) => {
                        *why.lock().unwrap().entry(format!("no end event (answered: {answered_at})")).or_default() += 1;
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(Some(_)) => {}
                }
            }
        }));
    }
    let offered = start.elapsed();
    for t in tasks {
        t.await.ok();
    }
    let elapsed = start.elapsed();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let ok = answered.load(Ordering::Relaxed);
    println!(
        "{{\"mode\":\"originate\",\"offered_cps\":{cps},\"secs\":{secs},\"calls\":{total},\"completed\":{ok},\"failed\":{},\"sustained_cps\":{:.1},\"drain_s\":{:.2},\"setup_ms_p50\":{:.2},\"setup_ms_p99\":{:.2},\"setup_ms_max\":{:.2},\"retransmissions_in\":{},\"retransmissions_out\":{},\"failures\":{}}}",
        failed.load(Ordering::Relaxed),
        ok as f64 / offered.as_secs_f64().max(0.001),
        (elapsed - offered).as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        retransmissions(&gw).0,
        retransmissions(&gw).1,
        json_counts(&why.lock().unwrap()),
    );
}

async fn b2bua(cps: u64, secs: u64) {
    let carrier_port = free_port();
    let _uas = sipp(carrier_port, &["-sf".into(), scenario("tests/sipp/uas_answer.xml"), "-timeout".into(), format!("{}s", secs + 60)], true);
    let sip = SipConfig { listen_udp: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let inbound_trunk = TrunkConfig { name: "in".into(), host: "127.0.0.1".into(), inbound_from: vec!["127.0.0.0/8".into()], options_interval_s: 0, ..Default::default() };
    let gw = Arc::new(SipGateway::start(&sip, &[carrier_trunk(carrier_port, cps), inbound_trunk]).await.expect("gateway"));
    let mut inbound = gw.take_inbound().unwrap();
    let total = cps * secs;
    let uac_port = free_port();
    let mut uac = sipp(
        uac_port,
        &[
            "-sf".into(),
            scenario("tests/sipp/uac_inbound_call.xml"),
            "-s".into(),
            "8005550100".into(),
            gw.local_addr().to_string(),
            "-r".into(),
            cps.to_string(),
            "-m".into(),
            total.to_string(),
            "-timeout".into(),
            format!("{}s", secs + 60),
        ],
        false,
    );
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let lat = Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
    let start = Instant::now();
    let mut tasks = Vec::new();
    while (tasks.len() as u64) < total {
        let Ok(Some(mut call)) = tokio::time::timeout(Duration::from_secs(10), inbound.recv()).await else { break };
        let t_in = Instant::now();
        let (gw, done, failed, lat) = (gw.clone(), done.clone(), failed.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let req = OriginateRequest { trunk: "load".into(), number: call.called.clone(), caller_id: None, sdp_offer: call.sdp_offer.clone(), ring_timeout: Duration::from_secs(10) };
            let Ok(mut out) = gw.originate(req) else {
                failed.fetch_add(1, Ordering::Relaxed);
                call.reject(503).ok();
                return;
            };
            loop {
                match tokio::time::timeout(Duration::from_secs(40), out.next_event()).await {
                    Ok(Some(CallEvent::Dialing { .. })) => lat.lock().unwrap().0.push(t_in.elapsed()),
                    Ok(Some(CallEvent::Answered(sdp))) => {
                        lat.lock().unwrap().1.push(t_in.elapsed());
                        call.answer(sdp).ok();
                        break;
                    }
                    Ok(Some(CallEvent::Failed { .. })) | Ok(None) | Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        call.reject(503).ok();
                        return;
                    }
                    Ok(Some(_)) => {}
                }
            }
            // The caller hangs up; the bridged leg follows.
            loop {
                match tokio::time::timeout(Duration::from_secs(40), call.next_event()).await {
                    Ok(Some(CallEvent::Answered(_))) => {}
                    Ok(Some(CallEvent::HungUp { .. })) => break,
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            out.hangup();
            match tokio::time::timeout(Duration::from_secs(40), out.next_event()).await {
                Ok(Some(CallEvent::HungUp { .. })) => done.fetch_add(1, Ordering::Relaxed),
                _ => failed.fetch_add(1, Ordering::Relaxed),
            };
        }));
    }
    for t in tasks {
        t.await.ok();
    }
    let uac_ok = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = uac.0.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let elapsed = start.elapsed();
    let (mut dial, mut answer) = lat.lock().unwrap().clone();
    dial.sort();
    answer.sort();
    println!(
        "{{\"mode\":\"b2bua\",\"offered_cps\":{cps},\"secs\":{secs},\"calls\":{total},\"bridged\":{},\"failed\":{},\"sipp_uac_all_passed\":{uac_ok},\"sustained_cps\":{:.1},\"in_to_out_ms_p50\":{:.3},\"in_to_out_ms_p99\":{:.3},\"in_to_answer_ms_p50\":{:.2},\"in_to_answer_ms_p99\":{:.2}}}",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        percentile(&dial, 0.50),
        percentile(&dial, 0.99),
        percentile(&answer, 0.50),
        percentile(&answer, 0.99),
    );
}

async fn register(stations: u64, window: u64) {
    // All the load comes from one address (loopback): lift the per-source limit that would
    // rightly stop one address registering thousands of stations.
    let sip = SipConfig { listen_udp: "127.0.0.1:0".parse().unwrap(), rate_limit_per_source: 1_000_000, ..Default::default() };
    let gw = Arc::new(SipGateway::start(&sip, &[]).await.expect("gateway"));
    for i in 0..stations {
        gw.set_station_password(&format!("agent{i:05}"), &format!("pw{i}"));
    }
    let rss_before = rss_kib();
    let target = gw.local_addr();
    let failed = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(stations as usize)));
    // SIPp 3.6 cannot take per-row digest credentials from its CSV file, so the stations
    // here are plain UDP sockets doing REGISTER → 401 → REGISTER with credentials → 200,
    // `window` at a time.
    let sem = Arc::new(tokio::sync::Semaphore::new(window.max(1) as usize));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(stations as usize);
    for i in 0..stations {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (failed, lat) = (failed.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let ok = register_one(target, &format!("agent{i:05}"), &format!("pw{i}")).await;
            drop(permit);
            match ok {
                Ok(()) => lat.lock().unwrap().push(t0.elapsed()),
                Err(why) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("agent{i:05}: {why}");
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.ok();
    }
    let elapsed = start.elapsed();
    let bound = gw.stations().len();
    let rss_after = rss_kib();
    let mut lat = lat.lock().unwrap().clone();
    lat.sort();
    println!(
        "{{\"mode\":\"register\",\"stations\":{stations},\"bound\":{bound},\"failed\":{},\"registrations_per_s\":{:.0},\"register_ms_p50\":{:.2},\"register_ms_p99\":{:.2},\"rss_growth_kib\":{},\"bytes_per_station\":{:.0}}}",
        failed.load(Ordering::Relaxed),
        bound as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        rss_after.saturating_sub(rss_before),
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / bound.max(1) as f64,
    );
}

fn md5_hex(s: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// One station's registration through the digest challenge (retransmitting like a UA).
async fn register_one(target: std::net::SocketAddr, user: &str, password: &str) -> Result<(), String> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let local = sock.local_addr().unwrap();
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:pacer.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bK{user}c{cseq}\r\nFrom: <sip:{user}@pacer.local>;tag={user}\r\nTo: <sip:{user}@pacer.local>\r\nCall-ID: {user}@load\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 600\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    let exchange = async |msg: String| -> Result<String, String> {
        let mut buf = vec![0u8; 4096];
        for wait in [500u64, 1000, 2000, 4000] {
            sock.send_to(msg.as_bytes(), target).await.map_err(|e| e.to_string())?;
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(wait), sock.recv_from(&mut buf)).await {
                let (n, _) = r.map_err(|e| e.to_string())?;
                return Ok(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        Err("no answer".into())
    };
    let challenge = exchange(request(1, "")).await?;
    if !challenge.starts_with("SIP/2.0 401") {
        return Err(format!("expected 401: {}", challenge.lines().next().unwrap_or_default()));
    }
    let www = challenge.lines().find_map(|l| l.strip_prefix("WWW-Authenticate: ")).ok_or("no challenge")?;
    let param = |k: &str| www.split(&format!("{k}=\"")).nth(1).and_then(|r| r.split('"').next()).map(str::to_string);
    let (realm, nonce) = (param("realm").ok_or("no realm")?, param("nonce").ok_or("no nonce")?);
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex("REGISTER:sip:pacer.local");
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    let auth = format!("Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:pacer.local\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n");
    let ok = exchange(request(2, &auth)).await?;
    if ok.starts_with("SIP/2.0 200") { Ok(()) } else { Err(format!("expected 200: {}", ok.lines().next().unwrap_or_default())) }
}
