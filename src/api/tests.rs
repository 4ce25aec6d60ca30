//! The API through the real router (tower `oneshot`), on SQLite and PostgreSQL.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pacer_dialer::test_support::TestDb;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::http::{AppState, router};

/// The admin bearer token of the test configuration (`auth.admin_token`).
const ADMIN: &str = "test-admin-token-0123456789abcdef0123";

fn app(db: &TestDb) -> axum::Router {
    let mut cfg = pacer_config::Config::default();
    cfg.auth.admin_token = Some(ADMIN.into());
    cfg.dialer.legal_window_start = "00:00".into();
    cfg.dialer.legal_window_end = "24:00".into();
    router(AppState { store: db.store.clone(), metrics: crate::metrics::Metrics::new(), config: Arc::new(cfg), cti: None, dialer: None, signing_key: None })
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: Option<(&str, String)>) -> (StatusCode, String) {
    call_as(app, method, uri, body, &[("authorization", format!("Bearer {ADMIN}"))]).await
}

async fn call_as(app: &axum::Router, method: &str, uri: &str, body: Option<(&str, String)>, headers: &[(&str, String)]) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let body = match body {
        Some((ct, b)) => {
            req = req.header("content-type", ct);
            Body::from(b)
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn json_call(app: &axum::Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (s, text) = call(app, method, uri, body.map(|b| ("application/json", b.to_string()))).await;
    (s, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn every_route_is_in_the_openapi_document_and_back() {
    let doc: Value = serde_json::from_str(super::OPENAPI).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let routes = super::routes();
    for (method, path, _) in &routes {
        assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} missing from openapi.json");
    }
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            assert!(routes.iter().any(|(m, p, _)| m == method && p == path), "openapi.json lists {method} {path}, the router does not");
        }
    }
}

#[tokio::test]
async fn bad_input_gets_4xx_json_with_a_code() {
    let db = TestDb::sqlite().await;
    let app = app(&db);
    let cases: Vec<(&str, &str, Option<(&str, String)>, StatusCode, &str)> = vec![
        ("POST", "/api/v1/campaigns", Some(("application/json", "{not json".into())), StatusCode::BAD_REQUEST, "bad_json"),
        ("POST", "/api/v1/campaigns", Some(("application/json", r#"{"name": 5}"#.into())), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("POST", "/api/v1/campaigns", Some(("application/json", r#"{"name": "x", "colour": 1}"#.into())), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("POST", "/api/v1/campaigns", Some(("text/plain", r#"{"name": "x"}"#.into())), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("POST", "/api/v1/campaigns", Some(("application/json", r#"{"name": ""}"#.into())), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        ("POST", "/api/v1/campaigns", Some(("application/json", r#"{"name": "x", "dial_mode": "turbo"}"#.into())), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("GET", "/api/v1/campaigns/abc", None, StatusCode::BAD_REQUEST, "bad_path"),
        ("GET", "/api/v1/campaigns/99", None, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/api/v1/leads?limit=many", None, StatusCode::BAD_REQUEST, "bad_query"),
        ("GET", "/api/v1/leads?state=flying", None, StatusCode::BAD_REQUEST, "bad_query"),
        ("GET", "/api/v1/reports/cdr?format=xml", None, StatusCode::BAD_REQUEST, "bad_query"),
        ("POST", "/api/v1/lists/1/import", Some(("text/csv", "phone\n1\n".into())), StatusCode::NOT_FOUND, "not_found"),
        ("POST", "/api/v1/outcomes", Some(("application/json", "{}".into())), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        ("GET", "/api/v1/nothing", None, StatusCode::NOT_FOUND, "not_found"),
        ("DELETE", "/api/v1/campaigns", None, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ];
    for (method, uri, body, status, code) in cases {
        let (s, text) = call(&app, method, uri, body).await;
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {uri}: not JSON: {text}"));
        assert_eq!((s, v["code"].as_str().unwrap_or("")), (status, code), "{method} {uri}: {text}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {uri}: {text}");
    }
    // Settings: every problem at once, with the field of each.
    let (s, v) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "x", "settings": {"abandon_target": 0.1, "ring_timeout_s": 5}}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "invalid_settings");
    assert_eq!(v["field"], "settings.abandon_target");
    assert_eq!(v["problems"].as_array().unwrap().len(), 2, "{v}");
    db.cleanup().await;
}

#[tokio::test]
async fn a_campaign_from_creation_to_reports() {
    for db in TestDb::all().await {
        let app = app(&db);
        let (s, c) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "Renewals", "dial_mode": "power", "settings": {"power_ratio": 2.0}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        let id = c["id"].as_i64().unwrap();
        assert_eq!(c["settings"]["abandon_target"], 0.03);
        let (s, v) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "Renewals"}))).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
        let (s, v) = json_call(&app, "POST", &format!("/api/v1/campaigns/{id}/pause"), None).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")));
        let (s, v) = json_call(&app, "PATCH", &format!("/api/v1/campaigns/{id}"), Some(json!({"settings": {"wrap_up_s": 10}}))).await;
        assert_eq!((s, &v["settings"]["wrap_up_s"]), (StatusCode::OK, &json!(10)));
        let (s, _) = json_call(&app, "POST", &format!("/api/v1/campaigns/{id}/start"), None).await;
        assert_eq!(s, StatusCode::OK);

        let (s, l) = json_call(&app, "POST", &format!("/api/v1/campaigns/{id}/lists"), Some(json!({"name": "Q4", "priority": 3}))).await;
        assert_eq!(s, StatusCode::CREATED);
        let list = l["id"].as_i64().unwrap();
        let csv = "Mobile;Name;Plan\n(415) 555-0101;Ann;gold\nnope;Bob;x\n415 555 0102;Cy;silver\n415 555 0101;Ann2;gold\n";
        let (s, text) = call(&app, "POST", &format!("/api/v1/lists/{list}/import?map=phone=Mobile"), Some(("text/csv", csv.into()))).await;
        assert_eq!(s, StatusCode::OK, "{text}");
        let r: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((r["imported"].as_i64(), r["duplicates"].as_i64(), r["rejected"][0]["line"].as_i64()), (Some(2), Some(1), Some(3)), "{r}");
        let (s, v) = json_call(&app, "POST", &format!("/api/v1/lists/{list}/import"), None).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_csv")));

        let (_, leads) = json_call(&app, "GET", &format!("/api/v1/leads?list_id={list}"), None).await;
        assert_eq!(leads.as_array().unwrap().len(), 2);
        let lead = leads[0]["id"].as_i64().unwrap();
        let (s, v) = json_call(&app, "PATCH", &format!("/api/v1/leads/{lead}"), Some(json!({"fields": {"plan": "platinum"}, "time_zone": "America/Chicago"}))).await;
        assert_eq!((s, &v["fields"]["plan"]), (StatusCode::OK, &json!("platinum")), "{v}");
        let (s, v) = json_call(&app, "PATCH", &format!("/api/v1/leads/{lead}"), Some(json!({"time_zone": "Mars/Base"}))).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")));
        let (s, text) = call(&app, "GET", &format!("/api/v1/lists/{list}/export"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(text.starts_with("id,phone,") && text.contains("+14155550101") && text.contains("platinum"), "{text}");

        // DNC through the API, then an outcome and the reports.
        let (s, v) = json_call(&app, "POST", "/api/v1/dnc/0", Some(json!({"phones": ["415 555 0102"], "reason": "asked"}))).await;
        assert_eq!((s, &v["added"]), (StatusCode::CREATED, &json!(1)));
        let (s, v) = json_call(&app, "POST", "/api/v1/dnc/0", Some(json!({"phones": ["12"]}))).await;
        assert_eq!((s, v["code"].as_str(), v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_phone"), Some("phones[0]")));
        let (_, v) = json_call(&app, "GET", "/api/v1/dnc/0", None).await;
        assert_eq!(v[0]["phone"], "+14155550102");
        let (s, text) = call(&app, "POST", &format!("/api/v1/dnc/{id}/import"), Some(("text/csv", "phone\n+442079460958\nbad\n".into()))).await;
        assert_eq!(s, StatusCode::OK, "{text}");
        assert!(text.contains(r#""added":1"#) && text.contains(r#""line":3"#), "{text}");

        let now = pacer_dialer::store::now_ms();
        let o = json!({"lead_id": lead, "owner": "api-test", "phone": "+14155550101", "outcome": "answered", "answered_by": "human",
                       "started_at": now, "talk_s": 42.0, "disposition": "answered",
                       "callback": {"at_local": "2030-01-02T10:00:00", "agent_only": false}});
        let (s, v) = json_call(&app, "POST", "/api/v1/outcomes", Some(o)).await;
        assert_eq!((s, &v["decision"]["state"]), (StatusCode::OK, &json!("callback")), "{v}");
        let (_, cbs) = json_call(&app, "GET", &format!("/api/v1/callbacks?campaign_id={id}"), None).await;
        assert_eq!(cbs.as_array().unwrap().len(), 1);
        // 10:00 in Chicago (the lead's zone since the edit) is 16:00 UTC in January.
        assert_eq!(cbs[0]["due_at"], 1893600000000i64);

        let (_, v) = json_call(&app, "GET", &format!("/api/v1/reports/campaigns/{id}/penetration"), None).await;
        assert_eq!((v[0]["total"].as_i64(), v[0]["retryable"].as_i64(), v[0]["dnc"].as_i64()), (Some(2), Some(1), Some(1)), "{v}");
        let (s, text) = call(&app, "GET", &format!("/api/v1/reports/campaigns/{id}/outcomes?format=csv&from=0"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(text.starts_with("list_id,code,calls,talk_s") && text.contains(",answered,1,42"), "{text}");
        let (_, v) = json_call(&app, "GET", &format!("/api/v1/reports/campaigns/{id}/hourly?from=0"), None).await;
        assert_eq!(v[0]["contacts"], 1);
        let (_, v) = json_call(&app, "GET", &format!("/api/v1/reports/cdr?campaign_id={id}"), None).await;
        assert_eq!(v[0]["talk_s"], 42.0);
        let (_, v) = json_call(&app, "GET", &format!("/api/v1/campaigns/{id}/abandon"), None).await;
        assert_eq!(v["since_start"]["answered"], 1);
        let (s, _) = call(&app, "GET", "/api/v1/openapi.json", None).await;
        assert_eq!(s, StatusCode::OK);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn filters_callbacks_and_nul_characters() {
    for db in TestDb::all().await {
        let app = app(&db);
        let (_, c) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "Renewals"}))).await;
        let id = c["id"].as_i64().unwrap();
        json_call(&app, "POST", &format!("/api/v1/campaigns/{id}/start"), None).await;
        let (_, l) = json_call(&app, "POST", &format!("/api/v1/campaigns/{id}/lists"), Some(json!({"name": "Q1"}))).await;
        let list = l["id"].as_i64().unwrap();
        let csv = "phone,tz,balance,plan\n4155550101,America/Los_Angeles,5,gold\n4155550102,America/Los_Angeles,50,silver\n4155550103,America/Los_Angeles,7,silver\n";
        let (s, text) = call(&app, "POST", &format!("/api/v1/lists/{list}/import"), Some(("text/csv", csv.into()))).await;
        assert_eq!(s, StatusCode::OK, "{text}");

        // Lead search and export by field expression; a bad one names its position.
        let (s, v) = json_call(&app, "GET", &format!("/api/v1/leads?list_id={list}&filter=balance%20%3C%2010%20and%20plan%20%3D%20silver"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v.as_array().unwrap().iter().map(|l| l["phone"].as_str().unwrap()).collect::<Vec<_>>(), ["+14155550103"]);
        let (s, v) = json_call(&app, "GET", "/api/v1/leads?filter=balance%20%3C", None).await;
        assert_eq!((s, v["code"].as_str(), v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_filter"), Some("filter")), "{v}");
        let (s, text) = call(&app, "GET", &format!("/api/v1/lists/{list}/export?filter=plan%20%3D%20gold"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(text.contains("+14155550101") && !text.contains("+14155550102"), "{text}");
        // The list's own filter decides what is dialled.
        let (s, v) = json_call(&app, "PATCH", &format!("/api/v1/lists/{list}"), Some(json!({"filter": "balance < 10"}))).await;
        assert_eq!((s, v["filter"].as_str()), (StatusCode::OK, Some("balance < 10")), "{v}");
        let (s, v) = json_call(&app, "PATCH", &format!("/api/v1/lists/{list}"), Some(json!({"filter": "balance <> "}))).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_filter")), "{v}");

        // Callbacks scheduled by a manager, in the lead's local time, owned by an agent.
        let (_, leads) = json_call(&app, "GET", &format!("/api/v1/leads?list_id={list}"), None).await;
        let lead = leads[0]["id"].as_i64().unwrap();
        let (s, v) = json_call(&app, "POST", "/api/v1/callbacks", Some(json!({"lead_id": lead, "at_local": "2030-01-02T09:30", "agent_id": 7, "notes": "renewal"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        // 09:30 in Los Angeles (PST) is 17:30 UTC.
        assert_eq!((v["due_at"].as_i64(), v["agent_id"].as_i64()), (Some(1893605400000), Some(7)));
        let (_, v) = json_call(&app, "GET", &format!("/api/v1/leads/{lead}"), None).await;
        assert_eq!((v["state"].as_str(), v["owner_agent_id"].as_i64()), (Some("callback"), Some(7)));
        let (s, v) = json_call(&app, "POST", "/api/v1/callbacks", Some(json!({"lead_id": 999999, "at_local": "2030-01-02T09:30"}))).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
        let (s, v) = json_call(&app, "POST", "/api/v1/callbacks", Some(json!({"lead_id": lead, "at_local": "next tuesday"}))).await;
        assert_eq!((s, v["code"].as_str(), v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body"), Some("at_local")), "{v}");

        // NUL characters (which PostgreSQL cannot store) are refused as bad input, not a 500.
        let (s, v) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "a\u{0}b"}))).await;
        assert_eq!((s, v["code"].as_str(), v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_text"), Some("name")), "{v}");
        let (s, v) = json_call(&app, "PATCH", &format!("/api/v1/leads/{lead}"), Some(json!({"fields": {"note": ["ok", "bad\u{0}"]}}))).await;
        assert_eq!((s, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("fields.note[1]")), "{v}");
        let (s, v) = json_call(&app, "GET", "/api/v1/leads?name=%00", None).await;
        assert_eq!((s, v["code"].as_str(), v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_query"), Some("name")), "{v}");
        let (s, v) = json_call(&app, "DELETE", "/api/v1/dnc/0/%2B1415%00", None).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_path")), "{v}");
        let (s, text) = call(&app, "POST", &format!("/api/v1/lists/{list}/import"), Some(("text/csv", "phone,name\n4155550109,Nul\u{0}\n4155550110,Ok\n".into()))).await;
        assert_eq!(s, StatusCode::OK, "{text}");
        let r: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((r["imported"].as_i64(), r["rejected"][0]["line"].as_i64()), (Some(1), Some(2)), "{r}");
        // A wrong type names its field.
        let (s, v) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": 5}))).await;
        assert_eq!((s, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("name")), "{v}");
        db.cleanup().await;
    }
}

/// A token for a new user of `role`, issued through the store as `pacer token create` does.
async fn token_for(db: &TestDb, role: pacer_dialer::store::Role) -> String {
    let name = format!("u-{}", role.as_str());
    db.store.create_user(&name, role, &crate::auth::hash_password("password-1")).await.unwrap();
    super::access::issue_token(&db.store, &name, "test").await.unwrap().1
}

/// A concrete URI for a route template (ids that exist nowhere: nothing is changed).
fn concrete(path: &str) -> String {
    format!("/api/v1{}", path.replace("{id}", "999999").replace("{campaign_id}", "999999").replace("{code}", "x").replace("{phone}", "%2B12125550100"))
}

#[tokio::test]
async fn every_route_refuses_strangers_and_lower_roles() {
    use pacer_dialer::store::Role;
    for db in TestDb::all().await {
        let app = app(&db);
        let mut tokens = Vec::new();
        for role in [Role::Agent, Role::Supervisor, Role::Manager, Role::Admin] {
            tokens.push((role, token_for(&db, role).await));
        }
        for (method, path, _) in super::routes() {
            let uri = concrete(path);
            let m = method.to_uppercase();
            let body = (method != "get").then(|| ("application/json", "{}".to_string()));
            let Some(need) = super::required_role(method, path) else {
                let (s, _) = call_as(&app, &m, &uri, body.clone(), &[]).await;
                assert_eq!(s, StatusCode::OK, "{m} {path} is open");
                continue;
            };
            let (s, b) = call_as(&app, &m, &uri, body.clone(), &[]).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path} without credentials: {b}");
            let (s, _) = call_as(&app, &m, &uri, body.clone(), &[("authorization", "Bearer not-a-token".into())]).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path} with a bad token");
            for (role, t) in &tokens {
                let (s, b) = call_as(&app, &m, &uri, body.clone(), &[("authorization", format!("Bearer {t}"))]).await;
                if *role < need {
                    assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path} as {role:?} (needs {need:?}): {b}");
                    assert!(b.contains("\"forbidden\""), "{b}");
                } else {
                    assert!(s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED, "{m} {path} as {role:?}: {s} {b}");
                    assert!(s != StatusCode::INTERNAL_SERVER_ERROR, "{m} {path} as {role:?}: {s} {b}");
                }
            }
        }
        // Agents use no route; supervisors read the floor but change nothing.
        assert_eq!(super::required_role("get", "/live/agents"), Some(Role::Supervisor));
        assert_eq!(super::required_role("post", "/campaigns"), Some(Role::Manager));
        assert_eq!(super::required_role("post", "/dialer/kill"), Some(Role::Manager));
        assert_eq!(super::required_role("get", "/audit"), Some(Role::Admin));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn tokens_are_issued_used_and_revoked_and_changes_are_audited() {
    for db in TestDb::all().await {
        let app = app(&db);
        let (s, u) = json_call(&app, "POST", "/api/v1/users", Some(json!({"username": "mia", "password": "mia-password", "role": "manager"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        assert!(u.get("password_hash").is_none(), "{u}");
        let (s, e) = json_call(&app, "POST", "/api/v1/users", Some(json!({"username": "x", "password": "short", "role": "manager"}))).await;
        assert_eq!((s, e["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("password")));
        let (s, e) = json_call(&app, "POST", "/api/v1/users", Some(json!({"username": "y", "password": "long-enough", "role": "root"}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        let (s, t) = json_call(&app, "POST", "/api/v1/tokens", Some(json!({"username": "mia", "name": "crm"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let secret = t["token"].as_str().unwrap().to_string();
        assert!(secret.starts_with("pacer_") && secret.len() > 40, "{secret}");
        let (s, e) = json_call(&app, "POST", "/api/v1/tokens", Some(json!({"username": "nobody", "name": "crm"}))).await;
        assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_user")));
        let bearer = [("authorization", format!("Bearer {secret}"))];
        let (s, me) = call_as(&app, "GET", "/api/v1/me", None, &bearer).await;
        assert_eq!(s, StatusCode::OK);
        assert!(me.contains("\"mia\"") && me.contains("\"manager\""), "{me}");
        let body = json!({"name": "Audited", "dial_mode": "progressive"}).to_string();
        let (s, c) = call_as(&app, "POST", "/api/v1/campaigns", Some(("application/json", body)), &bearer).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        // The manager cannot hand themselves more rights.
        let (s, _) = call_as(&app, "POST", "/api/v1/tokens", Some(("application/json", json!({"username": "mia", "name": "x"}).to_string())), &bearer).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, list) = json_call(&app, "GET", "/api/v1/tokens", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!list.to_string().contains(&secret), "the secret is never listed");
        let id = t["id"].as_i64().unwrap();
        let (s, _) = call(&app, "DELETE", &format!("/api/v1/tokens/{id}"), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = call_as(&app, "GET", "/api/v1/me", None, &bearer).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked token opens nothing");
        let mia = u["id"].as_i64().unwrap();
        let (s, r) = json_call(&app, "PATCH", &format!("/api/v1/users/{mia}"), Some(json!({"role": "supervisor"}))).await;
        assert_eq!((s, r["role"].as_str()), (StatusCode::OK, Some("supervisor")));
        let (s, log) = json_call(&app, "GET", "/api/v1/audit", None).await;
        assert_eq!(s, StatusCode::OK);
        let log = log.as_array().unwrap();
        let has = |actor: &str, action: &str, target: &str| log.iter().any(|e| e["actor"].as_str().unwrap().starts_with(actor) && e["action"] == action && e["target"].as_str().unwrap().contains(target));
        assert!(has("mia", "api", "POST /campaigns"), "{log:?}");
        assert!(has("config", "role_change", "mia"), "{log:?}");
        assert!(has("config", "api", "DELETE /tokens/{id}"), "{log:?}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn web_sessions_need_the_csrf_token_to_change_anything() {
    for db in TestDb::all().await {
        let app = app(&db);
        db.store.create_user("sam", pacer_dialer::store::Role::Manager, &crate::auth::hash_password("sam-password")).await.unwrap();
        let login = |p: &str| ("application/json", json!({"username": "sam", "password": p}).to_string());
        let (s, _) = call_as(&app, "POST", "/login", Some(login("wrong-one")), &[]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = call_as(&app, "POST", "/login", Some(("application/json", "{\"username\":1}".into())), &[]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let req = Request::builder().method("POST").uri("/login").header("content-type", "application/json").body(Body::from(login("sam-password").1)).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        let cookie = set.split(';').next().unwrap().to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let csrf = serde_json::from_slice::<Value>(&bytes).unwrap()["csrf_token"].as_str().unwrap().to_string();
        let (s, _) = call_as(&app, "GET", "/api/v1/campaigns", None, &[("cookie", cookie.clone())]).await;
        assert_eq!(s, StatusCode::OK, "reads need only the cookie");
        let body = || Some(("application/json", json!({"name": "From the page"}).to_string()));
        let (s, e) = call_as(&app, "POST", "/api/v1/campaigns", body(), &[("cookie", cookie.clone())]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
        assert!(e.contains("\"csrf\""), "{e}");
        let (s, _) = call_as(&app, "POST", "/api/v1/campaigns", body(), &[("cookie", cookie.clone()), ("x-csrf-token", "guess".into())]).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, e) = call_as(&app, "POST", "/api/v1/campaigns", body(), &[("cookie", cookie.clone()), ("x-csrf-token", csrf)]).await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        let (s, _) = call_as(&app, "POST", "/logout", None, &[("cookie", cookie.clone())]).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = call_as(&app, "GET", "/api/v1/campaigns", None, &[("cookie", cookie)]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "the session ended");
        let (s, log) = json_call(&app, "GET", "/api/v1/audit", None).await;
        assert_eq!(s, StatusCode::OK);
        let actions: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert!(actions.contains(&"login") && actions.contains(&"login_failed"), "{actions:?}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_kill_switch_is_stored_and_bad_campaign_caps_are_named() {
    for db in TestDb::all().await {
        let app = app(&db);
        // An HTTP-only node (no dialer here) still sets the switch every dialer obeys.
        let (s, v) = json_call(&app, "POST", "/api/v1/dialer/kill", None).await;
        assert_eq!((s, v["on"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
        assert_eq!(v["changed_by"], "api:config", "the admin token's user: {v}");
        assert!(db.store.kill_switch().await.unwrap().on);
        let (_, v) = json_call(&app, "GET", "/api/v1/dialer/kill", None).await;
        assert_eq!(v["on"], true);
        let (_, v) = json_call(&app, "DELETE", "/api/v1/dialer/kill", None).await;
        assert_eq!(v["on"], false);
        assert!(!db.store.kill_switch().await.unwrap().on);

        let bad = json!({"allowed_destinations": ["+44", "44"], "max_concurrent_calls": 0, "max_calls_per_second": 0});
        let (s, v) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "Runaway", "settings": bad}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let text = v.to_string();
        assert!(text.contains("+44 is outside dialer.allowed_destinations (+1)"), "a campaign cannot widen the list: {v}");
        assert_eq!(v["problems"].as_array().map(Vec::len), Some(4), "one problem per mistake: {v}");
        for f in ["allowed_destinations[0]", "allowed_destinations[1]", "max_concurrent_calls", "max_calls_per_second"] {
            assert!(text.contains(f), "{f} missing from {v}");
        }
        let good = json!({"allowed_destinations": ["+1212"], "max_concurrent_calls": 20, "max_calls_per_second": 2.5});
        let (s, v) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "Capped", "settings": good}))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!((v["settings"]["max_concurrent_calls"].as_i64(), v["settings"]["max_calls_per_second"].as_f64()), (Some(20), Some(2.5)), "{v}");
        db.cleanup().await;
    }
}

/// A sweep over every route of the OpenAPI document with malformed input: bad bodies (not
/// JSON, wrong shapes, unknown fields, NUL, deep nesting, random bytes, oversized), bad path
/// parameters and bad queries. Never a 5xx; every refusal is JSON with a `code`.
#[tokio::test]
async fn malformed_input_on_every_route_never_gets_a_5xx() {
    use rand::{RngExt, SeedableRng};
    let db = TestDb::sqlite().await;
    let app = app(&db);
    // Something to point at, so that handlers get past their lookups.
    let (s, c) = json_call(&app, "POST", "/api/v1/campaigns", Some(json!({"name": "Sweep"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let cid = c["id"].as_i64().unwrap();
    let (s, l) = json_call(&app, "POST", &format!("/api/v1/campaigns/{cid}/lists"), Some(json!({"name": "L"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    let lid = l["id"].as_i64().unwrap();
    call(&app, "POST", &format!("/api/v1/lists/{lid}/import"), Some(("text/csv", "phone\n+12125550100\n".into()))).await;
    let max = pacer_config::Config::default().http.max_body_bytes as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let mut bodies: Vec<(&str, String)> = vec![
        ("application/json", "{not json".into()),
        ("application/json", "[]".into()),
        ("application/json", "null".into()),
        ("application/json", "\"text\"".into()),
        ("application/json", "12345678901234567890123".into()),
        ("application/json", r#"{"unknown_field": 1}"#.into()),
        ("application/json", r#"{"name": "\u0000", "phones": ["\u0000"]}"#.into()),
        ("application/json", r#"{"name": {"a": [1, {"b": null}]}, "settings": "x", "role": 5, "id": -1}"#.into()),
        ("application/json", deep),
        ("application/json", format!("{{\"name\": \"{}\"}}", "x".repeat(max + 1))),
        ("text/csv", "\u{feff}phone;name\n\"unterminated\n".into()),
        ("application/x-www-form-urlencoded", "a=b".into()),
    ];
    for _ in 0..8 {
        let n = rng.random_range(1..2000);
        let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        bodies.push(("application/json", String::from_utf8_lossy(&bytes).into_owned()));
    }
    let ids = [cid.to_string(), "abc".into(), "-1".into(), "99999999999999999999".into(), "%00".into(), "1.5".into()];
    let queries = ["", "?limit=-5", "?limit=99999999999", "?from=yesterday&to=now", "?unknown=1", "?campaign_id=x&state=flying", "?format=xml", "?since=%00"];
    let mut checked = 0;
    for (method, path, _) in super::routes() {
        let m = method.to_uppercase();
        for id in &ids {
            let p = path.replace("{id}", id).replace("{campaign_id}", id).replace("{code}", id).replace("{phone}", id);
            let uri = format!("/api/v1{p}");
            let mut tries: Vec<(String, Option<(&str, String)>)> = queries.iter().map(|q| (format!("{uri}{q}"), None)).collect();
            if method != "get" {
                tries.extend(bodies.iter().map(|(ct, b)| (uri.clone(), Some((*ct, b.clone())))));
            }
            for (u, body) in tries {
                let shown = body.as_ref().map(|(ct, b)| format!("{ct} {}", b.chars().take(60).collect::<String>())).unwrap_or_default();
                let (s, text) = call(&app, &m, &u, body).await;
                // 503 `no_dialer` is this router's honest answer for live routes: it runs
                // without a dialer. Anything else server-side is a bug.
                let no_dialer = s == StatusCode::SERVICE_UNAVAILABLE && text.contains("\"no_dialer\"");
                assert!(!s.is_server_error() || no_dialer, "{m} {u} [{shown}]: {s} {}", text.chars().take(300).collect::<String>());
                if s.is_client_error() {
                    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{m} {u} [{shown}]: {s} not JSON: {text}"));
                    assert!(v["code"].as_str().is_some_and(|c| !c.is_empty()), "{m} {u} [{shown}]: {text}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked} requests");
    db.cleanup().await;
}

#[tokio::test]
async fn password_guessing_on_the_login_page_is_stopped() {
    let db = TestDb::sqlite().await;
    let app = app(&db);
    db.store.create_user("guessed", pacer_dialer::store::Role::Admin, &crate::auth::hash_password("the-right-one")).await.unwrap();
    let login = |p: &str| Some(("application/json", json!({"username": "guessed", "password": p}).to_string()));
    for i in 0..10 {
        let (s, _) = call_as(&app, "POST", "/login", login(&format!("guess-{i}")), &[]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, b) = call_as(&app, "POST", "/login", login("the-right-one"), &[]).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "even the right password waits: {b}");
    assert!(b.contains("too_many_failures"), "{b}");
    db.cleanup().await;
}
