//! Any text as a peer's SDP offer to an RTP endpoint: answered or refused with an error,
//! never a panic.
#![no_main]
use std::sync::LazyLock;

struct Env {
    rt: tokio::runtime::Runtime,
    leg: pacer_media::Endpoint,
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let leg = rt.block_on(async {
        let media = pacer_media::MediaEngine::new(&pacer_config::MediaConfig { rtp_port_min: 52000, rtp_port_max: 52998, ..Default::default() }).unwrap();
        media.rtp_endpoint().await.unwrap()
    });
    Env { rt, leg }
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = &*ENV;
    let _guard = env.rt.enter();
    let _ = env.leg.answer_offer(text);
});
