//! A campaign's settings: pacing, caller ID, call handling, calling windows, retry rules.
//!
//! Stored as JSON in `campaigns.settings`. Deserialising gives every field its default, so a
//! campaign created with `{}` is valid and dials conservatively; [`CampaignSettings::validate`]
//! then lists *every* problem (field path and reason) so a manager fixes them in one go.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::window::{self, CallingWindows};

/// The legal ceiling for the abandon rate (FTC/Ofcom: 3 % of answered calls).
pub const MAX_ABANDON_RATE: f64 = 0.03;
/// Below this a called party barely has time to reach the phone.
pub const MIN_RING_TIMEOUT_S: u32 = 15;

/// Everything a manager tunes about a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignSettings {
    /// Target abandon rate for predictive pacing; never above [`MAX_ABANDON_RATE`].
    pub abandon_target: f64,
    /// Upper bound on simultaneous calls per ready agent (predictive).
    pub max_lines_per_agent: f64,
    /// Below this many ready agents, predictive falls back to progressive.
    pub min_agents_predictive: u32,
    /// Calls per ready agent in power mode.
    pub power_ratio: f64,
    /// Trunk names (from the `[[trunks]]` config), tried in order.
    pub trunks: Vec<String>,
    pub caller_id: CallerId,
    /// Seconds a call may ring before it is cancelled as no-answer.
    pub ring_timeout_s: u32,
    /// Seconds after which predictive pacing may hang up a call still ringing, when a
    /// person answering it then would probably find no agent (15 at least; equal to
    /// `ring_timeout_s`, every call rings to the timeout).
    pub min_ring_s: u32,
    pub amd: Amd,
    /// Audio played when an answered call finds no agent in time (then counted abandoned).
    pub safe_harbor_file: String,
    /// Seconds of wrap-up an agent gets after a call.
    pub wrap_up_s: u32,
    /// Text shown to agents; `{{field}}` is replaced by the lead's value.
    pub script: String,
    /// Skills an agent needs to take this campaign's calls.
    pub skills: Vec<String>,
    pub windows: CallingWindows,
    pub retry: RetryRules,
    /// Order of new leads in the hopper.
    pub new_lead_order: NewLeadOrder,
    /// E.164 prefixes this campaign may call, within `dialer.allowed_destinations` (it can
    /// only narrow that list); empty = the system's list.
    pub allowed_destinations: Vec<String>,
    /// Most calls of this campaign dialling or waiting for an agent at once, whatever the
    /// pacing engine asks for; `None` = no cap but the trunks'.
    pub max_concurrent_calls: Option<u32>,
    /// Most new calls this campaign starts per second; `None` = no cap but the trunks'.
    pub max_calls_per_second: Option<f64>,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            abandon_target: MAX_ABANDON_RATE,
            max_lines_per_agent: 3.0,
            min_agents_predictive: 5,
            power_ratio: 1.5,
            trunks: Vec::new(),
            caller_id: CallerId::default(),
            ring_timeout_s: 25,
            min_ring_s: MIN_RING_TIMEOUT_S,
            amd: Amd::default(),
            safe_harbor_file: String::new(),
            wrap_up_s: 30,
            script: String::new(),
            skills: Vec::new(),
            windows: CallingWindows::default(),
            retry: RetryRules::default(),
            new_lead_order: NewLeadOrder::default(),
            allowed_destinations: Vec::new(),
            max_concurrent_calls: None,
            max_calls_per_second: None,
        }
    }
}

/// Which number the called party sees.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerId {
    pub mode: CallerIdMode,
    /// E.164 numbers: exactly one for `one`, one or more for `pool` and `local_presence`.
    pub numbers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerIdMode {
    /// Always the same number.
    #[default]
    One,
    /// Rotate through the pool, one per call.
    Pool,
    /// The pool number that shares the called party's area code, else the first.
    LocalPresence,
}

