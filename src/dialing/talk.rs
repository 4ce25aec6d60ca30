//! The conversation: an answered call finds an agent through the ACD (or is abandoned to
//! the safe-harbor message), is bridged to the agent's persistent leg with a recording and
//! a screen pop, and lives through hold, mute, DTMF, transfers and supervisors until
//! either side hangs up.

use std::sync::Arc;
use std::time::Duration;

use pacer_acd::{AgentId, CallId, CallOffer};
use pacer_dialer::hopper::Claimed;
use pacer_dialer::outcome::CallbackRequest;
use pacer_dialer::pacing::CallStage;
use pacer_dialer::store::{Campaign, CdrQuery, now_ms};
use pacer_media::{Bridge, Endpoint, Prompt};
use pacer_sip::{CallEvent, HangupBy, OriginateRequest};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::Ctx;
use super::campaign::{CampaignCtx, Report};
use super::line::{Line, drain, wait_hangup};
use crate::cti::desk::{AgentCommand, CallSummary};
use crate::cti::protocol::{AttemptInfo, CampaignInfo, LeadInfo, ScreenPop, ServerMsg, fill_script};
use super::call::{Record, trunks_of};
use super::settle::{apply_disposition, event};

/// Longest a transferred call waits for the other agent, or a number to answer.
pub(super) const TRANSFER_WAIT: Duration = Duration::from_secs(30);

/// How an answered call looks for an agent.
pub(super) struct Routing {
    /// Higher is served first (inbound callers before outbound calls still ringing).
    pub priority: i32,
    /// How long the call may wait for an agent: the connect limit for outbound calls
    /// (then it is abandoned to the safe-harbor message), longer for inbound callers.
    pub wait: Duration,
    pub inbound: bool,
}

pub(super) fn report(camp: Option<&CampaignCtx>, r: Report) {
    if let Some(k) = camp {
        k.reports.send(r).ok();
    }
}

pub(super) fn track(camp: Option<&CampaignCtx>, id: CallId, stage: Option<CallStage>) {
    if let Some(k) = camp {
        match stage {
            Some(s) => k.in_flight.stage(id, s),
            None => k.in_flight.remove(id),
        }
    }
}

/// From "a person is on the line" to the end of the customer's leg: an agent through the
/// ACD, the bridge to their persistent leg, the screen pop and the conversation. Returns
/// the agent and their command channel when the call was connected (wrap-up follows).
#[allow(clippy::too_many_arguments)]
pub(super) async fn connect(
    ctx: &Arc<Ctx>,
    camp: Option<&CampaignCtx>,
    c: &Campaign,
    claimed: &Claimed,
    id: CallId,
    leg: &Endpoint,
    mut call: &mut Line,
    rec: &mut Record,
    machine: bool,
    routing: Routing,
) -> Option<(AgentId, mpsc::UnboundedReceiver<AgentCommand>)> {
    let s = &c.settings;
    track(camp, id, Some(CallStage::Waiting));
    let verdict_at = Instant::now();
    let offer = CallOffer {
        id,
        campaign: Some(c.id as u64),
        skill: s.skills.first().cloned(),
        owner: claimed.reserved_for_agent.or(claimed.lead.owner_agent_id).map(|a| a as u64),
        priority: routing.priority,
    };
    let offered = ctx.acd.offer(offer);
    // An inbound caller waits with music; an outbound call's short wait is silent.
    let masked = routing.inbound.then(|| mask(leg, None, Some(ctx.hold_music.clone()))).flatten();
    let agent = tokio::select! {
        a = ctx.acd.wait_agent(id, offered, verdict_at + routing.wait) => a,
        ended = wait_hangup(&mut call) => {
            // The customer left while waiting: nobody to connect, not an abandon by us.
            ctx.acd.withdraw(id);
            rec.out.outcome = if machine { "machine" } else { "answered" }.into();
            rec.out.notes = Some(format!("customer hung up before an agent was connected ({ended:?})"));
            report(camp, Report::Human { abandoned: false });
            return None;
        }
    };
    mask(leg, masked, None);
    let Some(agent) = agent else {
        return abandon(ctx, camp, c, id, leg, call, rec, machine, routing.inbound).await;
    };
    let channel = mpsc::unbounded_channel();
    converse(ctx, camp, c, claimed, id, leg, call, rec, machine, agent, routing.inbound, verdict_at, channel).await
}

