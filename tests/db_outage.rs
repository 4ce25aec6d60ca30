//! The database goes away in the middle of calls (PostgreSQL behind a TCP proxy the test
//! cuts): the calls go on and end normally, their outcomes wait in the local spool and are
//! written when the database is back — also across a `kill -9` of the node during the
//! outage. SIPp is the carrier; the agent is a CTI WebSocket desktop with an RTP leg.

mod common;

use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Pacer, http, in_ci};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SIPP: &str = "/usr/bin/sipp";
const PG: &str = "127.0.0.1:5432";

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A TCP proxy to PostgreSQL that can be cut: every connection is dropped and new ones
/// are refused until it is restored.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(PG) else { continue };
                o.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_of(ws: &mut Ws, kind: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.unwrap_or_else(|_| panic!("no {kind} message in time"));
        if let Some(Ok(Message::Text(t))) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(v["type"], "error", "server error while waiting for {kind}: {v}");
            if v["type"] == kind {
                return v;
            }
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The agent logs in, connects a leg, dials `number` by hand and waits for the answer.
async fn agent_dials(addr: std::net::SocketAddr, leg: &pacer_media::Endpoint, number: &str) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/cti/agent")).await.unwrap();
    send(&mut ws, json!({"type":"login","username":"ann","password":"ann-secret-1"})).await;
    next_of(&mut ws, "logged_in", Duration::from_secs(20)).await;
    send(&mut ws, json!({"type":"media_offer","sdp":leg.local_offer()})).await;
    let answer = next_of(&mut ws, "media_answer", Duration::from_secs(20)).await;
    leg.accept_answer(answer["sdp"].as_str().unwrap()).unwrap();
    send(&mut ws, json!({"type":"manual_dial","number":number})).await;
    let pop = next_of(&mut ws, "call", Duration::from_secs(20)).await;
    (ws, pop["call_id"].as_str().unwrap().to_string())
}

