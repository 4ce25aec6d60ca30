//! `pacer serve` as a process: health, readiness, metrics accepted by promtool, shutdown.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Pacer, http, in_ci};

fn promtool_check(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(!in_ci(), "promtool is required in CI (Debian package prometheus): {e}");
            eprintln!("note: promtool missing, metrics lint skipped: {e}");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Some((out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
}

#[test]
fn serve_without_config_is_healthy_ready_and_exports_valid_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // No config file: defaults, except an ephemeral port so tests can run side by side.
    let mut pacer = Pacer::start(dir.path(), &["serve"], &[("PACER_HTTP__LISTEN", "127.0.0.1:0")]);
    let addr = pacer.http_addr();

    let (status, _, body) = http(addr, "GET", "/healthz", None);
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let (status, _, body) = http(addr, "GET", "/readyz", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\":true"), "{body}");

    let (status, _, body) = http(addr, "GET", "/no/such/route", None);
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");

    let (status, head, metrics) = http(addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    for name in ["pacer_build_info{", "pacer_http_requests_total{", "pacer_http_request_duration_seconds_bucket{", "process_resident_memory_bytes"] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    assert!(metrics.contains(r#"route="/healthz",status="200""#), "{metrics}");
    assert!(metrics.contains(r#"route="unmatched",status="404""#), "{metrics}");
    if let Some((ok, out)) = promtool_check(&metrics) {
        assert!(ok, "promtool rejected /metrics:\n{out}\n{metrics}");
    }

    let status = pacer.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit {status:?}; log:\n{}", pacer.log.join("\n"));
    assert!(pacer.log.iter().any(|l| l.contains("stopped")), "{}", pacer.log.join("\n"));
    assert!(dir.path().join("data/pacer.db").exists(), "the default SQLite file lives in ./data");
}

#[test]
fn json_logs_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut pacer = Pacer::start(dir.path(), &["serve"], &[("PACER_HTTP__LISTEN", "127.0.0.1:0"), ("PACER_LOGGING__FORMAT", "json")]);
    // The SIP gateway says "listening" too; the HTTP line carries the URL.
    let line = loop {
        let line = pacer.wait_for_line("listening", Duration::from_secs(60));
        if line.contains("http://") {
            break line;
        }
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["level"], "INFO");
    assert!(v["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    assert!(pacer.terminate(Duration::from_secs(15)).success());
}

#[test]
fn readyz_fails_while_the_database_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // A PostgreSQL URL nobody listens on: serve refuses to start and says why.
    let out = Command::new(common::PACER)
        .arg("serve")
        .current_dir(dir.path())
        .env("PACER_HTTP__LISTEN", "127.0.0.1:0")
        .env("PACER_DATABASE__URL", "postgres://postgres@127.0.0.1:1/none")
        .env("PACER_DATABASE__ACQUIRE_TIMEOUT_S", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening the database"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn https_with_a_dev_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::PACER).args(["cert", "dev", "--dir", "certs"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(lines.contains("tls_cert") && lines.contains("dev-cert.pem"), "{lines}");
    let again = Command::new(common::PACER).args(["cert", "dev", "--dir", "certs"]).current_dir(dir.path()).output().unwrap();
    assert!(!again.status.success(), "never overwrites a certificate");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("certs/dev-key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    let cfg = format!("[http]\nlisten = \"127.0.0.1:0\"\n{}\n[sip]\nlisten_udp = \"127.0.0.1:0\"\n", lines.trim_start_matches("[http]\n"));
    std::fs::write(dir.path().join("pacer.toml"), cfg).unwrap();
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let line = pacer.wait_for_line("https://", Duration::from_secs(60));
    let addr: std::net::SocketAddr = line.split("https://").nth(1).unwrap().split(|c: char| c.is_whitespace() || c == '"').next().unwrap().parse().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let pem = std::fs::read(dir.path().join("certs/dev-cert.pem")).unwrap();
    let body = rt.block_on(async move {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
        // A client that never finishes its handshake does not hold up the next one.
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector.connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        tls.write_all(format!("GET /api/v1/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", common::ADMIN_TOKEN).as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"admin\""), "{body}");
    // Plain HTTP on the HTTPS port gets no answer.
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut plain, &mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("200"), "plain HTTP must not be served");
    assert!(pacer.terminate(Duration::from_secs(20)).success());
}