/// The agent is chosen (by the ACD, or they dialled the call themselves): the customer's
/// leg is bridged to the agent's persistent leg, recorded, popped on the desktop, and the
/// conversation runs until either side hangs up. `channel` carries the agent's commands
/// for this call (created by the caller so that a dialling agent can hang up early).
#[allow(clippy::too_many_arguments)]
pub(super) async fn converse(
    ctx: &Arc<Ctx>,
    camp: Option<&CampaignCtx>,
    c: &Campaign,
    claimed: &Claimed,
    id: CallId,
    leg: &Endpoint,
    mut call: &mut Line,
    rec: &mut Record,
    machine: bool,
    agent: AgentId,
    inbound: bool,
    verdict_at: Instant,
    channel: (mpsc::UnboundedSender<AgentCommand>, mpsc::UnboundedReceiver<AgentCommand>),
) -> Option<(AgentId, mpsc::UnboundedReceiver<AgentCommand>)> {
    let s = &c.settings;
    let routing = Routing { priority: 0, wait: Duration::ZERO, inbound };
    let mut masked = None;
    // Connect: the agent's persistent leg is re-pointed to this customer.
    let bridged = ctx.desks.leg(agent).ok_or("agent has no media leg".to_string()).and_then(|a| ctx.media.bridge(leg, &a).map_err(|e| e.to_string()));
    let bridge = match bridged {
        Ok(b) => b,
        Err(e) => {
            warn!(agent, error = %e, "cannot connect the agent; the call is abandoned");
            ctx.acd.withdraw(id);
            return abandon(ctx, camp, c, id, leg, call, rec, machine, routing.inbound).await;
        }
    };
    if let Err(e) = ctx.acd.connected(id) {
        warn!(agent, error = %e, "ACD refused the connection");
    }
    ctx.metrics.connect_seconds.with_label_values(&[&c.name]).observe(verdict_at.elapsed().as_secs_f64());
    track(camp, id, None);
    if !routing.inbound {
        report(camp, Report::Human { abandoned: false });
    }
    let connected = Instant::now();
    rec.out.connected_at = Some(now_ms());
    rec.out.agent_id = Some(agent as i64);
    rec.out.outcome = "answered".into();
    let (cmd_tx, mut cmds) = channel;
    let summary = |connected_at: i64| CallSummary { campaign_id: c.id, campaign: c.name.clone(), phone: claimed.number.clone(), connected_at };
    ctx.desks.bind_call(agent, id, cmd_tx, summary(rec.out.connected_at.unwrap_or_default()));
    let mut recording = start_recording(ctx, c, &bridge, rec);
    let (mut bridge, mut agent) = (bridge, agent);
    ctx.desks.pop(agent, id, ServerMsg::Call(Box::new(screen_pop(ctx, c, claimed, id, machine, rec.out.connected_at.unwrap_or_default()).await)));
    ctx.metrics.in_flight.with_label_values(&[&c.name, "connected"]).inc();
    // The conversation, until either side hangs up.
    let by = loop {
        tokio::select! {
            ev = call.next_event() => match ev {
                Some(CallEvent::HungUp { by: HangupBy::Remote }) | None => break "customer",
                Some(CallEvent::HungUp { by: HangupBy::Local }) => break "agent",
                Some(_) => {}
            },
            cmd = cmds.recv() => match cmd {
                Some(AgentCommand::Hangup) | None => {
                    call.hangup().await;
                    drain(&mut call).await;
                    break "agent";
                }
                // A prompt on the customer's leg replaces what the bridge sends it (the
                // agent's voice): hold plays music, mute plays silence.
                Some(AgentCommand::Hold(on)) => {
                    if let Some(r) = recording.as_ref() {
                        // Nothing said on hold is kept.
                        if on { r.pause() } else { r.resume() }
                    }
                    masked = mask(leg, masked, on.then(|| ctx.hold_music.clone()));
                }
                Some(AgentCommand::Mute(on)) => masked = mask(leg, masked, on.then(|| ctx.silence.clone())),
                Some(AgentCommand::Dtmf(d)) => {
                    if let Err(e) = leg.send_dtmf(&d) {
                        ctx.desks.send(agent, ServerMsg::Error { code: "dtmf".into(), message: e.to_string() });
                    }
                }
                Some(AgentCommand::Transfer { agent: Some(name), .. }) => {
                    // Blind transfer to another agent: this agent leaves (wrap-up; the new
                    // agent dispositions), the customer hears hold music until the other
                    // agent's leg takes the call.
                    masked = mask(leg, masked, Some(ctx.hold_music.clone()));
                    if let Some(r) = recording.take() {
                        if let Ok(path) = r.stop().await { rec.out.recording_path.get_or_insert(path.display().to_string()); }
                    }
                    bridge.end();
                    let _ = ctx.acd.hangup(id, Duration::from_secs(u64::from(s.wrap_up_s)));
                    ctx.desks.unbind_call(agent, id);
                    ctx.desks.send(agent, ServerMsg::CallEnded { call_id: id.to_string(), by: "transfer".into(), talk_s: connected.elapsed().as_secs_f64() });
                    let target = ctx.desks.agent_by_username(&name);
                    let offer = CallOffer { id, campaign: Some(c.id as u64), skill: s.skills.first().cloned(), owner: target, priority: 10 };
                    let offered = ctx.acd.offer(offer);
                    let got = tokio::select! {
                        a = ctx.acd.wait_agent(id, offered, Instant::now() + TRANSFER_WAIT) => a,
                        _ = wait_hangup(&mut call) => { ctx.acd.withdraw(id); break "customer" }
                    };
                    let next = got.and_then(|a| ctx.desks.leg(a).map(|l| (a, l))).and_then(|(a, l)| ctx.media.bridge(leg, &l).ok().map(|b| (a, b)));
                    let Some((new_agent, b)) = next else {
                        warn!(target = %name, "nobody took the transferred call; it ends");
                        ctx.acd.withdraw(id);
                        rec.out.notes = Some(format!("transfer to {name} failed: no agent in {}s", TRANSFER_WAIT.as_secs()));
                        call.hangup().await;
                        drain(&mut call).await;
                        break "system";
                    };
                    masked = mask(leg, masked, None);
                    let _ = ctx.acd.connected(id);
                    let (tx, rx) = mpsc::unbounded_channel();
                    ctx.desks.bind_call(new_agent, id, tx, summary(now_ms()));
                    (agent, cmds, bridge) = (new_agent, rx, b);
                    rec.out.agent_id = Some(agent as i64);
                    rec.out.notes = Some(format!("transferred to {}", ctx.desks.username(agent).unwrap_or_default()));
                    recording = start_recording(ctx, c, &bridge, rec);
                    ctx.desks.pop(agent, id, ServerMsg::Call(Box::new(screen_pop(ctx, c, claimed, id, machine, now_ms()).await)));
                }
                Some(AgentCommand::Transfer { number: Some(number), .. }) => {
                    // Blind transfer to a number: a new leg on the campaign's trunk takes the
                    // agent's place; the agent wraps up and dispositions as usual.
                    masked = mask(leg, masked, Some(ctx.hold_music.clone()));
                    match transfer_out(ctx, c, leg, &mut call, &number).await {
                        Ok(Some((far, far_leg, b))) => {
                            masked = mask(leg, masked, None);
                            if let Some(r) = recording.take() {
                                if let Ok(path) = r.stop().await { rec.out.recording_path.get_or_insert(path.display().to_string()); }
                            }
                            bridge.end();
                            rec.out.notes = Some(format!("transferred to {number}"));
                            ctx.desks.send(agent, ServerMsg::CallEnded { call_id: id.to_string(), by: "transfer".into(), talk_s: connected.elapsed().as_secs_f64() });
                            // The two outside parties talk until one of them hangs up.
                            let mut far = far;
                            tokio::select! {
                                _ = wait_hangup(&mut call) => far.hangup().await,
                                _ = wait_hangup(&mut far) => call.hangup().await,
                            }
                            drain(&mut call).await;
                            drain(&mut far).await;
                            b.end();
                            far_leg.close();
                            bridge = b;
                            break "transfer";
                        }
                        Ok(None) => break "customer",
                        Err(e) => {
                            masked = mask(leg, masked, None);
                            ctx.desks.send(agent, ServerMsg::Error { code: "transfer_failed".into(), message: e });
                        }
                    }
                }
                Some(AgentCommand::Transfer { .. }) => {
                    ctx.desks.send(agent, ServerMsg::Error { code: "bad_transfer".into(), message: "give an agent or a number".into() });
                }
                Some(AgentCommand::Disposition(d)) => {
                    // Dispositioned during the call: kept, applied when the call ends.
                    apply_disposition(rec, d);
                }
                Some(AgentCommand::Supervise(sup)) => match sup {
                    Some((sleg, mode)) => if let Err(e) = bridge.add_supervisor(&sleg, mode) { warn!(agent, error = %e, "supervisor cannot join the call") },
                    None => bridge.remove_supervisor(),
                },
                Some(AgentCommand::NewLeg(new)) => {
                    // The agent's desktop came back with a new leg: the call moves to it.
                    // The recording belonged to the old bridge and ends with it.
                    if let Some(r) = recording.take() {
                        if let Ok(path) = r.stop().await { rec.out.recording_path = Some(path.display().to_string()); }
                    }
                    bridge.end();
                    match ctx.media.bridge(leg, &new) {
                        Ok(b) => bridge = b,
                        Err(e) => warn!(agent, error = %e, "cannot move the call to the agent's new media leg"),
                    }
                }
            }
        }
    };
    if let Some(t) = masked {
        t.cancel();
    }
    ctx.metrics.in_flight.with_label_values(&[&c.name, "connected"]).dec();
    let talk = connected.elapsed();
    rec.out.talk_s = talk.as_secs_f64();
    if let Some(r) = recording {
        match r.stop().await {
            Ok(path) => rec.out.recording_path = Some(path.display().to_string()),
            Err(e) => {
                ctx.metrics.recording_failures.with_label_values(&[&c.name]).inc();
                warn!(error = %e, "recording could not be finished");
            }
        }
    }
    bridge.end();
    if !routing.inbound {
        report(camp, Report::Talk(rec.out.talk_s));
    }
    let mut wrap = Duration::from_secs(u64::from(s.wrap_up_s));
    if !ctx.desks.online(agent) {
        // Nobody is at the desktop to wrap up: the agent goes not ready as the call ends,
        // never ready for a next call they cannot hear.
        if let Err(e) = ctx.acd.force(agent, pacer_acd::AgentState::NotReady(pacer_acd::NotReadyReason::Disconnected)) {
            warn!(agent, error = %e, "cannot put the disconnected agent not ready");
        }
        wrap = Duration::ZERO;
    }
    if let Err(e) = ctx.acd.hangup(id, wrap) {
        warn!(agent, error = %e, "ACD refused the hang-up");
    }
    ctx.desks.send(agent, ServerMsg::CallEnded { call_id: id.to_string(), by: by.into(), talk_s: rec.out.talk_s });
    let mut ended = rec.out.clone();
    ended.ended_at = Some(now_ms());
    ctx.webhooks.emit("call.ended", &event(ctx, c, &ended, &claimed.lead, None, "call.ended")).await;
    Some((agent, cmds))
}

