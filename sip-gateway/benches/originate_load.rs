//! Outbound load through the gateway: a SIPp UAS answers every call (100, 180, 200), the
//! gateway originates `--cps` calls per second for `--secs` seconds, hangs each up as soon as
//! it is answered (INVITE → 200 → ACK → BYE), and prints the calls per second it sustained,
//! the failed calls and the setup latency (originate → Answered) p50/p99.
//!
//! `cargo bench -p pacer-sip --bench originate_load -- --cps 500 --secs 60`

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pacer_config::{SipConfig, TrunkConfig};
use pacer_sip::{CallEvent, OriginateRequest, SipGateway};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::main]
async fn main() {
    let cps = arg("--cps", 200).max(1);
    let secs = arg("--secs", 10).max(1);
    let port = free_port();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/uas_answer.xml");
    let mut sipp = Command::new("/usr/bin/sipp")
        .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_port().to_string(), "-cp", &free_port().to_string()])
        .args(["-nostdin", "-timeout", &format!("{}s", secs + 60)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start /usr/bin/sipp (Debian package sip-tester)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "sipp did not bind its port");
        std::thread::sleep(Duration::from_millis(10));
    }

    let sip = SipConfig { listen_udp: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let trunk = TrunkConfig {
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
    };
    let gw = Arc::new(SipGateway::start(&sip, &[trunk]).await.expect("gateway"));
    let offer = b"v=0\r\no=pacer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n".to_vec();
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity((cps * secs) as usize)));
    let total = cps * secs;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / cps as u32);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let req = OriginateRequest { trunk: "load".into(), number: format!("555{i:07}"), caller_id: None, sdp_offer: offer.clone(), ring_timeout: Duration::from_secs(10) };
        let (gw, answered, failed, latencies) = (gw.clone(), answered.clone(), failed.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let Ok(mut call) = gw.originate(req) else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            loop {
                match tokio::time::timeout(Duration::from_secs(40), call.next_event()).await {
                    Ok(Some(CallEvent::Answered(_))) => {
                        latencies.lock().unwrap().push(t0.elapsed());
                        call.hangup();
                    }
                    Ok(Some(CallEvent::HungUp { .. })) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(Some(CallEvent::Failed { .. })) | Ok(None) | Err(_) => {
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
    sipp.kill().ok();
    sipp.wait().ok();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default();
    let ok = answered.load(Ordering::Relaxed);
    println!("offered      {total} calls at {cps} CPS over {:.1} s", offered.as_secs_f64());
    println!("completed    {ok} calls (INVITE → 200 → ACK → BYE), failed {}", failed.load(Ordering::Relaxed));
    println!("sustained    {:.0} calls/s (offer phase), all done in {:.1} s", ok as f64 / offered.as_secs_f64().max(0.001), elapsed.as_secs_f64());
    println!("setup        p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (originate → Answered, via SIPp)", pct(0.50).as_secs_f64() * 1e3, pct(0.99).as_secs_f64() * 1e3, lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3);
}
