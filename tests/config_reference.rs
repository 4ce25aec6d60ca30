//! The README's configuration reference must list exactly the keys the code knows.

use std::collections::BTreeSet;
use std::path::PathBuf;

use pacer_config::{Config, TrunkConfig};

fn reference_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- config-reference:start -->").expect("start marker");
    let end = readme.find("<!-- config-reference:end -->").expect("end marker");
    let block = &readme[start..end];
    let body = block.split_once("```toml\n").expect("toml fence").1;
    body.rsplit_once("```").expect("closing fence").0.to_string()
}

/// Dotted keys of the block, counting commented-out `# key = value` lines.
fn documented_keys(block: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in block.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            section = name.to_string();
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else {
            let l = line.strip_prefix("# ").unwrap_or(line);
            if let Some((k, _)) = l.split_once(" = ") {
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    keys.insert(if section.is_empty() { k.to_string() } else { format!("{section}.{k}") });
                }
            }
        }
    }
    keys
}

/// Every key of a config where every optional value is set.
fn code_keys() -> BTreeSet<String> {
    let mut cfg = Config::default();
    let p = || Some(PathBuf::from("/x"));
    (cfg.http.tls_cert, cfg.http.tls_key) = (p(), p());
    (cfg.sip.tls_cert, cfg.sip.tls_key) = (p(), p());
    let a = Some("127.0.0.1:1".parse().unwrap());
    (cfg.sip.listen_tcp, cfg.sip.listen_tls, cfg.sip.listen_ws) = (a, a, a);
    cfg.sip.public_address = Some("127.0.0.1".parse().unwrap());
    cfg.media.public_ip = Some("127.0.0.1".parse().unwrap());
    cfg.auth.signing_key = Some("k".into());
    cfg.auth.admin_token = Some("t".into());
    cfg.http.public_url = Some("http://x".into());
    cfg.dialer.node_name = Some("n".into());
    cfg.dialer.allowed_destinations = Some(vec!["+1".into()]);
    cfg.trunks.push(TrunkConfig { username: Some("u".into()), password: Some("p".into()), caller_id: Some("c".into()), ..Default::default() });
    let value = toml::Value::try_from(&cfg).unwrap();
    let mut keys = BTreeSet::new();
    for (k, v) in value.as_table().unwrap() {
        match v {
            toml::Value::Table(t) => keys.extend(t.keys().map(|f| format!("{k}.{f}"))),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) && !items.is_empty() => {
                keys.extend(items[0].as_table().unwrap().keys().map(|f| format!("{k}.{f}")))
            }
            _ => {
                keys.insert(k.clone());
            }
        }
    }
    keys
}

#[test]
fn readme_reference_lists_exactly_the_known_keys() {
    let documented = documented_keys(&reference_block());
    let known = code_keys();
    let missing: Vec<_> = known.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&known).collect();
    assert!(missing.is_empty() && stale.is_empty(), "README config reference: missing {missing:?}, stale {stale:?}");
}

#[test]
fn readme_reference_is_a_valid_config_with_the_defaults() {
    let cfg = Config::from_toml_str(&reference_block()).unwrap_or_else(|e| panic!("README reference does not load: {e}"));
    let mut expected = Config::default();
    expected.trunks = cfg.trunks.clone();
    assert_eq!(cfg, expected, "README shows a default that differs from the code");
    assert_eq!(cfg.trunks[0].port, TrunkConfig::default().port);
}

#[test]
fn production_example_is_valid_but_for_its_certificate_paths() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/pacer.example.toml")).unwrap();
    if let Err(e) = Config::from_toml_str(&text) {
        let others: Vec<_> = e.problems.iter().filter(|p| !p.reason.starts_with("cannot read /etc/pacer/tls/")).collect();
        assert!(others.is_empty(), "deploy/pacer.example.toml: {others:?}");
    }
}
