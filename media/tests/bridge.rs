//! Bridging, re-pointing, transcoding, playback and supervisor modes, against real UDP
//! peers on loopback: raw RTP phones and endpoints of a second engine's legs.

mod common;

use std::time::Duration;

use common::*;
use pacer_media::{Prompt, SupervisorMode};

const SILENCE_U: u8 = 0xFF;

/// The agent's phone must see one stream: one SSRC, sequence +1 every packet, timestamp
/// advancing with real time, across silence, customer 1, a re-point, customer 2, silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_pointing_gives_the_agent_one_continuous_stream() {
    let engine = engine(21000);
    let agent_phone = RawPhone::new(0xA, 100, 1_000).await;
    let c1 = RawPhone::new(0xC1, 60_000, 4_000_000_000).await;
    let c2 = RawPhone::new(0xC2, 5, 77).await;
    let agent = engine.rtp_endpoint().await.unwrap();
    let leg1 = engine.rtp_endpoint().await.unwrap();
    let leg2 = engine.rtp_endpoint().await.unwrap();
    agent.answer_offer(&agent_phone.offer()).unwrap();
    leg1.answer_offer(&c1.offer()).unwrap();
    leg2.answer_offer(&c2.offer()).unwrap();
    agent_phone.start_sending(agent.local_addr().unwrap(), 0, 0x55);
    c1.start_sending(leg1.local_addr().unwrap(), 0, 0x11);
    c2.start_sending(leg2.local_addr().unwrap(), 0, 0x22);
    let seen_with = |b: u8| {
        let p = &agent_phone;
        move || p.seen.lock().unwrap().iter().filter(|s| s.first_byte == b).count() >= 25
    };
    assert!(eventually(Duration::from_secs(3), seen_with(SILENCE_U)).await, "no silence before the first call");
    let b1 = engine.bridge(&leg1, &agent).unwrap();
    assert!(eventually(Duration::from_secs(3), seen_with(0x11)).await, "customer 1 not heard");
    // Customer 1 hears the agent.
    assert!(eventually(Duration::from_secs(3), || c1.seen.lock().unwrap().iter().filter(|s| s.first_byte == 0x55).count() >= 10).await);
    // Re-point straight to customer 2 (the old bridge ends by itself).
    let b2 = engine.bridge(&leg2, &agent).unwrap();
    assert!(eventually(Duration::from_secs(3), seen_with(0x22)).await, "customer 2 not heard");
    b2.end();
    drop(b1);
    let n = agent_phone.seen.lock().unwrap().len();
    assert!(eventually(Duration::from_secs(3), || agent_phone.seen.lock().unwrap().len() >= n + 25).await);
    let seen = agent_phone.take_seen();
    let ssrc = seen[0].ssrc;
    let mut kinds = vec![seen[0].first_byte];
    let mut max_gap = Duration::ZERO;
    for w in seen.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(b.ssrc, ssrc, "SSRC changed");
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence gap at {a:?} -> {b:?}");
        let dts = b.ts.wrapping_sub(a.ts);
        let dt_ms = b.at.duration_since(a.at).as_secs_f64() * 1000.0;
        assert!(dts >= 160, "timestamp went back or overlapped: {a:?} -> {b:?}");
        // The timestamp follows real time: never more than a frame or two off the clock.
        assert!((dts as f64 / 8.0 - dt_ms).abs() < 45.0 || dts == 160, "timestamp jump {dts} over {dt_ms:.1} ms");
        max_gap = max_gap.max(b.at.duration_since(a.at));
        if *kinds.last().unwrap() != b.first_byte {
            kinds.push(b.first_byte);
        }
    }
    // Silence, customer 1, customer 2, silence; never back and forth.
    assert_eq!(kinds, vec![SILENCE_U, 0x11, 0x22, SILENCE_U], "{kinds:x?}");
    assert!(max_gap < Duration::from_millis(60), "the agent heard a gap of {max_gap:?}");
    let st = agent.stats();
    assert!(st.packets_received > 50 && st.packets_lost == 0, "{st:?}");
    assert_eq!(st.remote, Some(agent_phone.addr()));
}

