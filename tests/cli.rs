//! The command line as a user meets it.

mod common;

use std::process::Command;

use common::PACER;

#[test]
fn check_config_lists_every_mistake_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pacer.toml");
    std::fs::write(
        &file,
        r#"
[http]
listen = "127.0.0.1:80800"

[media]
rtp_port_min = 30000
rtp_port_max = 20000

[dialer]
time_zone = "America/Atlantis"
"#,
    )
    .unwrap();
    let out = Command::new(PACER).arg("check-config").arg(&file).env_remove("PACER_HTTP__LISTEN").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["http.listen:", "media.rtp_port_min:", "dialer.time_zone:"] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(err.contains("3 problem(s)"), "{err}");
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pacer.toml");
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:8081\"\n[[trunks]]\nname = \"carrier\"\nhost = \"sip.example.net\"\n").unwrap();
    let out = Command::new(PACER).arg("check-config").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_config_on_a_missing_file_fails_clearly() {
    let out = Command::new(PACER).args(["check-config", "/nonexistent/pacer.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file"));
}

#[test]
fn demo_refuses_bad_arguments_before_starting_anything() {
    for (args, says) in [(&["demo", "--duration", "3"][..], "--duration"), (&["demo", "--agents", "0"][..], "--agents"), (&["demo", "--scenario", "/nonexistent.toml"][..], "--scenario")] {
        let out = Command::new(PACER).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn migrate_creates_and_updates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = || Command::new(PACER).arg("migrate").current_dir(dir.path()).env_remove("PACER_DATABASE__URL").output().unwrap();
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("11 migration(s) applied"));
    assert!(dir.path().join("data/pacer.db").exists());
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 migration(s) applied"));
}

#[test]
fn serve_with_a_bad_config_names_the_problem() {
    let out = Command::new(PACER).arg("serve").env("PACER_MEDIA__RTP_PORT_MIN", "7").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("media.rtp_port_min"));
}

