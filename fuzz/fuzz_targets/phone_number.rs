//! Any text as a phone number to normalise (two default countries), never a panic; a
//! number that normalises is E.164 and normalises to itself again.
#![no_main]
use std::sync::LazyLock;

use pacer_dialer::phone::Normalizer;

static US: LazyLock<Normalizer> = LazyLock::new(|| Normalizer::new("US").unwrap());
static GB: LazyLock<Normalizer> = LazyLock::new(|| Normalizer::new("GB").unwrap());

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for n in [&*US, &*GB] {
        if let Ok(ok) = n.normalize(text) {
            assert!(ok.e164.starts_with('+'), "{text:?} -> {}", ok.e164);
            let again = n.normalize(&ok.e164).expect("an E.164 result normalises again");
            assert_eq!(again.e164, ok.e164, "{text:?}");
        }
    }
});
