//! Recording, DTMF, RTP timeouts and metrics on bridged calls between real UDP legs.

mod common;

use std::time::Duration;

use common::*;
use pacer_media::{MediaEvent, Prompt};

fn channel(samples: &[i16], ch: usize) -> Vec<i16> {
    samples.iter().skip(ch).step_by(2).copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_puts_each_party_on_its_own_channel() {
    let engine = engine(21400);
    let (carrier, trunk) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    let (phone, agent) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    connect(&carrier, &trunk);
    connect(&phone, &agent);
    let bridge = engine.bridge(&trunk, &agent).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let rec = bridge.record(&path).unwrap();
    // Customer says 1000 Hz for a second, then (during the paused part) 1500 Hz; the agent
    // answers 400 Hz throughout.
    let (c, p) = (carrier.clone(), phone.clone());
    let agent_talk = tokio::spawn(async move { p.play(&Prompt::tone(400.0, 3000)).await });
    c.play(&Prompt::tone(1000.0, 1200)).await.unwrap();
    // While the file is still being written, what is there is a valid WAV already.
    let partial = hound::WavReader::open(&path).expect("a readable WAV while recording");
    assert_eq!(partial.spec().channels, 2);
    assert!(partial.duration() >= 4000, "only {} frames on disk after 1.2 s", partial.duration());
    rec.pause();
    c.play(&Prompt::tone(1500.0, 600)).await.unwrap();
    rec.resume();
    c.play(&Prompt::tone(1000.0, 400)).await.unwrap();
    let out = rec.stop().await.unwrap();
    assert_eq!(out, path);
    agent_talk.abort();
    let mut r = hound::WavReader::open(&out).unwrap();
    let spec = r.spec();
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
    let s: Vec<i16> = r.samples::<i16>().map(|x| x.unwrap()).collect();
    let (left, right) = (channel(&s, 0), channel(&s, 1));
    assert!(left.len() > 16000, "recording too short: {} frames", left.len());
    let first = &left[2000..8000];
    assert!(has_tone(first, 1000.0) && !has_tone(first, 400.0), "left channel is the customer");
    let r1 = &right[2000..8000];
    assert!(has_tone(r1, 400.0) && !has_tone(r1, 1000.0), "right channel is the agent");
    assert!(!has_tone(&left, 1500.0), "the paused part was recorded");
    assert!(has_tone(&left[left.len() - 3200..], 1000.0) || has_tone(&left[left.len() - 5000..left.len() - 1000], 1000.0));
    bridge.end();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_started_with_the_bridge_records_when_the_legs_were_on_two_shards() {
    // Legs go to the shards in turn: the trunk and the agent land on different ones, so
    // the bridge's join waits for the trunk to move while the recording starts.
    let engine = engine(21900);
    let (carrier, trunk) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    let (agent, phone) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    connect(&carrier, &trunk);
    connect(&phone, &agent);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let bridge = engine.bridge(&trunk, &agent).unwrap();
        let rec = bridge.record(dir.path().join(format!("call{i}.wav"))).unwrap();
        carrier.play(&Prompt::tone(1000.0, 600)).await.unwrap();
        let out = rec.stop().await.unwrap();
        bridge.end();
        let mut r = hound::WavReader::open(&out).unwrap();
        let s: Vec<i16> = r.samples::<i16>().map(|x| x.unwrap()).collect();
        let left = channel(&s, 0);
        assert!(left.len() > 3000, "call {i}: only {} frames recorded", left.len());
        assert!(has_tone(&left[left.len() / 4..], 1000.0), "call {i}: the customer's tone is not recorded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_is_reported_and_passed_through_the_bridge() {
    let engine = engine(21500);
    let (carrier, trunk) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    let (phone, agent) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    connect(&carrier, &trunk);
    connect(&phone, &agent);
    let _bridge = engine.bridge(&trunk, &agent).unwrap();
    let on_trunk = trunk.events();
    let at_agent_phone = phone.events();
    carrier.send_dtmf("4*9#").unwrap();
    let digits = |mut rx: tokio::sync::broadcast::Receiver<MediaEvent>| async move {
        let mut got = String::new();
        while got.len() < 4 {
            match wait_event(&mut rx, Duration::from_secs(3), |e| match e {
                MediaEvent::Dtmf { digit, duration } => Some((*digit, *duration)),
                _ => None,
            })
            .await
            {
                Some((d, dur)) => {
                    assert_eq!(dur, Duration::from_millis(100));
                    got.push(d);
                }
                None => break,
            }
        }
        got
    };
    let (a, b) = tokio::join!(digits(on_trunk), digits(at_agent_phone));
    assert_eq!(a, "4*9#", "digits reported on the trunk leg");
    assert_eq!(b, "4*9#", "digits passed to the agent");
    // And the other way.
    phone.send_dtmf("7").unwrap();
    let mut on_carrier = carrier.events();
    let d = wait_event(&mut on_carrier, Duration::from_secs(3), |e| match e {
        MediaEvent::Dtmf { digit, .. } => Some(*digit),
        _ => None,
    })
    .await;
    assert_eq!(d, Some('7'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_far_end_times_out_and_resumes() {
    let engine = engine_with(21600, |c| c.rtp_timeout_s = 1);
    let leg = engine.rtp_endpoint().await.unwrap();
    let phone = RawPhone::new(9, 1, 1).await;
    leg.answer_offer(&phone.offer()).unwrap();
    let mut ev = leg.events();
    let t = wait_event(&mut ev, Duration::from_secs(3), |e| match e {
        MediaEvent::RtpTimeout { silent_for } => Some(*silent_for),
        _ => None,
    })
    .await
    .expect("timeout event");
    assert!(t >= Duration::from_secs(1));
    phone.start_sending(leg.local_addr().unwrap(), 0, 0xFF);
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(wait_event(&mut ev, Duration::from_secs(3), |e| Some(e.clone())).await.expect("event"));
    }
    assert!(matches!(seen[0], MediaEvent::FirstPacket { .. }), "{seen:?}");
    assert_eq!(seen[1], MediaEvent::RtpResumed);
    // A stranger sending to the leg is ignored while the latched phone keeps talking.
    let stranger = RawPhone::new(10, 1, 1).await;
    stranger.start_sending(leg.local_addr().unwrap(), 0, 0x00);
    assert!(eventually(Duration::from_secs(2), || leg.stats().malformed >= 5).await);
    assert_eq!(leg.stats().remote, Some(phone.addr()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_bridged_traffic() {
    let engine = engine(21700);
    let registry = prometheus::Registry::new();
    engine.register_metrics(&registry).unwrap();
    let (a, b) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    let (c, d) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    connect(&a, &b);
    connect(&c, &d);
    let _bridge = engine.bridge(&b, &d).unwrap();
    // Read the metrics the way Prometheus does: from the text exposition.
    let value = |name: &str, label: Option<&str>| -> f64 {
        let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter(|l| label.is_none_or(|lb| l.contains(&format!("\"{lb}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(eventually(Duration::from_secs(4), || value("pacer_media_packets_total", Some("rx")) > 100.0).await);
    assert_eq!(value("pacer_media_legs", Some("rtp")), 4.0);
    assert_eq!(value("pacer_media_bridges", None), 1.0);
    assert_eq!(value("pacer_media_ports_in_use", None), 4.0);
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    assert!(text.contains("pacer_media_jitter_seconds_bucket"));
    assert!(!text.contains("leg=") && !text.contains("call"), "no per-call labels");
}