/// Answering-machine detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Amd {
    pub enabled: bool,
    pub action: AmdAction,
    /// Audio left after the beep (`leave_message`).
    pub message_file: String,
}

impl Default for Amd {
    fn default() -> Self {
        Self { enabled: true, action: AmdAction::Hangup, message_file: String::new() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdAction {
    #[default]
    Hangup,
    LeaveMessage,
    RouteToAgent,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum NewLeadOrder {
    /// Higher list priority first, then import order.
    #[default]
    ListPriority,
    /// Ascending by a custom field (text order), then import order.
    Field { field: String },
}

/// When a lead is tried again, and when it is finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryRules {
    /// Per disposition code (`no_answer`, `busy`, custom codes…): delay or done.
    pub dispositions: BTreeMap<String, RetryRule>,
    /// Delay for a disposition without its own rule (seconds); `None` = done.
    pub default_delay_s: Option<u64>,
    /// Attempts after which a lead is done whatever the outcome.
    pub max_attempts_per_lead: u32,
    /// Attempts on any one number (primary or alternate) before it is skipped.
    pub max_attempts_per_number: u32,
    /// Attempts allowed in any 24 hours; the next waits until the window frees.
    pub max_attempts_per_24h: u32,
    /// After an abandoned call the number rests this long (hours).
    pub abandon_lockout_h: u32,
    /// An agent-owned callback goes to anyone after this many seconds past due.
    pub callback_grace_s: u64,
}

/// What to do after one disposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRule {
    /// Retry after this many seconds; `None` means the lead is done.
    pub delay_s: Option<u64>,
    /// At most this many attempts that ended with this disposition.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl Default for RetryRules {
    fn default() -> Self {
        let rule = |d: Option<u64>| RetryRule { delay_s: d, max_attempts: None };
        let dispositions = [
            ("no_answer", rule(Some(3600))),
            ("busy", rule(Some(900))),
            ("congestion", rule(Some(600))),
            ("machine", rule(Some(4 * 3600))),
            ("abandoned", rule(Some(72 * 3600))),
            ("answered", rule(None)),
            ("invalid_number", rule(None)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            dispositions,
            default_delay_s: None,
            max_attempts_per_lead: 6,
            max_attempts_per_number: 3,
            max_attempts_per_24h: 3,
            abandon_lockout_h: 72,
            callback_grace_s: 900,
        }
    }
}

/// One thing wrong with a settings object: the dotted field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsProblem {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl CampaignSettings {
    /// Parse settings JSON; a shape error is reported as one problem naming the field.
    pub fn from_json(value: &serde_json::Value) -> Result<CampaignSettings, Vec<SettingsProblem>> {
        serde_json::from_value(value.clone()).map_err(|e| vec![SettingsProblem { field: "settings".into(), reason: e.to_string() }])
    }

    /// Every problem with these settings (empty when valid).
    pub fn validate(&self) -> Vec<SettingsProblem> {
        let mut p = Vec::new();
        let mut bad = |field: &str, reason: String| p.push(SettingsProblem { field: field.into(), reason });
        if !(self.abandon_target > 0.0 && self.abandon_target <= MAX_ABANDON_RATE) {
            bad("abandon_target", format!("{} is not in (0, {MAX_ABANDON_RATE}]", self.abandon_target));
        }
        if !(1.0..=10.0).contains(&self.max_lines_per_agent) {
            bad("max_lines_per_agent", format!("{} is not between 1 and 10", self.max_lines_per_agent));
        }
        if self.min_agents_predictive == 0 {
            bad("min_agents_predictive", "must be at least 1".into());
        }
        if !(1.0..=self.max_lines_per_agent.max(1.0)).contains(&self.power_ratio) {
            bad("power_ratio", format!("{} is not between 1 and max_lines_per_agent", self.power_ratio));
        }
        for (i, t) in self.trunks.iter().enumerate() {
            if t.trim().is_empty() {
                bad(&format!("trunks[{i}]"), "is empty".into());
            }
        }
        let n = self.caller_id.numbers.len();
        match self.caller_id.mode {
            CallerIdMode::One if n > 1 => bad("caller_id.numbers", format!("mode one takes one number, got {n}")),
            CallerIdMode::Pool | CallerIdMode::LocalPresence if n == 0 => {
                bad("caller_id.numbers", "a pool needs at least one number".into())
            }
            _ => {}
        }
        for (i, num) in self.caller_id.numbers.iter().enumerate() {
            if !is_e164(num) {
                bad(&format!("caller_id.numbers[{i}]"), format!("{num:?} is not an E.164 number (+ and 8–15 digits)"));
            }
        }
        if self.ring_timeout_s < MIN_RING_TIMEOUT_S || self.ring_timeout_s > 120 {
            bad("ring_timeout_s", format!("{} is not between {MIN_RING_TIMEOUT_S} and 120", self.ring_timeout_s));
        }
        if self.min_ring_s < MIN_RING_TIMEOUT_S || self.min_ring_s > self.ring_timeout_s.max(MIN_RING_TIMEOUT_S) {
            bad("min_ring_s", format!("{} is not between {MIN_RING_TIMEOUT_S} and ring_timeout_s ({})", self.min_ring_s, self.ring_timeout_s));
        }
        if self.amd.action == AmdAction::LeaveMessage && self.amd.message_file.trim().is_empty() {
            bad("amd.message_file", "needed when amd.action is leave_message".into());
        }
        if self.wrap_up_s > 3600 {
            bad("wrap_up_s", format!("{} is more than an hour", self.wrap_up_s));
        }
        if let Err(reason) = check_script(&self.script) {
            bad("script", reason);
        }
        for (i, s) in self.skills.iter().enumerate() {
            if s.trim().is_empty() {
                bad(&format!("skills[{i}]"), "is empty".into());
            }
        }
        if let NewLeadOrder::Field { field } = &self.new_lead_order {
            if !is_field_name(field) {
                bad("new_lead_order.field", format!("{field:?} is not a field name (letters, digits, _)"));
            }
        }
        for (i, prefix) in self.allowed_destinations.iter().enumerate() {
            if !pacer_config::is_e164_prefix(prefix) {
                bad(&format!("allowed_destinations[{i}]"), format!("{prefix:?} is not an E.164 prefix (+ then 1 to 15 digits, the first not 0)"));
            }
        }
        if self.max_concurrent_calls == Some(0) {
            bad("max_concurrent_calls", "must be at least 1 (pause the campaign to stop it)".into());
        }
        if let Some(r) = self.max_calls_per_second {
            if !(r > 0.0 && r <= 1000.0) {
                bad("max_calls_per_second", format!("{r} is not in (0, 1000]"));
            }
        }
        for (field, reason) in window::problems(&self.windows) {
            bad(&format!("windows.{field}"), reason);
        }
        let r = &self.retry;
        for (key, v) in [
            ("max_attempts_per_lead", r.max_attempts_per_lead),
            ("max_attempts_per_number", r.max_attempts_per_number),
            ("max_attempts_per_24h", r.max_attempts_per_24h),
        ] {
            if v == 0 {
                bad(&format!("retry.{key}"), "must be at least 1".into());
            }
        }
        for (code, rule) in &r.dispositions {
            if let Some(0) = rule.max_attempts {
                bad(&format!("retry.dispositions.{code}.max_attempts"), "must be at least 1".into());
            }
            if !is_field_name(code) {
                bad(&format!("retry.dispositions.{code}"), "is not a disposition code".into());
            }
        }
        p
    }

    /// The mode to dial in right now: predictive needs enough agents to be safe.
    pub fn effective_mode(&self, mode: crate::store::DialMode, ready_agents: u32) -> crate::store::DialMode {
        use crate::store::DialMode;
        if mode == DialMode::Predictive && ready_agents < self.min_agents_predictive { DialMode::Progressive } else { mode }
    }
}

/// `+` then 8 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else { return false };
    (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Every `{{` must close with `}}` around a field name.
fn check_script(script: &str) -> Result<(), String> {
    let mut rest = script;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("placeholder at byte {} is not closed with }}}}", script.len() - rest.len() + start))?;
        let name = after[..end].trim();
        if !is_field_name(name) {
            return Err(format!("placeholder {{{{{name}}}}} is not a field name"));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// The script with every `{{field}}` replaced: standard lead columns first, then custom
/// fields; unknown placeholders become empty so an agent never reads template syntax.
pub fn render_script(script: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push_str(&lookup(after[..end].trim()).unwrap_or_default());
                rest = &after[end + 2..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

impl CampaignSettings {
    /// The campaign's script for one lead, as the agent's screen pop shows it: `{{name}}`,
    /// `{{phone}}`, `{{postal_code}}`, `{{time_zone}}`, then the lead's custom fields.
    pub fn script_for(&self, lead: &crate::store::Lead) -> String {
        render_script(&self.script, |k| match k {
            "name" => Some(lead.name.clone()),
            "phone" => Some(lead.phone.clone()),
            "postal_code" => lead.postal_code.clone(),
            "time_zone" => lead.time_zone.clone(),
            _ => lead.fields.get(k).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_empty_json_gives_defaults() {
        assert_eq!(CampaignSettings::default().validate(), vec![]);
        let s = CampaignSettings::from_json(&serde_json::json!({})).unwrap();
        assert_eq!(s, CampaignSettings::default());
        assert_eq!(s.abandon_target, 0.03);
    }

    #[test]
    fn every_problem_is_reported() {
        let s = CampaignSettings::from_json(&serde_json::json!({
            "abandon_target": 0.05,
            "ring_timeout_s": 10,
            "min_ring_s": 40,
            "caller_id": {"mode": "pool", "numbers": []},
            "amd": {"action": "leave_message"},
            "script": "Hello {{first name}}",
            "retry": {"max_attempts_per_lead": 0},
            "windows": {"weekly": {"mon": ["09:00-08:00"]}},
            "allowed_destinations": ["+1", "1212"],
            "max_concurrent_calls": 0,
            "max_calls_per_second": -1,
        }))
        .unwrap();
        let fields: Vec<String> = s.validate().into_iter().map(|p| p.field).collect();
        for f in ["allowed_destinations[1]", "max_concurrent_calls", "max_calls_per_second", "abandon_target", "ring_timeout_s", "min_ring_s", "caller_id.numbers", "amd.message_file", "script", "retry.max_attempts_per_lead", "windows.weekly.mon[0]"] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_modes_are_refused() {
        let e = CampaignSettings::from_json(&serde_json::json!({"abandon": 0.01})).unwrap_err();
        assert!(e[0].reason.contains("abandon"), "{e:?}");
        assert!(CampaignSettings::from_json(&serde_json::json!({"caller_id": {"mode": "random"}})).is_err());
    }

    #[test]
    fn predictive_falls_back_below_min_agents() {
        use crate::store::DialMode;
        let s = CampaignSettings::default();
        assert_eq!(s.effective_mode(DialMode::Predictive, 4), DialMode::Progressive);
        assert_eq!(s.effective_mode(DialMode::Predictive, 5), DialMode::Predictive);
        assert_eq!(s.effective_mode(DialMode::Power, 1), DialMode::Power);
    }

    #[test]
    fn scripts_render_fields() {
        let r = render_script("Hi {{ name }}, balance {{balance}}{{x}}.", |k| match k {
            "name" => Some("Ann".into()),
            "balance" => Some("12".into()),
            _ => None,
        });
        assert_eq!(r, "Hi Ann, balance 12.");
        assert!(check_script("{{a}} {{b").is_err());
    }
}
