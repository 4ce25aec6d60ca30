//! Any text as a CTI message from an agent desktop or a supervisor page, and as a
//! campaign script filled with a lead's fields: an error or a message, never a panic.
//! The parser is the application's own file (src/cti/protocol.rs), built here on its own
//! because the application crate has no library target.
#![no_main]
#![allow(dead_code)]

#[path = "../../src/cti/protocol.rs"]
mod protocol;

/// Stands in for the application's time report, which the protocol only carries.
mod api {
    pub mod floor {
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub struct TimeReport;
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = protocol::parse(text) {
        let _ = format!("{m:?}");
    }
    let _ = serde_json::from_str::<protocol::SupervisorMsg>(text);
    let lead = protocol::LeadInfo {
        id: 1,
        phone: "+12125550101".into(),
        name: "Ann Ö".into(),
        time_zone: None,
        fields: serde_json::json!({"plan": "Gold", "balance": 12.5, "due": null, "note": "{{name}}", "nested": {"a": [1, 2]}}),
    };
    let filled = protocol::fill_script(text, &lead);
    if !text.contains("{{") {
        assert_eq!(filled, text, "a script without placeholders is left as it is");
    }
});
