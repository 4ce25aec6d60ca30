//! Crash safety: `kill -9` of a dialling node with at least 50 calls in flight, then a
//! restart on the same database. Every lead the dead node had claimed is either settled
//! (its outcome written) or back in the hopper, none is held by two calls at once, no
//! attempt is left half written, and the restarted node starts with no agent logged in.
//! SIPp is the carrier (every call rings until our ring timeout cancels it: with no answer
//! seen yet the engine dials one call per agent, so 60 agents); `pacer demo`
//! is the node that dies (its simulated agents die with it); `pacer serve` restarts it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Pacer, http, in_ci};
use pacer_dialer::store::{Store, StoreOptions};

const SIPP: &str = "/usr/bin/sipp";

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Calls in flight now, summed over campaigns and stages, from the metrics text.
fn in_flight(metrics: &str) -> f64 {
    metrics.lines().filter(|l| l.starts_with("pacer_calls_in_flight{")).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

#[test]
fn kill_9_with_calls_in_flight_loses_no_lead_and_dials_none_twice() {
    if !Path::new(SIPP).exists() {
        assert!(!in_ci(), "{SIPP} is required in CI (Debian package sip-tester)");
        eprintln!("skipped: {SIPP} is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/carrier_ring.xml");
    let sipp = Command::new(SIPP)
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &free_port().to_string(), "-nostdin", "-timeout", "300s"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    let mut node = Command::new(common::PACER)
        .args(["demo", "--agents", "60", "--leads", "600", "--duration", "300", "--listen", "127.0.0.1:0"])
        .arg("--carrier")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .env("PACER_DIALER__NODE_NAME", "node-a")
        .env("PACER_AUTH__ADMIN_TOKEN", common::ADMIN_TOKEN)
        .env("PACER_MEDIA__RTP_PORT_MIN", "30000")
        .env("PACER_MEDIA__RTP_PORT_MAX", "33998")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pacer demo");
    let mut guard = KillOnDrop(vec![sipp.id(), node.id()]);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err = node.stderr.take().unwrap();
    std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut log = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| panic!("the demo did not start; log:\n{}", log.join("\n")));
        if let Some(at) = line.find("server at http://") {
            break line[at + "server at http://".len()..].split_whitespace().next().unwrap().parse().unwrap();
        }
        log.push(line);
    };
    // Wait for 50 calls in flight, then kill the node without warning.
    let mut seen = 0.0;
    while seen < 50.0 {
        assert!(Instant::now() < deadline, "never 50 calls in flight (at most {seen}); log:\n{}", log.join("\n"));
        std::thread::sleep(Duration::from_millis(200));
        let (s, _, m) = http(addr, "GET", "/metrics", None);
        assert_eq!(s, 200);
        seen = in_flight(&m);
    }
    let killed = Command::new("kill").arg("-KILL").arg(node.id().to_string()).status().unwrap();
    assert!(killed.success());
    let _ = node.wait();
    guard.0.retain(|p| *p != node.id());

    let url = format!("sqlite://{}", data.join("pacer.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let query = |sql: &'static str| {
        let url = url.clone();
        rt.block_on(async move {
            let store = Store::connect(&url, &StoreOptions::default()).await.unwrap();
            let rows = sqlx::query_as::<_, (i64, String, Option<String>, i64)>(sql).fetch_all(store.pool()).await.unwrap();
            store.close().await;
            rows
        })
    };
    let held = query("SELECT id, state, lease_owner, attempts FROM leads WHERE state IN ('hopper', 'dialling')");
    assert!(held.len() >= 50, "the dead node held {} leads, expected its calls in flight", held.len());
    assert!(held.iter().all(|l| l.2.as_deref() == Some("node-a")), "{held:?}");

    // The same node comes back (same name, same database), without its agents.
    std::fs::write(
        dir.path().join("pacer.toml"),
        format!("data_dir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten_udp = \"127.0.0.1:0\"\n[dialer]\nnode_name = \"node-a\"\n", data.display().to_string()),
    )
    .unwrap();
    let mut again = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let returned = again.wait_for_line("returned leases left by an earlier run", Duration::from_secs(60));
    let addr = again.http_addr();
    let plain: String = {
        // Without the terminal colours of the text log.
        let mut out = String::new();
        let mut chars = returned.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                chars.by_ref().find(|c| c.is_ascii_alphabetic());
            } else {
                out.push(c);
            }
        }
        out
    };
    assert!(plain.contains(&format!("leads={}", held.len())), "{plain}");
    let (s, _, body) = http(addr, "GET", "/api/v1/live/agents", None);
    assert_eq!(s, 200, "{body}");
    let floor: serde_json::Value = serde_json::from_str(&body).unwrap();
    let logged_in = floor["agents"].as_array().map_or(0, |a| a.iter().filter(|r| r["state"] != "logged_out").count());
    assert_eq!(logged_in, 0, "no agent session survives the crash: {body}");
    let status = again.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", again.log.join("\n"));

    // Every lead the dead node held is back where it came from (new or retry), none is held.
    let now_held = query("SELECT id, state, lease_owner, attempts FROM leads WHERE state IN ('hopper', 'dialling') OR lease_owner IS NOT NULL");
    assert!(now_held.is_empty(), "leads still held after the restart: {now_held:?}");
    let ids: Vec<i64> = held.iter().map(|l| l.0).collect();
    let back = query("SELECT id, state, lease_owner, attempts FROM leads");
    for l in back.iter().filter(|l| ids.contains(&l.0)) {
        assert!(matches!(l.1.as_str(), "new" | "retry" | "callback"), "lead {} is {} after the restart", l.0, l.1);
    }
    // Attempts: each one whole (an outcome and an end), none overlapping another of its lead.
    let attempts = rt.block_on(async {
        let store = Store::connect(&url, &StoreOptions::default()).await.unwrap();
        let rows = sqlx::query_as::<_, (i64, String, i64, Option<i64>)>("SELECT lead_id, outcome, started_at, ended_at FROM lead_attempts ORDER BY lead_id, started_at").fetch_all(store.pool()).await.unwrap();
        store.close().await;
        rows
    });
    for w in attempts.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(w[0].3.is_some_and(|end| end <= w[1].2), "lead {} was dialled twice at once: {w:?}", w[0].0);
        }
    }
    assert!(attempts.iter().all(|a| !a.1.is_empty() && a.3.is_some()), "{attempts:?}");
    let per_lead: std::collections::HashMap<i64, i64> = attempts.iter().fold(Default::default(), |mut m, a| {
        *m.entry(a.0).or_default() += 1;
        m
    });
    for l in &back {
        assert_eq!(per_lead.get(&l.0).copied().unwrap_or(0), l.3, "lead {}: its attempt count matches its written attempts", l.0);
    }
}
