//! `deploy/`: the Prometheus config and alert rules pass promtool, and every metric the
//! alerts and the Grafana dashboard use is one Pacer exports (documented in the README).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::in_ci;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str]) -> Option<(bool, String)> {
    match Command::new("promtool").args(args).current_dir(root().join("deploy")).output() {
        Ok(o) => Some((o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))),
        Err(e) => {
            assert!(!in_ci(), "promtool is required in CI (Debian package prometheus): {e}");
            eprintln!("skipped: promtool missing: {e}");
            None
        }
    }
}

#[test]
fn promtool_accepts_the_rules_and_the_scrape_config() {
    for args in [&["check", "rules", "alerts.yml"][..], &["check", "config", "prometheus.yml"][..]] {
        if let Some((ok, out)) = promtool(args) {
            assert!(ok, "promtool {args:?}:\n{out}");
        }
    }
}

/// `pacer_*` names in a text, with histogram/counter suffixes folded to the family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("pacer_") {
        let start = i + pos;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(text.len(), |e| start + e);
        if boundary {
            let name = &text[start..end];
            let family = name.strip_suffix("_bucket").or_else(|| name.strip_suffix("_sum")).or_else(|| name.strip_suffix("_count")).unwrap_or(name);
            out.insert(family.to_string());
        }
        i = end;
    }
    out
}

#[test]
fn dashboards_and_alerts_use_documented_metrics() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let documented = metric_names(&readme);
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana/pacer.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() > 10), "dashboard has panels");
    let alerts = std::fs::read_to_string(root().join("deploy/alerts.yml")).unwrap();
    for (what, text) in [("deploy/grafana/pacer.json", &dashboard), ("deploy/alerts.yml", &alerts)] {
        for m in metric_names(text) {
            // The process collector's families are standard; the README names them as a group.
            if m.starts_with("pacer_process_") {
                continue;
            }
            assert!(documented.contains(&m), "{what} uses {m}, which the README's metric tables do not list");
        }
    }
}
