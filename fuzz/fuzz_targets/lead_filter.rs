//! Any text as a list's lead filter expression, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pacer_dialer::filter::Filter::parse(text);
    }
});