/// Two endpoints of one engine talk through a bridge (simulated carrier ⇄ trunk leg ⇄
/// agent leg ⇄ simulated agent), with µ-law on one side and A-law on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_audio_crosses_codecs_and_prompts_take_over() {
    let engine = engine(21100);
    let carrier = engine.rtp_endpoint().await.unwrap();
    let trunk = engine.rtp_endpoint().await.unwrap();
    let agent = engine.rtp_endpoint().await.unwrap();
    let phone = engine.rtp_endpoint().await.unwrap();
    // The carrier speaks A-law only.
    let offer = carrier.local_offer().replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
    let answer = trunk.answer_offer(&offer).unwrap();
    assert!(answer.contains("RTP/AVP 8 101"), "{answer}");
    carrier.accept_answer(&answer).unwrap();
    connect(&phone, &agent);
    assert_eq!(agent.stats().codec, Some(pacer_media::Codec::Pcmu));
    assert_eq!(trunk.stats().codec, Some(pacer_media::Codec::Pcma));
    let _bridge = engine.bridge(&trunk, &agent).unwrap();
    let mut phone_hears = phone.tap();
    let mut carrier_hears = carrier.tap();
    let (p1, p2) = (carrier.clone(), phone.clone());
    let t1 = tokio::spawn(async move { p1.play(&Prompt::tone(1000.0, 8000)).await });
    let t2 = tokio::spawn(async move { p2.play(&Prompt::tone(400.0, 8000)).await });
    let heard = listen(&mut phone_hears, Duration::from_millis(300), Duration::from_millis(800)).await;
    assert!(has_tone(&heard, 1000.0) && !has_tone(&heard, 400.0), "agent side: {}", tone_power(&heard, 1000.0));
    let heard = listen(&mut carrier_hears, Duration::ZERO, Duration::from_millis(800)).await;
    assert!(has_tone(&heard, 400.0) && !has_tone(&heard, 1000.0), "customer side: {}", tone_power(&heard, 400.0));
    // A prompt on the trunk leg replaces what the bridge sends to the carrier.
    let trunk2 = trunk.clone();
    let hold = tokio::spawn(async move { trunk2.play(&Prompt::tone(700.0, 5000)).await });
    let heard = listen(&mut carrier_hears, Duration::from_millis(200), Duration::from_millis(600)).await;
    assert!(has_tone(&heard, 700.0) && !has_tone(&heard, 400.0), "hold music did not replace the agent");
    trunk.stop_playback();
    hold.await.unwrap().unwrap();
    let heard = listen(&mut carrier_hears, Duration::from_millis(200), Duration::from_millis(600)).await;
    assert!(has_tone(&heard, 400.0) && !has_tone(&heard, 700.0), "the agent did not come back after the prompt");
    t1.abort();
    t2.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_listen_whisper_barge() {
    let engine = engine(21200);
    let (carrier, trunk) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    let (phone, agent) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    let (sup_phone, sup) = (engine.rtp_endpoint().await.unwrap(), engine.rtp_endpoint().await.unwrap());
    connect(&carrier, &trunk);
    connect(&phone, &agent);
    connect(&sup_phone, &sup);
    let bridge = engine.bridge(&trunk, &agent).unwrap();
    let (cust_tone, agent_tone, sup_tone) = (1000.0, 400.0, 1700.0);
    let players: Vec<_> = [(carrier.clone(), cust_tone), (phone.clone(), agent_tone), (sup_phone.clone(), sup_tone)]
        .into_iter()
        .map(|(e, f)| tokio::spawn(async move { e.play(&Prompt::tone(f, 8000)).await }))
        .collect();
    let (mut c_tap, mut a_tap, mut s_tap) = (carrier.tap(), phone.tap(), sup_phone.tap());
    let window = |tap| async move {
        let mut tap = tap;
        let v = listen(&mut tap, Duration::from_millis(300), Duration::from_millis(700)).await;
        (tap, v)
    };
    for (mode, cust_hears_sup, agent_hears_sup) in
        [(SupervisorMode::Listen, false, false), (SupervisorMode::Whisper, false, true), (SupervisorMode::Barge, true, true)]
    {
        bridge.add_supervisor(&sup, mode).unwrap();
        let ((t1, c), (t2, a), (t3, s)) = tokio::join!(window(c_tap), window(a_tap), window(s_tap));
        (c_tap, a_tap, s_tap) = (t1, t2, t3);
        assert!(has_tone(&s, cust_tone) && has_tone(&s, agent_tone), "{mode:?}: supervisor hears both");
        assert!(!has_tone(&s, sup_tone), "{mode:?}: supervisor does not hear themself");
        assert!(has_tone(&c, agent_tone) && !has_tone(&c, cust_tone), "{mode:?}: customer hears the agent");
        assert_eq!(has_tone(&c, sup_tone), cust_hears_sup, "{mode:?}: customer and supervisor");
        assert!(has_tone(&a, cust_tone) && !has_tone(&a, agent_tone), "{mode:?}: agent hears the customer");
        assert_eq!(has_tone(&a, sup_tone), agent_hears_sup, "{mode:?}: agent and supervisor");
    }
    bridge.remove_supervisor();
    let ((_, c), (_, a), (_, s)) = tokio::join!(window(c_tap), window(a_tap), window(s_tap));
    assert!(!has_tone(&c, sup_tone) && !has_tone(&a, sup_tone));
    assert!(!has_tone(&s, cust_tone) && !has_tone(&s, agent_tone), "a removed supervisor hears silence");
    for p in players {
        p.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_reasons() {
    let engine = engine_with(21300, |c| c.rtp_port_max = 21303);
    let a = engine.rtp_endpoint().await.unwrap();
    let b = engine.rtp_endpoint().await.unwrap();
    let err = engine.rtp_endpoint().await.unwrap_err().to_string();
    assert!(err.contains("21300..=21303"), "{err}");
    assert!(a.accept_answer("garbage").unwrap_err().to_string().contains("SDP"));
    assert!(engine.bridge(&a, &a).is_err());
    let e = a.send_dtmf("12").unwrap_err().to_string();
    assert!(e.contains("no negotiated media"), "{e}");
    connect(&a, &b);
    let e = a.send_dtmf("1x").unwrap_err().to_string();
    assert!(e.contains("'x'"), "{e}");
    let bridge = engine.bridge(&a, &b).unwrap();
    let e = bridge.record("/nonexistent-dir/x.wav").unwrap_err().to_string();
    assert!(e.contains("/nonexistent-dir/x.wav"), "{e}");
    assert!(bridge.add_supervisor(&a, SupervisorMode::Listen).is_err());
    // Closing frees the port pair for the next leg.
    drop(bridge);
    a.close();
    assert!(a.send_dtmf("1").is_err());
    let c = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(e) = engine.rtp_endpoint().await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the closed leg's ports come back");
    assert_eq!(c.local_addr().unwrap().port(), 21300);
}