fn spooled(data: &Path) -> usize {
    std::fs::read_dir(data.join("spool")).map_or(0, |d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn calls_outlive_a_30_second_database_outage_and_lose_no_outcome() {
    if !Path::new(SIPP).exists() {
        assert!(!in_ci(), "{SIPP} is required in CI (Debian package sip-tester)");
        eprintln!("skipped: {SIPP} is missing");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = format!("pacer_outage_{}_{}", std::process::id(), pacer_dialer::store::now_ms());
    let admin_url = format!("postgres://postgres@{PG}/test");
    let created = rt.block_on(async {
        let store = pacer_dialer::store::Store::connect(&admin_url, &Default::default()).await.ok()?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(store.pool()).await.ok()?;
        store.close().await;
        Some(())
    });
    if created.is_none() {
        assert!(!in_ci(), "PostgreSQL at {PG} is required in CI");
        eprintln!("skipped: PostgreSQL at {PG} is not reachable");
        return;
    }
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tone: Vec<u8> = (0..80_000).map(|i| pacer_media::Codec::Pcmu.encode(((i as f64 * 0.47).sin() * 8000.0) as i16)).collect();
    std::fs::write(dir.path().join("tone.ulaw"), tone).unwrap();
    let carrier_port = free_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/carrier_tone_bye.xml");
    // Each answered call lasts 6 s, then the customer hangs up.
    let mut sipp = Command::new(SIPP)
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", &carrier_port.to_string(), "-mp", &free_port().to_string(), "-d", "6000"])
        .args(["-m", "2", "-nostdin", "-timeout", "180s", "-timeout_error"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cfg = format!(
        "data_dir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten_udp = \"127.0.0.1:{}\"\n[media]\nrtp_port_min = 34000\nrtp_port_max = 34998\n\
         [database]\nurl = \"postgres://postgres@127.0.0.1:{}/{db}\"\nacquire_timeout_s = 2\n\
         [dialer]\nnode_name = \"node-b\"\nlegal_window_start = \"00:00\"\nlegal_window_end = \"24:00\"\n\
         [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {carrier_port}\noptions_interval_s = 0\n",
        data.display().to_string(),
        free_port(),
        proxy.port
    );
    std::fs::write(dir.path().join("pacer.toml"), cfg).unwrap();
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = pacer.http_addr();
    let post = |addr, path: &str, body: Value| {
        let (s, _, b) = http(addr, "POST", path, Some(&body.to_string()));
        assert!(s < 300, "POST {path}: {s} {b}");
        serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)
    };
    post(addr, "/api/v1/agents", json!({"username": "ann", "name": "Ann", "password": "ann-secret-1"}));
    let id = post(addr, "/api/v1/campaigns", json!({"name": "Outage", "dial_mode": "preview", "settings": {"trunks": ["carrier"], "wrap_up_s": 0}}))["id"].as_i64().unwrap();
    post(addr, &format!("/api/v1/campaigns/{id}/start"), json!({}));
    let media = pacer_media::MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 35000, rtp_port_max: 35998, ..Default::default() }).unwrap();

    // 1. A 30 s outage while the node runs: the call ends, the disposition waits, and is
    //    written when the database is back.
    rt.block_on(async {
        let leg = media.rtp_endpoint().await.unwrap();
        let (mut ws, call_id) = agent_dials(addr, &leg, "+12125550161").await;
        proxy.cut();
        let cut_at = Instant::now();
        next_of(&mut ws, "call_ended", Duration::from_secs(20)).await;
        send(&mut ws, json!({"type":"disposition","call_id":call_id,"code":"answered","notes":"during the outage"})).await;
        let d = data.clone();
        tokio::task::spawn_blocking(move || wait_until("the outcome is spooled", Duration::from_secs(20), || spooled(&d) == 1)).await.unwrap();
        let (s, _, _) = tokio::task::spawn_blocking(move || http(addr, "GET", "/readyz", None)).await.unwrap();
        assert_eq!(s, 503, "not ready while the database is away");
        tokio::time::sleep(Duration::from_secs(30).saturating_sub(cut_at.elapsed())).await;
        proxy.restore();
        next_of(&mut ws, "disposition_saved", Duration::from_secs(30)).await;
        assert_eq!(spooled(&data), 0, "written, and gone from the spool");
        leg.close();
    });

    // 2. The node dies during an outage with an outcome spooled; the next start writes it.
    rt.block_on(async {
        let leg = media.rtp_endpoint().await.unwrap();
        let (mut ws, call_id) = agent_dials(addr, &leg, "+12125550162").await;
        proxy.cut();
        next_of(&mut ws, "call_ended", Duration::from_secs(20)).await;
        send(&mut ws, json!({"type":"disposition","call_id":call_id,"code":"answered","notes":"spooled, then killed"})).await;
        let d = data.clone();
        tokio::task::spawn_blocking(move || wait_until("the outcome is spooled", Duration::from_secs(20), || spooled(&d) == 1)).await.unwrap();
        leg.close();
    });
    let _ = Command::new("kill").arg("-KILL").arg(pacer.child.id().to_string()).status();
    let _ = pacer.child.wait();
    proxy.restore();
    let mut again = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = again.http_addr();
    assert_eq!(spooled(&data), 0, "the restart wrote the spooled outcome before serving");
    let (s, _, body) = http(addr, "GET", &format!("/api/v1/reports/cdr?campaign_id={id}"), None);
    assert_eq!(s, 200, "{body}");
    let cdrs: Value = serde_json::from_str(&body).unwrap();
    let rows = cdrs.as_array().or_else(|| cdrs["items"].as_array()).expect("CDR rows").clone();
    assert_eq!(rows.len(), 2, "both calls, each once: {body}");
    for phone in ["+12125550161", "+12125550162"] {
        let r = rows.iter().find(|r| r["phone"] == phone).unwrap_or_else(|| panic!("no CDR for {phone}: {body}"));
        assert_eq!(r["disposition"], "answered", "{r}");
        assert!(r["talk_s"].as_f64().unwrap() > 4.0, "the call went on during the outage: {r}");
    }
    assert!(again.terminate(Duration::from_secs(20)).success(), "{}", again.log.join("\n"));
    let status = sipp.wait().unwrap();
    assert!(status.success(), "SIPp saw both calls end normally");
    rt.block_on(async {
        let store = pacer_dialer::store::Store::connect(&admin_url, &Default::default()).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))).execute(store.pool()).await;
        store.close().await;
    });
}
