//! Loading, overriding and validating configurations.

use pacer_config::{Config, LogFormat, Transport};

fn keys(err: pacer_config::ConfigError) -> Vec<String> {
    err.problems.into_iter().map(|p| p.key).collect()
}

#[test]
fn empty_file_gives_loopback_defaults() {
    let cfg = Config::from_toml_str("").unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.sip.listen_udp.to_string(), "127.0.0.1:5060");
    assert!(cfg.database_url().starts_with("sqlite://data/pacer.db"));
    assert!(cfg.media.rtp_port_min < cfg.media.rtp_port_max);
}

#[test]
fn partial_sections_keep_other_defaults() {
    let cfg = Config::from_toml_str(
        "[logging]\nformat = \"json\"\n[[trunks]]\nname = \"carrier\"\nhost = \"192.0.2.1\"\ntransport = \"tcp\"\n",
    )
    .unwrap();
    assert_eq!(cfg.logging.format, LogFormat::Json);
    assert_eq!(cfg.logging.level, "info");
    assert_eq!(cfg.trunks[0].transport, Transport::Tcp);
    assert_eq!(cfg.trunks[0].port, 5060);
}

#[test]
fn reports_every_problem_with_its_key() {
    let err = Config::from_toml_str(
        r#"
[http]
listen = "127.0.0.1:99999"
[media]
rtp_port_min = 30000
rtp_port_max = 20000
[dialer]
time_zone = "Mars/Olympus"
"#,
    )
    .unwrap_err();
    let keys = keys(err);
    assert!(keys.iter().any(|k| k == "http.listen"), "{keys:?}");
    assert!(keys.iter().any(|k| k == "media.rtp_port_min"), "{keys:?}");
    assert!(keys.iter().any(|k| k == "dialer.time_zone"), "{keys:?}");
}

#[test]
fn unknown_keys_and_sections_are_refused() {
    let err = Config::from_toml_str("[http]\nlisten_addr = \"x\"\n[htp]\nx = 1\n").unwrap_err();
    let keys = keys(err);
    assert!(keys.iter().any(|k| k.starts_with("http")), "{keys:?}");
    assert!(keys.iter().any(|k| k == "htp"), "{keys:?}");
}

#[test]
fn unreadable_certificate_and_bad_trunks() {
    let err = Config::from_toml_str(
        r#"
[http]
tls_cert = "/nonexistent/cert.pem"
tls_key = "/nonexistent/key.pem"
[[trunks]]
name = "a"
host = ""
port = 0
inbound_from = ["10.0.0.0/33"]
[[trunks]]
name = "a"
host = "h"
"#,
    )
    .unwrap_err();
    let keys = keys(err);
    for k in ["http.tls_cert", "http.tls_key", "trunks[0].host", "trunks[0].port", "trunks[0].inbound_from[0]", "trunks[1].name"] {
        assert!(keys.iter().any(|x| x == k), "missing {k} in {keys:?}");
    }
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pacer.toml");
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9000\"\n[logging]\nlevel = \"debug\"\n").unwrap();
    // SAFETY: this is the only test in this binary that touches the environment.
    unsafe { std::env::set_var("PACER_HTTP__LISTEN", "127.0.0.1:9100") };
    let cfg = Config::load(Some(&file));
    unsafe { std::env::remove_var("PACER_HTTP__LISTEN") };
    let cfg = cfg.unwrap();
    assert_eq!(cfg.http.listen.port(), 9100);
    assert_eq!(cfg.logging.level, "debug");
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = Config::load(Some(std::path::Path::new("/nonexistent/pacer.toml"))).unwrap_err();
    assert!(err.to_string().contains("cannot read file"), "{err}");
}

#[test]
fn syntax_error_names_the_file_position() {
    let err = Config::from_toml_str("[http\nlisten = 1").unwrap_err();
    assert_eq!(err.problems.len(), 1);
}

#[test]
fn session_timer_keys_are_checked() {
    let err = Config::from_toml_str("[sip]\nmin_session_expires_s = 30\nsession_expires_s = 60\n").unwrap_err();
    let found = keys(err);
    assert!(found.iter().any(|k| k == "sip.min_session_expires_s"), "{found:?}");
    let err = Config::from_toml_str("[sip]\nsession_expires_s = 100\nmin_session_expires_s = 120\n").unwrap_err();
    assert_eq!(keys(err), ["sip.session_expires_s"]);
    let ca = tempfile::NamedTempFile::new().unwrap();
    let toml = format!("[sip]\nsession_expires_s = 0\n[[trunks]]\nname = \"t\"\nhost = \"192.0.2.1\"\ntransport = \"tls\"\ntls_ca = {:?}\n", ca.path());
    let cfg = Config::from_toml_str(&toml).unwrap();
    assert_eq!(cfg.sip.session_expires_s, 0);
    assert_eq!(cfg.trunks[0].tls_ca, ca.path());
    let err = Config::from_toml_str("[[trunks]]\nname = \"t\"\nhost = \"192.0.2.1\"\ntransport = \"tls\"\ntls_ca = \"/nonexistent/ca.pem\"\n").unwrap_err();
    assert_eq!(keys(err), ["trunks[0].tls_ca"]);
}

#[test]
fn allowed_destinations_are_e164_prefixes() {
    let cfg = Config::from_toml_str("[dialer]\nallowed_destinations = [\"+1\", \"+44\"]\nallow_premium = true\n").unwrap();
    assert_eq!(cfg.dialer.allowed_destinations.as_deref(), Some(&["+1".to_string(), "+44".to_string()][..]));
    assert!(cfg.dialer.allow_premium);
    let err = Config::from_toml_str("[dialer]\nallowed_destinations = [\"+1\", \"+44\", \"44\", \"+0\", \"+1234567890123456\"]\n").unwrap_err();
    let p: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(keys(err), ["dialer.allowed_destinations[2]", "dialer.allowed_destinations[3]", "dialer.allowed_destinations[4]"]);
    assert!(p[0].contains("\"44\" is not an E.164 prefix"), "{p:?}");
    let err = Config::from_toml_str("[dialer]\nallowed_destinations = []\n").unwrap_err();
    assert_eq!(keys(err), ["dialer.allowed_destinations"]);
}
