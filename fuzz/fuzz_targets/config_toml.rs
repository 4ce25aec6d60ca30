//! Any text as a configuration file: parsed and validated, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pacer_config::Config::from_toml_str(text);
    }
});