/// No agent in time: the safe-harbor message plays, the call ends, it counts abandoned.
#[allow(clippy::too_many_arguments)]
pub(super) async fn abandon(
    ctx: &Ctx,
    camp: Option<&CampaignCtx>,
    c: &Campaign,
    id: CallId,
    leg: &Endpoint,
    call: &mut Line,
    rec: &mut Record,
    machine: bool,
    inbound: bool,
) -> Option<(AgentId, mpsc::UnboundedReceiver<AgentCommand>)> {
    track(camp, id, None);
    if inbound {
        // An inbound caller nobody could take: the message, and a callback soon.
        rec.out.outcome = "no_answer".into();
        rec.out.notes = Some("no agent took the inbound call; a callback is scheduled".into());
        rec.out.callback = Some(CallbackRequest { at_local: (chrono::Utc::now() + chrono::Duration::minutes(10)).with_timezone(&ctx.centre_zone).naive_local(), agent_only: false, notes: "inbound caller nobody could take".into() });
    } else {
        rec.out.abandoned = !machine;
        rec.out.outcome = if machine { "machine" } else { "abandoned" }.into();
        if !machine {
            report(camp, Report::Human { abandoned: true });
        }
    }
    let prompt = ctx.prompt(&c.settings.safe_harbor_file);
    tokio::select! {
        r = leg.play(&prompt) => if let Err(e) = r { warn!(error = %e, "safe-harbor message could not be played") },
        _ = wait_hangup(call) => return None,
    }
    call.hangup().await;
    drain(call).await;
    None
}

