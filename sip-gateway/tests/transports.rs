//! TCP and TLS trunks, and stations on TCP and WebSocket connections: requests to a station
//! go back over the connection it registered on, and its binding ends with that connection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::ua::{self, StreamUa, Ua, WsUa};
use common::*;
use pacer_config::{SipConfig, Transport};
use pacer_sip::{CallEvent, HangupBy, OriginateRequest, Outcome, SipGateway};

const T: Duration = Duration::from_secs(10);

fn listening() -> SipConfig {
    SipConfig { listen_tcp: Some("127.0.0.1:0".parse().unwrap()), listen_ws: Some("127.0.0.1:0".parse().unwrap()), ..sip_config() }
}

fn request(trunk: &str) -> OriginateRequest {
    OriginateRequest { trunk: trunk.into(), number: "5551234".into(), caller_id: None, sdp_offer: OFFER.to_vec(), ring_timeout: Duration::from_secs(5) }
}

#[tokio::test]
async fn tcp_trunk_call_with_sipp() {
    if !sipp_available() {
        return;
    }
    let sipp = Sipp::start("uas_answer.xml", 1, &["-t", "t1"]);
    let mut t = trunk("tcp", sipp.port);
    t.transport = Transport::Tcp;
    let gw = gateway(vec![t]).await;
    let mut call = gw.originate(request("tcp")).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    sipp.assert_passed(T).await;
    assert!(metrics_text(&gw).contains("pacer_sip_calls_total{result=\"answered\",trunk=\"tcp\"} 1"));
}

#[tokio::test]
async fn refused_tcp_connection_fails_over_at_once() {
    if !sipp_available() {
        return;
    }
    let good = Sipp::start("uas_answer.xml", 1, &[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut a = trunk("a", closed);
    (a.transport, a.failover) = (Transport::Tcp, vec!["b".into()]);
    let gw = gateway(vec![a, trunk("b", good.port)]).await;
    let started = tokio::time::Instant::now();
    let mut call = gw.originate(request("a")).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    let trunks: Vec<_> = seen.iter().filter_map(|e| if let CallEvent::Dialing { trunk, .. } = e { Some(trunk.as_str()) } else { None }).collect();
    assert_eq!(trunks, ["b"], "the refused trunk never dialled: {seen:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "failover did not wait for Timer B");
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    good.assert_passed(T).await;
}

/// A carrier behind TLS with a certificate from a CA we trust through `tls_ca`.
async fn tls_carrier(dir: &std::path::Path) -> (u16, std::path::PathBuf, tokio::task::JoinHandle<Vec<String>>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = tokio::time::timeout(T, listener.accept()).await.expect("the gateway connects").unwrap();
        let Ok(tls) = acceptor.accept(tcp).await else {
            return vec!["handshake refused".to_string()];
        };
        let mut carrier = StreamUa::new(tls, "TLS");
        let mut seen = Vec::new();
        let invite = carrier.recv().await;
        seen.push(ua::start_line(&invite).to_string());
        let contact = "<sip:carrier@127.0.0.1;transport=tls>".to_string();
        carrier.send(&ua::response(&invite, "200 OK", "tlscarrier", &[format!("Contact: {contact}")], ua::STATION_SDP)).await;
        for _ in 0..2 {
            let m = carrier.recv().await;
            seen.push(ua::start_line(&m).to_string());
            if m.starts_with("BYE") {
                carrier.send(&ua::response(&m, "200 OK", "tlscarrier", &[], "")).await;
            }
        }
        seen
    });
    (port, ca_path, task)
}

#[tokio::test]
async fn tls_trunk_call_verifies_the_carrier_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, carrier) = tls_carrier(dir.path()).await;
    let mut t = trunk("tls", port);
    (t.transport, t.tls_ca) = (Transport::Tls, ca);
    let gw = gateway(vec![t]).await;
    let mut call = gw.originate(request("tls")).unwrap();
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    call.hangup();
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
    let seen = tokio::time::timeout(T, carrier).await.unwrap().unwrap();
    assert!(seen[0].starts_with("INVITE sip:5551234@127.0.0.1:") && seen[0].to_lowercase().contains(";transport=tls"), "{seen:?}");
    assert!(seen[1].starts_with("ACK ") && seen[2].starts_with("BYE "), "{seen:?}");
}

