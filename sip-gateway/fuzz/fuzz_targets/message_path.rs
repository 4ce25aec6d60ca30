//! Any datagram through the gateway's message path: the guard's verdict, and the stateless
//! answer it builds for a bad request (which must itself parse). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pacer_sip::screen_datagram(data);
});
