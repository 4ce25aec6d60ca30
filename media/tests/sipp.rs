//! Two SIPp calls bridged through pacer-media: one plays a recorded A-law stream (the
//! pcap SIPp ships), the other speaks µ-law and echoes every RTP packet it receives. The
//! test answers both INVITEs itself (a minimal UAS: media is what is under test here) and
//! checks that the stream arrived whole, crossed the bridge and came back whole.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pacer_media::{Bridge, Endpoint, MediaEngine};
use tokio::net::UdpSocket;

const SIPP: &str = "/usr/bin/sipp";
const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

/// Kills SIPp on every exit path.
struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Sipp {
    fn start(scenario: &str, uas: SocketAddr, extra: &[&str]) -> Sipp {
        let free = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
        let sf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp").join(scenario);
        let child = Command::new(SIPP)
            .arg("-sf")
            .arg(sf)
            .arg(uas.to_string())
            .args(["-i", "127.0.0.1", "-p", &free(), "-mp", &free()])
            .args(["-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp starts");
        Sipp(child)
    }

    /// Waits (bounded) for SIPp's verdict: its exit status is 0 when every call passed.
    async fn finish(mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.0.try_wait() {
                return st.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

fn pcap_packets(path: &str) -> usize {
    let d = std::fs::read(path).unwrap();
    let (mut off, mut n) = (24, 0);
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + incl;
        n += 1;
    }
    n
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find(|l| l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name) && l.as_bytes()[name.len()] == b':')
        .map(|l| l[name.len() + 1..].trim())
        .unwrap_or("")
}

/// Answers INVITEs with a fresh leg each (one per Call-ID, retransmissions included),
/// bridges the second call to the first, and answers BYE by closing the leg.
async fn uas(sock: Arc<UdpSocket>, engine: MediaEngine, legs: Arc<Mutex<Vec<Endpoint>>>, bridge: Arc<Mutex<Option<Bridge>>>) {
    let mut by_call: HashMap<String, (Endpoint, String)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = sock.recv_from(&mut buf).await {
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        let call_id = header(&msg, "Call-ID").to_string();
        let reply = |code: &str, body: &str, to_tag: bool| {
            let to = header(&msg, "To");
            let to = if to_tag && !to.contains("tag=") { format!("{to};tag=pacer") } else { to.to_string() };
            let ctype = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".into() };
            format!(
                "SIP/2.0 {code}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {}\r\nContact: <sip:pacer@{}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
                header(&msg, "Via"),
                header(&msg, "From"),
                header(&msg, "CSeq"),
                sock.local_addr().unwrap(),
                body.len()
            )
        };
        let out = if msg.starts_with("INVITE") {
            if !by_call.contains_key(&call_id) {
                let offer = msg.split("\r\n\r\n").nth(1).unwrap_or("");
                let leg = engine.rtp_endpoint().await.unwrap();
                let answer = leg.answer_offer(offer).expect("SIPp's offer is answerable");
                let mut l = legs.lock().unwrap();
                l.push(leg.clone());
                if l.len() == 2 {
                    *bridge.lock().unwrap() = Some(engine.bridge(&l[1], &l[0]).unwrap());
                }
                by_call.insert(call_id.clone(), (leg, answer));
            }
            reply("200 OK", &by_call[&call_id].1, true)
        } else if msg.starts_with("BYE") {
            if let Some((leg, _)) = by_call.get(&call_id) {
                leg.close();
            }
            reply("200 OK", "", false)
        } else {
            continue;
        };
        let _ = sock.send_to(out.as_bytes(), from).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sipp_streams_bridged_arrive_complete() {
    if !std::path::Path::new(SIPP).exists() || !std::path::Path::new(PCAP).exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{SIPP} or {PCAP} missing (Debian sip-tester) and CI=true");
        eprintln!("skipped: {SIPP} or {PCAP} missing (install the Debian package sip-tester)");
        return;
    }
    let engine = engine(21900);
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let uas_addr = sock.local_addr().unwrap();
    let legs = Arc::new(Mutex::new(Vec::new()));
    let bridge = Arc::new(Mutex::new(None));
    let server = tokio::spawn(uas(sock, engine.clone(), legs.clone(), bridge.clone()));

    // The echoing µ-law phone first (it stays up 9.5 s), then the A-law player.
    let echo = Sipp::start("uac_echo.xml", uas_addr, &["-rtp_echo", "-d", "9500"]);
    assert!(eventually(Duration::from_secs(5), || legs.lock().unwrap().len() == 1).await, "the echo call never arrived");
    let player = Sipp::start("uac_play_pcap.xml", uas_addr, &[]);
    assert!(eventually(Duration::from_secs(5), || bridge.lock().unwrap().is_some()).await, "the second call never arrived");
    let (echo_leg, play_leg) = {
        let l = legs.lock().unwrap();
        (l[0].clone(), l[1].clone())
    };
    assert!(player.finish(Duration::from_secs(20)).await, "the playing SIPp call failed");
    // What the player sent has gone to the echo phone and back by now; read the figures
    // while the echo call is still up.
    let sent_by_sipp = pcap_packets(PCAP) as u64;
    let a = play_leg.stats();
    assert_eq!(a.packets_received, sent_by_sipp, "pacer received the pcap's stream whole: {a:?}");
    assert_eq!(a.packets_lost, 0);
    assert_eq!(a.codec, Some(pacer_media::Codec::Pcma));
    let b = echo_leg.stats();
    assert_eq!(b.codec, Some(pacer_media::Codec::Pcmu));
    // Everything we sent the echo phone (the forwarded stream plus silence) came back.
    assert!(b.packets_sent >= sent_by_sipp, "{b:?}");
    assert!(b.packets_sent.abs_diff(b.packets_received) <= 10, "packets missing on the echo path: {b:?}");
    assert_eq!(b.packets_lost, 0, "{b:?}");
    // The echoed A-law stream crossed back to the player's leg.
    assert!(a.packets_sent >= sent_by_sipp, "{a:?}");
    assert!(echo.finish(Duration::from_secs(20)).await, "the echo SIPp call failed");
    server.abort();
}
