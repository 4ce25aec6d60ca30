//! Any text as a simulator scenario file: parsed and checked, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pacer_dialer::sim::Scenario::from_toml(text);
    }
});
