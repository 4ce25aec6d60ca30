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
//! - `--mode register`: `--stations` stations register over UDP with digest auth at `--cps`
//!   registrations per second (SIPp with a CSV of users). Figures: stations bound, failed
//!   registrations, gateway memory growth per station.
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
        "register" => register(arg("--stations", 5000u64), cps).await,
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

async fn register(stations: u64, rate: u64) {
    // All the load comes from one address (SIPp on loopback): lift the per-source limit
    // that would rightly stop one address registering thousands of stations.
    let sip = SipConfig { listen_udp: "127.0.0.1:0".parse().unwrap(), rate_limit_per_source: 1_000_000, ..Default::default() };
    let gw = SipGateway::start(&sip, &[]).await.expect("gateway");
    let dir = std::env::temp_dir().join(format!("pacer-register-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("stations.csv");
    let mut text = String::from("SEQUENTIAL\n");
    for i in 0..stations {
        let (user, pass) = (format!("agent{i:05}"), format!("pw{i}"));
        gw.set_station_password(&user, &pass);
        text.push_str(&format!("{user};{pass}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut uac = sipp(
        free_port(),
        &[
            "-sf".into(),
            scenario("benches/uac_register_csv.xml"),
            "-inf".into(),
            csv.display().to_string(),
            gw.local_addr().to_string(),
            "-r".into(),
            rate.to_string(),
            "-m".into(),
            stations.to_string(),
            "-timeout".into(),
            format!("{}s", stations / rate.max(1) + 60),
        ],
        false,
    );
    let ok = tokio::task::spawn_blocking(move || uac.0.wait().map(|s| s.success()).unwrap_or(false)).await.unwrap();
    let elapsed = start.elapsed();
    let bound = gw.stations().len();
    let rss_after = rss_kib();
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "{{\"mode\":\"register\",\"stations\":{stations},\"bound\":{bound},\"sipp_all_passed\":{ok},\"failed\":{},\"registrations_per_s\":{:.0},\"rss_growth_kib\":{},\"bytes_per_station\":{:.0}}}",
        stations.saturating_sub(bound as u64),
        bound as f64 / elapsed.as_secs_f64(),
        rss_after.saturating_sub(rss_before),
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / bound.max(1) as f64,
    );
}