#[tokio::test]
async fn tls_trunk_with_an_untrusted_certificate_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _ca, carrier) = tls_carrier(dir.path()).await;
    // Trust some other CA: the handshake must fail and the call must not be sent.
    let other = rcgen::generate_simple_self_signed(vec!["other".to_string()]).unwrap();
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let mut t = trunk("tls", port);
    (t.transport, t.tls_ca) = (Transport::Tls, wrong);
    let gw = gateway(vec![t]).await;
    let mut call = gw.originate(request("tls")).unwrap();
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Failed { .. })).await;
    assert!(matches!(seen.last().unwrap(), CallEvent::Failed { status: None, outcome: Outcome::NetworkFailure, .. }), "{seen:?}");
    let seen = tokio::time::timeout(T, carrier).await.unwrap().unwrap();
    assert_eq!(seen, ["handshake refused"], "the gateway refused the certificate: nothing was sent in clear");
}

#[tokio::test]
async fn tls_trunk_with_an_unreadable_ca_file_is_refused_at_start() {
    let mut t = trunk("tls", 5061);
    (t.transport, t.tls_ca) = (Transport::Tls, "/nonexistent/ca.pem".into());
    let err = SipGateway::start(&sip_config(), &[t]).await.err().expect("start fails");
    assert!(err.to_string().contains("trunk `tls`") && err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

/// Rings a station registered on `ua` and answers on it; the gateway hangs up.
async fn ring_answer_and_hang_up(gw: &SipGateway, station: &mut impl Ua, user: &str) {
    let mut call = gw.call_station(user, OFFER.to_vec(), Duration::from_secs(5)).unwrap();
    let invite = station.recv().await;
    assert!(invite.starts_with("INVITE "), "{invite}");
    assert!(ua::body(&invite).contains("m=audio 40000"), "the offer reaches the station: {invite}");
    station.send(&ua::response(&invite, "180 Ringing", "st1", &[], "")).await;
    station.send(&ua::response(&invite, "200 OK", "st1", &[format!("Contact: <sip:{user}@station.invalid;transport={}>", station.via_transport().to_lowercase())], ua::STATION_SDP)).await;
    let seen = until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    assert!(matches!(&seen[0], CallEvent::Dialing { trunk, .. } if trunk == &format!("station:{user}")), "{seen:?}");
    assert!(seen.contains(&CallEvent::Ringing), "{seen:?}");
    let ack = station.recv().await;
    assert!(ack.starts_with("ACK "), "{ack}");
    call.hangup();
    let bye = station.recv().await;
    assert!(bye.starts_with("BYE "), "{bye}");
    station.send(&ua::response(&bye, "200 OK", "st1", &[], "")).await;
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Local });
}

#[tokio::test]
async fn station_on_websocket_registers_and_is_rung_over_its_connection() {
    let gw = gateway_with(listening(), vec![]).await;
    gw.set_station_password("agent7", "pw7");
    let (mut station, proto) = WsUa::connect(gw.ws_addr().unwrap()).await;
    assert_eq!(proto.as_deref(), Some("sip"), "the server selects the sip subprotocol (RFC 7118)");
    let ok = ua::register(&mut station, "agent7", "pw7", "df7jal23ls0d.invalid", 300).await;
    assert!(ua::start_line(&ok).starts_with("SIP/2.0 200"), "{ok}");
    let stations = gw.stations();
    assert_eq!((stations.len(), stations[0].user.as_str(), stations[0].transport), (1, "agent7", "ws"), "{stations:?}");
    assert!(metrics_text(&gw).contains("pacer_sip_registrations{transport=\"ws\"} 1"));
    ring_answer_and_hang_up(&gw, &mut station, "agent7").await;

    // The far end (the agent's phone) ends the next call first.
    let mut call = gw.call_station("agent7", OFFER.to_vec(), Duration::from_secs(5)).unwrap();
    let invite = station.recv().await;
    station.send(&ua::response(&invite, "200 OK", "st2", &["Contact: <sip:agent7@df7jal23ls0d.invalid;transport=ws>".into()], ua::STATION_SDP)).await;
    until(&mut call, T, |e| matches!(e, CallEvent::Answered(_))).await;
    let _ack = station.recv().await;
    let bye = ua::in_dialog_request(&station, &invite, "BYE", 1, "st2", "df7jal23ls0d.invalid");
    station.send(&bye).await;
    let ok = station.recv().await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(next(&mut call, T).await, CallEvent::HungUp { by: HangupBy::Remote });

    // Closing the WebSocket takes the binding with it: requests could not reach it.
    drop(station);
    assert!(eventually(T, || gw.stations().is_empty()).await, "binding dropped with its connection");
    assert!(matches!(gw.call_station("agent7", OFFER.to_vec(), Duration::from_secs(1)), Err(pacer_sip::GatewayError::StationNotRegistered(_))));
}