#[test]
fn import_loads_a_csv_and_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/pacer.db");
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = pacer_dialer::store::Store::connect(&url, &Default::default()).await.unwrap();
        store.migrate().await.unwrap();
        let new = pacer_dialer::store::NewCampaign { name: "Spring".into(), dial_mode: pacer_dialer::store::DialMode::Predictive, settings: Default::default() };
        store.create_campaign(&new).await.unwrap();
        store.close().await;
    });
    let csv = dir.path().join("leads.csv");
    std::fs::write(&csv, "\u{feff}Cell;Name;Balance\n020 7946 0958;Ann;10\n12;Bob;3\n020 7946 0959;Cy;4\n").unwrap();
    let run = |args: &[&str]| Command::new(PACER).args(args).current_dir(dir.path()).env_remove("PACER_DATABASE__URL").output().unwrap();
    let out = run(&["import", "--campaign", "Spring", "--list", "March", "--map", "phone=Cell", "--country", "GB", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["rejected"][0]["line"], 3);
    // Again into the same list (by campaign id): everything is a duplicate now.
    let again = run(&["import", "--campaign", "1", "--list", "March", "--map", "phone=Cell", "--country", "GB", csv.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!((report["imported"].as_i64(), report["duplicates"].as_i64()), (Some(0), Some(2)));
    // A missing campaign and a bad mapping fail clearly.
    let bad = run(&["import", "--campaign", "Nope", "--list", "L", csv.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--campaign Nope"));
    let bad = run(&["import", "--campaign", "Spring", "--list", "L", "--map", "email=x", csv.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("email"));
}

#[test]
fn simulate_rejects_a_bad_scenario_and_runs_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nagents = 0\n").unwrap();
    let out = Command::new(PACER).args(["simulate", "--scenario"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let m = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/scenarios/M.toml");
    let text = std::fs::read_to_string(m).unwrap().replace("hours = 8.0", "hours = 0.25");
    let short = dir.path().join("short.toml");
    std::fs::write(&short, text).unwrap();
    let out = Command::new(PACER).args(["simulate", "--policy", "all", "--json", "--scenario"]).arg(&short).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    for (line, policy) in lines.iter().zip(["progressive", "power", "adaptive", "predictive"]) {
        assert_eq!(line["policy"], policy);
        assert_eq!(line["scenario"], "M");
        for key in ["occupancy", "abandon_rate", "abandon_rate_worst_seed", "idle_wait_per_connect_s", "dials_per_agent_hour", "connects_per_agent_hour"] {
            assert!(line[key].is_number(), "{key} in {line}");
        }
    }
    let out = Command::new(PACER).args(["simulate", "--policy", "psychic", "--scenario"]).arg(&short).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy"));
}

#[test]
fn simulate_from_campaign_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Command::new(PACER).arg("simulate").args(args).current_dir(dir.path()).env_remove("PACER_DATABASE__URL").output().unwrap();
    let out = run(&["--from-campaign", "Renewals"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--agents"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(Command::new(PACER).arg("migrate").current_dir(dir.path()).env_remove("PACER_DATABASE__URL").output().unwrap().status.success());
    let out = run(&["--from-campaign", "Renewals", "--agents", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from-campaign Renewals"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&[]);
    assert!(!out.status.success(), "neither --scenario nor --from-campaign");
}

#[test]
fn user_add_creates_a_supervisor_and_refuses_bad_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let add = |args: &[&str], stdin: &str| {
        let mut child = Command::new(PACER)
            .args(["user", "add"])
            .args(args)
            .current_dir(dir.path())
            .env_remove("PACER_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, out, err) = add(&["--username", "sue", "--role", "supervisor", "--password-stdin"], "correct horse\n");
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((v["username"].as_str(), v["role"].as_str()), (Some("sue"), Some("supervisor")), "{out}");
    for (args, stdin, says) in [
        (&["--username", "sue", "--role", "supervisor", "--password-stdin"][..], "another password\n", "user"),
        (&["--username", "bob", "--role", "boss", "--password-stdin"][..], "correct horse\n", "--role"),
        (&["--username", "bob", "--role", "agent", "--password-stdin"][..], "correct horse\n", "/api/v1/agents"),
        (&["--username", "bob", "--role", "admin", "--password-stdin"][..], "short\n", "at least 8"),
        (&["--username", "bad name", "--role", "admin", "--password-stdin"][..], "correct horse\n", "--username"),
        (&["--username", "bob", "--role", "admin"][..], "correct horse\n", "--password-stdin"),
    ] {
        let (ok, _, err) = add(args, stdin);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn kill_sets_and_shows_the_switch_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = |action: &str| {
        let out = Command::new(PACER).args(["kill", action]).current_dir(dir.path()).env_remove("PACER_DATABASE__URL").env_remove("PACER_CONFIG").output().unwrap();
        assert!(out.status.success(), "kill {action}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let status = run("status");
    assert_eq!((status["on"].as_bool(), status["changed_at"].as_i64()), (Some(false), Some(0)), "never set: {status}");
    let on = run("on");
    assert_eq!(on["on"].as_bool(), Some(true), "{on}");
    assert!(on["changed_by"].as_str().is_some_and(|b| b.starts_with("cli:")), "{on}");
    // Another process reads it back from the database.
    assert_eq!(run("status"), on);
    assert_eq!(run("off")["on"], false);
    assert_eq!(run("status")["on"], false);
    // Both changes are in the audit log, with the shell's user; the status is not.
    let url = format!("sqlite://{}", dir.path().join("data/pacer.db").display());
    let log = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = pacer_dialer::store::Store::connect(&url, &Default::default()).await.unwrap();
        let log = store.audit_log(0, 10).await.unwrap();
        store.close().await;
        log
    });
    let kills: Vec<_> = log.iter().filter(|e| e.action == "kill_switch").map(|e| (e.actor.clone(), e.detail.clone())).collect();
    assert_eq!(kills.len(), 2, "{log:?}");
    assert_eq!(kills[0].1, "off", "newest first: {kills:?}");
    assert!(kills.iter().all(|(actor, _)| actor.starts_with("cli:")), "{kills:?}");
    let bad = Command::new(PACER).args(["kill", "maybe"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"), "{}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn token_create_list_revoke_and_the_token_opens_the_api_until_revoked() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let pacer = |args: &[&str], stdin: &str| {
        let mut child = Command::new(PACER)
            .args(args)
            .current_dir(dir.path())
            .env_remove("PACER_CONFIG")
            .env_remove("PACER_DATABASE__URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, _, err) = pacer(&["user", "add", "--username", "mgr", "--role", "manager", "--password-stdin"], "manager-pass\n");
    assert!(ok, "{err}");
    let (ok, _, err) = pacer(&["token", "create", "--username", "nobody", "--name", "crm"], "");
    assert!(!ok && err.contains("nobody"), "{err}");
    let (ok, out, err) = pacer(&["token", "create", "--username", "mgr", "--name", "crm"], "");
    assert!(ok, "{err}");
    let t: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let secret = t["token"].as_str().unwrap().to_string();
    let id = t["id"].as_i64().unwrap().to_string();
    let (ok, out, _) = pacer(&["token", "list"], "");
    assert!(ok && out.contains("\"crm\"") && !out.contains(&secret), "{out}");

    std::fs::write(dir.path().join("pacer.toml"), "[http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten_udp = \"127.0.0.1:0\"\n").unwrap();
    let mut server = common::Pacer::start(dir.path(), &["serve", "--config", "pacer.toml"], &[]);
    let addr = server.http_addr();
    let (s, _, body) = common::http_as(addr, "GET", "/api/v1/me", None, Some(&secret));
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"manager\""), "{body}");
    let (s, _, _) = common::http_as(addr, "GET", "/api/v1/campaigns", None, None);
    assert_eq!(s, 401, "no token, no API");
    let (s, _, _) = common::http_as(addr, "GET", "/api/v1/users", None, Some(&secret));
    assert_eq!(s, 403, "a manager's token is not an admin's");
    let (ok, out, err) = pacer(&["token", "revoke", &id, "--config", "pacer.toml"], "");
    assert!(ok && out.contains("\"revoked\":true"), "{out} {err}");
    let (s, _, _) = common::http_as(addr, "GET", "/api/v1/me", None, Some(&secret));
    assert_eq!(s, 401, "revoked at once, on the running server too");
    let (ok, _, err) = pacer(&["token", "revoke", "9999"], "");
    assert!(!ok && err.contains("9999"), "{err}");
    // Each of these shell actions is in the audit log, under the OS user.
    let (s, _, body) = common::http(addr, "GET", "/api/v1/audit", None);
    assert_eq!(s, 200, "{body}");
    let log: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = log.as_array().or_else(|| log["items"].as_array()).expect("audit rows").clone();
    for (action, target) in [("user_add", "mgr"), ("token_create", "mgr"), ("token_revoke", &*format!("token {id}"))] {
        let row = rows.iter().find(|r| r["action"] == action).unwrap_or_else(|| panic!("no {action} in {body}"));
        assert_eq!((row["target"].as_str(), row["source"].as_str()), (Some(target), Some("cli")), "{row}");
        assert!(row["actor"].as_str().unwrap().starts_with("cli:"), "{row}");
    }
    assert!(server.terminate(std::time::Duration::from_secs(20)).success());
}