pub(super) fn start_recording(ctx: &Ctx, c: &Campaign, bridge: &Bridge, rec: &Record) -> Option<pacer_media::Recording> {
    let dir = ctx.recordings.as_ref()?;
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let path = dir.join(day).join(format!("c{}-l{}-{}.wav", c.id, rec.out.lead_id, rec.out.started_at));
    if let Some(parent) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            ctx.metrics.recording_failures.with_label_values(&[&c.name]).inc();
            warn!(error = %e, "cannot create the recordings directory");
            return None;
        }
    }
    match bridge.record(&path) {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.metrics.recording_failures.with_label_values(&[&c.name]).inc();
            warn!(error = %e, "cannot start the recording");
            None
        }
    }
}

/// What an agent sees of a lead before dialling it (preview): the screen pop's content.
pub async fn preview_pop(ctx: &Ctx, c: &Campaign, claimed: &Claimed) -> ScreenPop {
    screen_pop(ctx, c, claimed, 0, false, 0).await
}

pub(super) async fn screen_pop(ctx: &Ctx, c: &Campaign, claimed: &Claimed, id: CallId, machine: bool, connected_at: i64) -> ScreenPop {
    let l = &claimed.lead;
    let lead = LeadInfo { id: l.id, phone: claimed.number.clone(), name: l.name.clone(), time_zone: l.time_zone.clone(), fields: serde_json::Value::Object(l.fields.clone()) };
    let attempts = ctx
        .store
        .cdrs(&CdrQuery { phone: Some(claimed.number.clone()), campaign_id: Some(c.id), limit: Some(10), ..CdrQuery::default() })
        .await
        .map(|v| {
            v.into_iter()
                .filter(|a| a.lead_id == l.id)
                .map(|a| AttemptInfo { started_at: a.started_at, outcome: a.outcome, disposition: a.disposition, agent_id: a.agent_id })
                .collect()
        })
        .unwrap_or_default();
    ScreenPop {
        call_id: id.to_string(),
        campaign: CampaignInfo { id: c.id, name: c.name.clone() },
        script: fill_script(&c.settings.script, &lead),
        lead,
        attempts,
        connected_at,
        machine,
    }
}

