//! The CTI WebSocket's JSON messages (documented message by message in `docs/cti.md`).
//!
//! Every message is one JSON object with a `type` field. A message the server cannot
//! read is answered with an `error` naming what was wrong; the socket stays open.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Desktop → server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message of an agent socket.
    Login { username: String, password: String },
    /// The persistent media leg: a WebRTC offer from a browser, or a plain RTP offer from
    /// a SIP-less softphone. Answered with `media_answer`.
    MediaOffer { sdp: String },
    Ready,
    NotReady { reason: String },
    Logout,
    /// Call control on the agent's current call.
    Hangup,
    Hold,
    Unhold,
    Mute { on: bool },
    Dtmf { digits: String },
    /// Blind transfer of the current call to another agent (by username), a queue (a
    /// campaign's name) or a number: exactly one of the three.
    Transfer {
        #[serde(default)]
        agent: Option<String>,
        #[serde(default)]
        queue: Option<String>,
        #[serde(default)]
        number: Option<String>,
    },
    /// The agent's verdict on a call, during or after it.
    Disposition {
        call_id: String,
        code: String,
        #[serde(default)]
        notes: Option<String>,
        /// `YYYY-MM-DDTHH:MM` in the lead's local time.
        #[serde(default)]
        callback_at: Option<String>,
        /// The callback goes to this agent only (until the campaign's grace period).
        #[serde(default)]
        callback_mine: bool,
        /// Lead fields the agent edited on the call panel.
        #[serde(default)]
        fields: Option<serde_json::Map<String, Value>>,
    },
    /// More wrap-up time, within the campaign's limit.
    ExtendWrap { seconds: u32 },
    /// Preview dialling: the next lead of a campaign (the agent's first running one when
    /// absent), shown before it is dialled.
    PreviewNext {
        #[serde(default)]
        campaign_id: Option<i64>,
    },
    /// Dial the lead being previewed.
    Dial { lead_id: i64 },
    /// Put the previewed lead back without dialling it.
    Skip { lead_id: i64 },
    /// Dial a number the agent typed (checked against DNC and the calling window).
    ManualDial {
        number: String,
        #[serde(default)]
        campaign_id: Option<i64>,
    },
    /// The agent's own figures since `from` (Unix ms; default: the last 24 hours).
    TimeReport {
        #[serde(default)]
        from: Option<i64>,
    },
    Ping,
}

/// Supervisor page → server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SupervisorMsg {
    Login { username: String, password: String },
    /// The supervisor's own media leg (to listen, whisper or barge).
    MediaOffer { sdp: String },
    /// Join an agent's current call: `listen`, `whisper` or `barge`.
    Listen { agent_id: i64, mode: String },
    StopListen,
    /// Force an agent `not_ready` or `logged_out` (after their current call).
    Force { agent_id: i64, state: String },
    Ping,
}

