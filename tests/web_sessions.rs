//! The pages' web sessions: an agent logs in over HTTP (`POST /login/agent`) and the
//! HttpOnly cookie then opens the agent's CTI socket without a login message; a supervisor
//! does the same with `POST /login` and the supervisor socket. A cookie sent from another
//! site's page is not honoured, an agent's cookie opens no API route, and logging out
//! ends the session.

mod common;

use std::time::Duration;

use common::{Pacer, Ws, http, http_with};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The cookie (`name=value`) a response sets.
fn set_cookie(head: &str, name: &str) -> String {
    let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:") && l.contains(name)).unwrap_or_else(|| panic!("no {name} cookie in\n{head}"));
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"), "{line}");
    line.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_string()
}

/// Opens `path` with these headers; the first message within 2 s, or None.
async fn first_message(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (Ws, Option<Value>) {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first = match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(serde_json::from_str(&t).unwrap()),
        _ => None,
    };
    (ws, first)
}

#[test]
fn page_sessions_open_the_cti_sockets_and_end_on_logout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pacer.toml"), "[http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten_udp = \"127.0.0.1:0\"\n[media]\nrtp_port_min = 37000\nrtp_port_max = 37998\n").unwrap();
    let mut pacer = Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = pacer.http_addr();
    let (s, _, b) = http(addr, "POST", "/api/v1/agents", Some(&json!({"username": "ann", "name": "Ann", "password": "ann-secret-1"}).to_string()));
    assert!(s < 300, "{b}");
    for (name, role) in [("sue", "supervisor"), ("max", "agent")] {
        let (s, _, b) = http(addr, "POST", "/api/v1/users", Some(&json!({"username": name, "password": format!("{name}-password"), "role": role}).to_string()));
        assert!(s < 300, "{b}");
    }

    // Bad logins: a clear refusal, no cookie.
    let (s, head, body) = http_with(addr, "POST", "/login/agent", Some(r#"{"username":"ann","password":"wrong"}"#), &[]);
    assert_eq!(s, 401, "{body}");
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    let (s, _, body) = http_with(addr, "POST", "/login/agent", Some("not json"), &[]);
    assert_eq!(s, 422, "{body}");
    let (s, _, _) = http_with(addr, "GET", "/login/agent", None, &[]);
    assert_eq!(s, 401, "no session yet");

    let (s, head, body) = http_with(addr, "POST", "/login/agent", Some(r#"{"username":"ann","password":"ann-secret-1"}"#), &[]);
    assert_eq!(s, 200, "{body}");
    let agent_cookie = set_cookie(&head, "pacer_agent_session");
    let (s, _, body) = http_with(addr, "GET", "/login/agent", None, &[("Cookie", &agent_cookie)]);
    assert_eq!((s, body.contains("\"ann\"")), (200, true), "{body}");
    // An agent's session is the desktop's only: no API route opens with it.
    let (s, _, _) = http_with(addr, "GET", "/api/v1/me", None, &[("Cookie", &agent_cookie)]);
    assert_eq!(s, 401);

    let (s, head, body) = http_with(addr, "POST", "/login", Some(r#"{"username":"sue","password":"sue-password"}"#), &[]);
    assert_eq!(s, 200, "{body}");
    let sup_cookie = set_cookie(&head, "pacer_session");
    let (s, head, _) = http_with(addr, "POST", "/login", Some(r#"{"username":"max","password":"max-password"}"#), &[]);
    assert_eq!(s, 200);
    let low_cookie = set_cookie(&head, "pacer_session");

    let origin = format!("http://{addr}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The cookie logs the agent's socket in at once.
        let (_ws, first) = first_message(addr, "/cti/agent", &[("Cookie", &agent_cookie), ("Origin", &origin)]).await;
        let first = first.expect("a logged_in message without a login");
        assert_eq!((first["type"].as_str(), first["username"].as_str()), (Some("logged_in"), Some("ann")), "{first}");
        // The same cookie from another site's page: not honoured (the socket waits for a login).
        let (_ws, first) = first_message(addr, "/cti/agent", &[("Cookie", &agent_cookie), ("Origin", "http://evil.example")]).await;
        assert_eq!(first, None, "a cross-site page rode on the agent's session");
        // A supervisor's session opens the floor; a lower role's is refused and said why.
        let (_ws, first) = first_message(addr, "/cti/supervisor", &[("Cookie", &sup_cookie), ("Origin", &origin)]).await;
        assert_eq!(first.expect("supervisor_ready")["type"], "supervisor_ready");
        let (_ws, first) = first_message(addr, "/cti/supervisor", &[("Cookie", &low_cookie)]).await;
        let first = first.expect("a refusal");
        assert_eq!(first["code"], "login_failed", "{first}");
        assert!(first["message"].as_str().unwrap().contains("not a supervisor"), "{first}");
    });

    // Logging out ends the session: the cookie opens nothing any more.
    let (s, head, _) = http_with(addr, "POST", "/logout/agent", None, &[("Cookie", &agent_cookie)]);
    assert_eq!(s, 204);
    assert!(head.contains("Max-Age=0"), "{head}");
    let (s, _, _) = http_with(addr, "GET", "/login/agent", None, &[("Cookie", &agent_cookie)]);
    assert_eq!(s, 401);
    rt.block_on(async {
        let (_ws, first) = first_message(addr, "/cti/agent", &[("Cookie", &agent_cookie)]).await;
        assert_eq!(first, None, "an ended session still opened the socket");
    });
    // Each login is in the audit log.
    let (_, _, body) = http(addr, "GET", "/api/v1/audit", None);
    assert!(body.contains("agent:ann") && body.contains("\"login\"") && body.contains("\"login_failed\""), "{body}");
    assert!(pacer.terminate(Duration::from_secs(20)).success(), "{}", pacer.log.join("\n"));
}