#[tokio::test]
async fn websocket_without_the_sip_subprotocol_is_refused() {
    let gw = gateway_with(listening(), vec![]).await;
    let url = format!("ws://{}/", gw.ws_addr().unwrap());
    let err = tokio_tungstenite::connect_async(url).await.err().expect("the handshake is refused");
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn station_on_tcp_is_rung_over_its_connection_and_can_unregister() {
    let gw = gateway_with(listening(), vec![]).await;
    gw.set_station_password("agent8", "pw8");
    let tcp = tokio::net::TcpStream::connect(gw.tcp_addr().unwrap()).await.unwrap();
    let local = tcp.local_addr().unwrap().to_string();
    let mut station = StreamUa::new(tcp, "TCP");
    let ok = ua::register(&mut station, "agent8", "pw8", &local, 300).await;
    assert!(ua::start_line(&ok).starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(gw.stations()[0].transport, "tcp");
    ring_answer_and_hang_up(&gw, &mut station, "agent8").await;
    // Expires: 0 unregisters (it needs credentials like any REGISTER).
    let www = {
        station.send(&ua::register_request(&station, "agent8", &local, 3, 0, None)).await;
        let c = station.recv().await;
        ua::header(&c, "WWW-Authenticate").unwrap()
    };
    let auth = ua::digest(&www, "agent8", "pw8", "REGISTER", "sip:pacer.local");
    station.send(&ua::register_request(&station, "agent8", &local, 4, 0, Some(&auth))).await;
    let ok = station.recv().await;
    assert!(ua::start_line(&ok).starts_with("SIP/2.0 200"), "{ok}");
    assert!(gw.stations().is_empty());
}

#[tokio::test]
async fn sipp_registers_over_tcp_and_the_binding_ends_with_its_connection() {
    if !sipp_available() {
        return;
    }
    let gw = gateway_with(listening(), vec![]).await;
    gw.set_station_password("agent1", "pw1");
    let target = gw.tcp_addr().unwrap().to_string();
    let sipp = Sipp::start("uac_register.xml", 1, &["-t", "t1", "-s", "agent1", "-au", "agent1", "-ap", "pw1", &target]);
    sipp.assert_passed(T).await;
    assert!(metrics_text(&gw).contains("pacer_sip_responses_total{direction=\"out\",method=\"REGISTER\",status=\"200\"} 1"));
    assert!(eventually(T, || gw.stations().is_empty()).await, "SIPp closed its connection");
}

#[tokio::test]
async fn station_on_tls_registers_and_is_rung_over_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("sip.pem"), dir.path().join("sip.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let sip = SipConfig { listen_tls: Some("127.0.0.1:0".parse().unwrap()), tls_cert: Some(cert_path), tls_key: Some(key_path), ..sip_config() };
    let gw = gateway_with(sip, vec![]).await;
    gw.set_station_password("agent6", "pw6");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(gw.tls_addr().unwrap()).await.unwrap();
    let local = tcp.local_addr().unwrap().to_string();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS handshake with the gateway");
    let mut station = StreamUa::new(tls, "TLS");
    let ok = ua::register(&mut station, "agent6", "pw6", &local, 300).await;
    assert!(ua::start_line(&ok).starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(gw.stations()[0].transport, "tls");
    ring_answer_and_hang_up(&gw, &mut station, "agent6").await;
}