/// Calls `number` on the campaign's trunk for a blind transfer and bridges the customer
/// to it once it answers. `Ok(None)`: the customer hung up meanwhile.
/// The number is normalised and checked like any other dialled number: a blind transfer
/// to a premium or international line is the classic way to make a hijacked call pay.
pub(super) async fn transfer_out(ctx: &Ctx, c: &Campaign, leg: &Endpoint, call: &mut Line, number: &str) -> Result<Option<(Line, Endpoint, Bridge)>, String> {
    if ctx.killed() {
        return Err("dialling is stopped by the kill switch".into());
    }
    let normalizer = pacer_dialer::phone::Normalizer::new(&ctx.config.dialer.default_country)?;
    let e164 = normalizer.normalize(number).map_err(|e| format!("transfer to {number:?}: {e}"))?.e164;
    ctx.screen(c, &e164).map_err(|r| format!("transfer refused: {r}"))?;
    let number = e164.as_str();
    let trunk = trunks_of(ctx, c).first().cloned().ok_or("no trunk for the transfer")?;
    let far_leg = ctx.media.rtp_endpoint().await.map_err(|e| e.to_string())?;
    let caller_id = c.settings.caller_id_for(number, 0);
    let req = OriginateRequest { trunk, number: number.to_string(), caller_id, sdp_offer: far_leg.local_offer().into_bytes(), ring_timeout: TRANSFER_WAIT };
    let mut far = Line::Out(ctx.sip.originate(req).map_err(|e| e.to_string())?);
    loop {
        tokio::select! {
            ev = far.next_event() => match ev {
                Some(CallEvent::Answered(sdp)) => {
                    far_leg.accept_answer(&String::from_utf8_lossy(&sdp)).map_err(|e| e.to_string())?;
                    let b = ctx.media.bridge(leg, &far_leg).map_err(|e| e.to_string())?;
                    return Ok(Some((far, far_leg, b)));
                }
                Some(CallEvent::Failed { reason, .. }) => {
                    far_leg.close();
                    return Err(format!("{number} did not answer: {reason}"));
                }
                Some(CallEvent::HungUp { .. }) | None => {
                    far_leg.close();
                    return Err(format!("{number}: the call ended"));
                }
                Some(_) => {}
            },
            _ = wait_hangup(call) => {
                far.hangup().await;
                far_leg.close();
                return Ok(None);
            }
        }
    }
}

/// Replaces what the customer hears by `prompt` in a loop (or ends the one playing when
/// `None`). Returns the token that ends the new loop.
pub(super) fn mask(leg: &Endpoint, current: Option<tokio_util::sync::CancellationToken>, prompt: Option<Prompt>) -> Option<tokio_util::sync::CancellationToken> {
    if let Some(t) = current {
        t.cancel();
    }
    let prompt = prompt?;
    let token = tokio_util::sync::CancellationToken::new();
    let (l, t) = (leg.clone(), token.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = t.cancelled() => { l.stop_playback(); return; }
                r = l.play(&prompt) => if r.is_err() { return },
            }
        }
    });
    Some(token)
}
