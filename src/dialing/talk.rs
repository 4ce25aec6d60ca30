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
use crate::cti::desk::{AgentCommand, CallSummary, TransferTo};
use crate::cti::protocol::{AttemptInfo, CampaignInfo, LeadInfo, ScreenPop, ServerMsg, fill_script};
use super::call::{Record, trunks_of};
use super::settle::{AgentPart, apply_disposition, event, wrap_up};

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
) -> Option<AgentPart> {
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
) -> Option<AgentPart> {
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
    // A blind transfer to a number: the outside leg, its media and its bridge.
    let mut outside: Option<(Line, Endpoint, Bridge)> = None;
    // Between a transfer's hand-over and the next agent taking the call, `agent` has left.
    let mut handed = false;
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
                Some(AgentCommand::Transfer(TransferTo::Number(number))) => {
                    // Blind transfer to a number: a new leg on the campaign's trunk takes the
                    // agent's place; the agent wraps up and dispositions at once, while the
                    // two outside parties talk on.
                    masked = mask(leg, masked, Some(ctx.hold_music.clone()));
                    match transfer_out(ctx, c, leg, &mut call, &number).await {
                        Ok(Some((far, far_leg, b, e164))) => {
                            masked = mask(leg, masked, None);
                            rec.out.notes = Some(format!("transferred to {e164}"));
                            outside = Some((far, far_leg, b));
                            break "transfer";
                        }
                        Ok(None) => break "customer",
                        Err(e) => {
                            masked = mask(leg, masked, None);
                            ctx.desks.send(agent, ServerMsg::Error { code: "transfer_failed".into(), message: e });
                        }
                    }
                }
                Some(AgentCommand::Transfer(to)) => {
                    // Blind transfer to another agent or a queue: this agent leaves (wrap-up;
                    // the new agent dispositions), the customer hears hold music until the
                    // ACD gives the call to an agent of the target.
                    let target = match handover_target(ctx, c, agent, &to).await {
                        Ok(t) => t,
                        Err(e) => {
                            ctx.desks.send(agent, ServerMsg::Error { code: "transfer_failed".into(), message: e });
                            continue;
                        }
                    };
                    masked = mask(leg, masked, Some(ctx.hold_music.clone()));
                    if let Some(r) = recording.take() {
                        if let Ok(path) = r.stop().await { rec.out.recording_path.get_or_insert(path.display().to_string()); }
                    }
                    bridge.end();
                    let _ = ctx.acd.hangup(id, Duration::from_secs(u64::from(s.wrap_up_s)));
                    ctx.desks.unbind_call(agent, id);
                    ctx.desks.send(agent, ServerMsg::CallEnded { call_id: id.to_string(), by: "transfer".into(), talk_s: connected.elapsed().as_secs_f64(), handed_over: true });
                    handed = true;
                    let offered = ctx.acd.offer(CallOffer { id, ..target.offer });
                    let got = tokio::select! {
                        a = ctx.acd.wait_agent(id, offered, Instant::now() + TRANSFER_WAIT) => a,
                        _ = wait_hangup(&mut call) => { ctx.acd.withdraw(id); break "customer" }
                    };
                    let next = got.and_then(|a| ctx.desks.leg(a).map(|l| (a, l))).and_then(|(a, l)| ctx.media.bridge(leg, &l).ok().map(|b| (a, b)));
                    let Some((new_agent, b)) = next else {
                        warn!(target = %target.label, "nobody took the transferred call; it ends");
                        ctx.acd.withdraw(id);
                        rec.out.notes = Some(format!("transfer to {} failed: no agent in {}s", target.label, TRANSFER_WAIT.as_secs()));
                        call.hangup().await;
                        drain(&mut call).await;
                        break "system";
                    };
                    masked = mask(leg, masked, None);
                    let _ = ctx.acd.connected(id);
                    let (tx, rx) = mpsc::unbounded_channel();
                    ctx.desks.bind_call(new_agent, id, tx, summary(now_ms()));
                    (agent, cmds, bridge, handed) = (new_agent, rx, b, false);
                    rec.out.agent_id = Some(agent as i64);
                    rec.out.notes = Some(format!("transferred to {} ({})", ctx.desks.username(agent).unwrap_or_default(), target.label));
                    recording = start_recording(ctx, c, &bridge, rec);
                    ctx.desks.pop(agent, id, ServerMsg::Call(Box::new(screen_pop(ctx, c, claimed, id, machine, now_ms()).await)));
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
    if handed {
        // The call was on its way to another agent when it ended: the agent who handed
        // it over has wrapped up already, and nobody dispositions it.
        return None;
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
    ctx.desks.send(agent, ServerMsg::CallEnded { call_id: id.to_string(), by: by.into(), talk_s: rec.out.talk_s, handed_over: false });
    let Some((mut far, far_leg, far_bridge)) = outside else {
        let mut ended = rec.out.clone();
        ended.ended_at = Some(now_ms());
        ctx.webhooks.emit("call.ended", &event(ctx, c, &ended, &claimed.lead, None, "call.ended")).await;
        return Some(AgentPart::WrapUp(agent, cmds));
    };
    // Transferred to a number: the agent wraps up and dispositions now, and is free for
    // the next call, while the customer and the number talk until one of them hangs up.
    let outside_talk = async {
        tokio::select! {
            _ = wait_hangup(&mut call) => far.hangup().await,
            _ = wait_hangup(&mut far) => call.hangup().await,
        }
        drain(&mut call).await;
        drain(&mut far).await;
    };
    let ((), ()) = tokio::join!(
        async {
            wrap_up(ctx, camp, c, id, agent, cmds, rec).await;
            ctx.desks.send(agent, ServerMsg::DispositionSaved { call_id: id.to_string(), next: String::new() });
        },
        outside_talk
    );
    far_bridge.end();
    far_leg.close();
    let mut ended = rec.out.clone();
    ended.ended_at = Some(now_ms());
    ctx.webhooks.emit("call.ended", &event(ctx, c, &ended, &claimed.lead, None, "call.ended")).await;
    Some(AgentPart::Done(agent))
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
) -> Option<AgentPart> {
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

/// Whom a blind transfer to an agent or a queue is offered to, and its name for notes.
pub(super) struct Handover {
    /// The ACD offer (its call id is filled in by the caller).
    pub offer: CallOffer,
    pub label: String,
}

/// Checks a transfer target before the agent lets the customer go: an agent who is logged
/// in (not this one), or a queue (a campaign, by name) with someone logged in to take it.
/// An error leaves the customer with the agent.
pub(super) async fn handover_target(ctx: &Ctx, c: &Campaign, me: AgentId, to: &TransferTo) -> Result<Handover, String> {
    let logged_in = |a: AgentId| ctx.acd.state(a).is_some_and(|(s, _)| !matches!(s, pacer_acd::AgentState::LoggedOut));
    match to {
        TransferTo::Agent(name) => {
            let target = ctx.desks.agent_by_username(name).ok_or_else(|| format!("no agent {name:?}"))?;
            if target == me {
                return Err("the call is already yours".into());
            }
            if !logged_in(target) {
                return Err(format!("{name} is not logged in"));
            }
            let offer = CallOffer { id: 0, campaign: Some(c.id as u64), skill: c.settings.skills.first().cloned(), owner: Some(target), priority: 10 };
            Ok(Handover { offer, label: name.clone() })
        }
        TransferTo::Queue(name) => {
            let q = match ctx.store.campaign_by_name(name).await {
                Ok(q) => q,
                Err(pacer_dialer::store::StoreError::NotFound { .. }) => return Err(format!("no queue {name:?}")),
                Err(e) => return Err(format!("queue {name:?}: {e}")),
            };
            let mine = u32::from(ctx.acd.works(me, q.id as u64));
            if ctx.acd.view(Some(q.id as u64)).logged_in.saturating_sub(mine) == 0 {
                return Err(format!("nobody is logged in to queue {name}"));
            }
            let offer = CallOffer { id: 0, campaign: Some(q.id as u64), skill: q.settings.skills.first().cloned(), owner: None, priority: 10 };
            Ok(Handover { offer, label: format!("queue {}", q.name) })
        }
        TransferTo::Number(n) => Err(format!("{n} is a number, not an agent or a queue")),
    }
}

/// Calls `number` on the campaign's trunk for a blind transfer and bridges the customer
/// to it once it answers, with the number's E.164 form. `Ok(None)`: the customer hung up
/// meanwhile.
/// The number is normalised and checked like any other dialled number: a blind transfer
/// to a premium or international line is the classic way to make a hijacked call pay.
pub(super) async fn transfer_out(ctx: &Ctx, c: &Campaign, leg: &Endpoint, call: &mut Line, number: &str) -> Result<Option<(Line, Endpoint, Bridge, String)>, String> {
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
                    return Ok(Some((far, far_leg, b, number.to_string())));
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