/// Server → desktop.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    LoggedIn { agent_id: i64, username: String, name: String, reasons: Vec<String>, dispositions: Vec<DispositionInfo> },
    MediaAnswer { sdp: String },
    /// The agent's state now; `since` in Unix ms.
    State {
        state: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        since: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        /// End of wrap-up, Unix ms.
        #[serde(skip_serializing_if = "Option::is_none")]
        wrap_until: Option<i64>,
    },
    /// The screen pop: a customer is connected to this agent.
    Call(Box<ScreenPop>),
    /// The customer's leg ended (`by`: customer, agent, system).
    CallEnded {
        call_id: String,
        by: String,
        talk_s: f64,
        /// The call went on to another agent, who dispositions it (a transfer to an agent
        /// or a queue): this agent has nothing to disposition.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        handed_over: bool,
    },
    DispositionSaved { call_id: String, next: String },
    Error { code: String, message: String },
    Pong,
    /// Preview dialling: the lead to look at before dialling it (`dial`) or not (`skip`).
    Preview(Box<ScreenPop>),
    /// The agent's time per state and figures (answer to `time_report`).
    TimeReport(Box<crate::api::floor::TimeReport>),
    /// The agent's own call is being placed.
    Dialing { call_id: String, number: String },
    /// Supervisor: logged in.
    SupervisorReady { username: String, role: String },
    /// Supervisor: the floor now (every agent and running campaign).
    Snapshot { agents: Vec<AgentRow>, campaigns: Vec<CampaignRow> },
    /// Supervisor: one agent's state changed.
    AgentState { agent_id: i64, state: String, since: i64 },
    /// Supervisor: joined (or left, `mode` null) an agent's call.
    Listening { agent_id: Option<i64>, mode: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    pub agent_id: i64,
    pub username: String,
    pub state: String,
    pub reason: Option<String>,
    /// Unix ms.
    pub since: i64,
    pub call_id: Option<String>,
    /// The current call's campaign, customer number and connect time (Unix ms).
    pub campaign_id: Option<i64>,
    pub campaign: Option<String>,
    pub phone: Option<String>,
    pub connected_at: Option<i64>,
    pub online: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub dial_mode: String,
    pub calls_in_flight: u32,
    pub dial_level: f64,
    pub answer_rate: f64,
    pub abandon_rate_today: f64,
    pub abandon_rate_30d: f64,
    pub occupancy_today: f64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DispositionInfo {
    pub code: String,
    pub label: String,
    pub callback: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScreenPop {
    pub call_id: String,
    pub campaign: CampaignInfo,
    pub lead: LeadInfo,
    /// The campaign's script with `{{field}}` filled in from the lead.
    pub script: String,
    pub attempts: Vec<AttemptInfo>,
    /// When the customer was connected (Unix ms).
    pub connected_at: i64,
    /// Answered by a machine (routed because the campaign asks so).
    pub machine: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignInfo {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadInfo {
    pub id: i64,
    pub phone: String,
    pub name: String,
    pub time_zone: Option<String>,
    pub fields: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptInfo {
    pub started_at: i64,
    pub outcome: String,
    pub disposition: Option<String>,
    pub agent_id: Option<i64>,
}

/// Reads a desktop message; the error names the problem for the `error` reply.
pub fn parse(text: &str) -> Result<ClientMsg, String> {
    serde_json::from_str(text).map_err(|e| format!("bad message: {e}"))
}

/// `{{field}}` placeholders replaced by the lead's value (name, phone, or a custom field);
/// unknown fields become empty, so an agent never reads a raw placeholder.
pub fn fill_script(script: &str, lead: &LeadInfo) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        let value = match key {
            "name" => lead.name.clone(),
            "phone" => lead.phone.clone(),
            k => match lead.fields.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            },
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_bad_ones_are_named() {
        assert_eq!(parse(r#"{"type":"ready"}"#), Ok(ClientMsg::Ready));
        assert_eq!(parse(r#"{"type":"not_ready","reason":"lunch"}"#), Ok(ClientMsg::NotReady { reason: "lunch".into() }));
        assert!(parse(r#"{"type":"dance"}"#).unwrap_err().contains("dance"));
        assert!(parse(r#"{"type":"login","username":"a"}"#).unwrap_err().contains("password"));
        assert!(parse("not json").is_err());
        let s = serde_json::to_string(&ServerMsg::Pong).unwrap();
        assert_eq!(s, r#"{"type":"pong"}"#);
    }

    #[test]
    fn script_placeholders_are_filled() {
        let lead = LeadInfo { id: 1, phone: "+15551230000".into(), name: "Ann".into(), time_zone: None, fields: serde_json::json!({"balance": 12.5, "plan": "Gold"}) };
        assert_eq!(fill_script("Hi {{name}}, your {{ plan }} plan owes {{balance}}{{missing}}.", &lead), "Hi Ann, your Gold plan owes 12.5.");
        assert_eq!(fill_script("broken {{name", &lead), "broken {{name");
    }

    /// The CTI fuzz target's checked-in seeds (fuzz/corpus/cti_message) through the same
    /// functions, on stable, in every test run.
    #[test]
    fn fuzz_seeds_parse_or_fail_cleanly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cti_message");
        let lead = LeadInfo { id: 1, phone: "+12125550101".into(), name: "Ann".into(), time_zone: None, fields: serde_json::json!({"plan": "Gold", "note": "{{name}}"}) };
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            let agent = parse(&text);
            let sup = serde_json::from_str::<SupervisorMsg>(&text);
            match name.as_str() {
                "bad_type.json" => assert!(agent.unwrap_err().contains("invalid type"), "{name}"),
                "listen.json" => assert!(sup.is_ok() && agent.is_err(), "{name}"),
                "login.json" => assert!(agent.is_ok() && sup.is_ok(), "{name}"),
                n if n.ends_with(".json") => assert!(agent.is_ok(), "{name}: {agent:?}"),
                _ => {
                    let filled = fill_script(&text, &lead);
                    assert!(!filled.contains("{{plan}}") && !filled.contains("{{ plan }}"), "{name}: {filled}");
                }
            }
            seen += 1;
        }
        assert!(seen >= 5, "seeds in {}", dir.display());
        // A field whose value looks like a placeholder is shown as it is, not filled again.
        assert_eq!(fill_script("{{note}}", &lead), "{{name}}");
    }
}

#[cfg(test)]
mod deep_tests {
    #[test]
    fn deeply_nested_input_is_an_error_on_both_sockets() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(super::parse(&deep).is_err());
        assert!(serde_json::from_str::<super::SupervisorMsg>(&deep).is_err());
    }
}
