//! The call actor: one task per call, the only owner of the call's live state.
//!
//! claim → originate on a trunk with a media endpoint → progress → answer →
//! answering-machine detection → an agent through the ACD (bridged to the agent's
//! persistent leg, screen pop) or the safe-harbor message and an abandon, or the
//! campaign's machine action → hang-up → wrap-up and the agent's disposition → one
//! transaction for the attempt, CDR, recording path and lead → release.
//!
//! Every stage has a timer, and every failure (trunk refused, media port exhausted, agent
//! gone, database slow) still ends in an outcome that is written.

use std::sync::Arc;
use std::time::Duration;

use pacer_acd::{AgentId, CallId, CallOffer};
use pacer_dialer::hopper::Claimed;
use pacer_dialer::outcome::{CallOutcome, CallbackRequest};
use pacer_dialer::pacing::{CallStage, Outcome as PacingOutcome};
use pacer_dialer::settings::AmdAction;
use pacer_dialer::store::{Campaign, CdrQuery, StoreError, now_ms};
use pacer_media::amd::{AmdConfig, BeepDetector, Detector, VerdictKind};
use pacer_media::{Bridge, Endpoint, Prompt};
use pacer_sip::{CallEvent, HangupBy, OriginateRequest, Outcome as SipOutcome};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span, warn};

use super::Ctx;
use super::campaign::{CampaignCtx, Report};
use super::line::Line;
use crate::cti::desk::{AgentCommand, CallSummary, DispositionCmd};
use crate::cti::protocol::{AttemptInfo, CampaignInfo, LeadInfo, ScreenPop, ServerMsg, fill_script};

/// Longest a call may wait for the AMD verdict before it is treated as a person.
const AMD_DEADLINE: Duration = Duration::from_secs(4);
/// Longest a machine's greeting may last before the message is left without a beep.
const BEEP_WAIT: Duration = Duration::from_secs(30);
/// Longest a transferred call waits for the other agent, or a number to answer.
const TRANSFER_WAIT: Duration = Duration::from_secs(30);
/// Time an agent has past the wrap-up to disposition before the system does.
const DISPOSITION_GRACE: Duration = Duration::from_secs(30);

/// The trunks a campaign dials on: its own list, else the first configured trunk.
pub fn trunks_of(ctx: &Ctx, c: &Campaign) -> Vec<String> {
    if c.settings.trunks.is_empty() { ctx.config.trunks.first().map(|t| vec![t.name.clone()]).unwrap_or_default() } else { c.settings.trunks.clone() }
}

/// The system disposition of a SIP failure.
fn failure_code(o: SipOutcome) -> &'static str {
    match o {
        SipOutcome::Busy => "busy",
        SipOutcome::NoAnswer | SipOutcome::Cancelled => "no_answer",
        SipOutcome::InvalidNumber => "invalid_number",
        SipOutcome::Congestion | SipOutcome::Rejected | SipOutcome::NetworkFailure => "congestion",
    }
}

/// Everything the actor learns about its call, turned into the CDR at the end.
pub(super) struct Record {
    pub(super) out: CallOutcome,
    /// Lead fields the agent edited on the call panel, merged into the lead at the end.
    edited_fields: Option<serde_json::Map<String, serde_json::Value>>,
    dialled: Instant,
    answered: Option<Instant>,
}

impl Record {
    pub(super) fn new(out: CallOutcome) -> Record {
        Record { out, dialled: Instant::now(), answered: None, edited_fields: None }
    }

    fn secs_since_dial(&self) -> f64 {
        self.dialled.elapsed().as_secs_f64()
    }
}

pub async fn run(ctx: Arc<Ctx>, camp: Arc<CampaignCtx>, claimed: Claimed, id: CallId) {
    let c = camp.campaign();
    let span = info_span!("call", call = id, lead = claimed.lead.id, campaign = %c.name);
    async move {
        let mut rec = Record::new(CallOutcome { lead_id: claimed.lead.id, owner: ctx.node.clone(), phone: claimed.number.clone(), started_at: now_ms(), ..CallOutcome::default() });
        if let Err(e) = ctx.hopper.mark_dialling(claimed.lead.id, &ctx.node, now_ms()).await {
            // The lease was lost between claim and dial (a slow node): do not dial a lead
            // another node may hold now.
            warn!(error = %e, "lead left the hopper before its call started; not dialled");
            camp.in_flight.remove(id);
            return;
        }
        let leg = match ctx.media.rtp_endpoint().await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "no media endpoint for the call");
                rec.out.outcome = "congestion".into();
                rec.out.notes = Some(format!("not dialled: {e}"));
                camp.reports.send(Report::Outcome(PacingOutcome::Failed { after_s: 0.0 })).ok();
                settle(&ctx, Some(&camp), &c, id, rec, None, &claimed.lead).await;
                return;
            }
        };
        let lease = tokio::spawn(keep_lease(ctx.clone(), claimed.lead.id));
        let agent = drive(&ctx, &camp, &c, &claimed, id, &leg, &mut rec).await;
        lease.abort();
        leg.close();
        settle(&ctx, Some(&camp), &c, id, rec, agent, &claimed.lead).await;
    }
    .instrument(span)
    .await
}

/// Renews the lead's lease while the call lasts.
async fn keep_lease(ctx: Arc<Ctx>, lead: i64) {
    let every = (ctx.hopper.lease() / 3).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        match ctx.hopper.renew_lease(lead, &ctx.node, now_ms()).await {
            Ok(true) => {}
            Ok(false) => warn!("the lead's lease was lost while its call goes on"),
            Err(e) => warn!(error = %e, "cannot renew the lead's lease"),
        }
    }
}

/// From originate to the end of the customer's leg. Returns the agent and their command
/// channel when the call was connected to one (wrap-up follows).
async fn drive(
    ctx: &Arc<Ctx>,
    camp: &Arc<CampaignCtx>,
    c: &Campaign,
    claimed: &Claimed,
    id: CallId,
    leg: &Endpoint,
    rec: &mut Record,
) -> Option<(AgentId, mpsc::UnboundedReceiver<AgentCommand>)> {
    let s = &c.settings;
    let trunks = trunks_of(ctx, c);
    let Some(trunk) = trunks.first().cloned() else {
        rec.out.outcome = "congestion".into();
        rec.out.notes = Some("no trunk configured".into());
        camp.reports.send(Report::Outcome(PacingOutcome::Failed { after_s: 0.0 })).ok();
        return None;
    };
    let req = OriginateRequest {
        trunk,
        number: claimed.number.clone(),
        caller_id: claimed.caller_id.clone(),
        sdp_offer: leg.local_offer().into_bytes(),
        ring_timeout: Duration::from_secs(u64::from(s.ring_timeout_s.max(15))),
    };
    let mut call = match ctx.sip.originate(req) {
        Ok(h) => Line::Out(h),
        Err(e) => {
            warn!(error = %e, "cannot originate");
            rec.out.outcome = "invalid_number".into();
            rec.out.notes = Some(e.to_string());
            camp.reports.send(Report::Outcome(PacingOutcome::Failed { after_s: 0.0 })).ok();
            return None;
        }
    };
    // Progress until answer or failure. A carrier that never sends a final response (not
    // even to our CANCEL) must not hold the lead for ever: past the ring timeout and the
    // SIP transaction timeout (64·T1) the call is given up.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(u64::from(s.ring_timeout_s.max(15)) + 40);
    loop {
        let ev = match tokio::time::timeout_at(give_up, call.next_event()).await {
            Ok(ev) => ev,
            Err(_) => {
                warn!("no final response from the carrier; the call is given up");
                call.hangup().await;
                rec.out.outcome = "no_answer".into();
                rec.out.notes = Some("no final response from the carrier".into());
                camp.reports.send(Report::Outcome(PacingOutcome::NoAnswer { after_s: rec.secs_since_dial() })).ok();
                return None;
            }
        };
        match ev {
            Some(CallEvent::Dialing { trunk, call_id }) => {
                rec.out.trunk = Some(trunk);
                rec.out.call_id = Some(call_id);
            }
            Some(CallEvent::Trying | CallEvent::Ringing) => {}
            Some(CallEvent::EarlyMedia(sdp)) => {
                // Ring-back and announcements come on the early dialog's media.
                if let Err(e) = leg.accept_answer(&String::from_utf8_lossy(&sdp)) {
                    debug!(error = %e, "early media SDP not usable");
                }
            }
            Some(CallEvent::Answered(sdp)) => {
                if let Err(e) = leg.accept_answer(&String::from_utf8_lossy(&sdp)) {
                    warn!(error = %e, "answer SDP not usable; hanging up");
                    call.hangup().await;
                    rec.out.outcome = "congestion".into();
                    rec.out.notes = Some(format!("bad answer SDP: {e}"));
                    rec.out.answered_at = Some(now_ms());
                    drain(&mut call).await;
                    camp.reports.send(Report::Outcome(PacingOutcome::Failed { after_s: rec.secs_since_dial() })).ok();
                    return None;
                }
                rec.answered = Some(Instant::now());
                rec.out.answered_at = Some(now_ms());
                break;
            }
            Some(CallEvent::Failed { status, reason, q850, outcome }) => {
                rec.out.sip_status = status.map(i64::from);
                rec.out.q850_cause = q850.map(i64::from);
                rec.out.outcome = failure_code(outcome).into();
                rec.out.notes = Some(reason);
                let after_s = rec.secs_since_dial();
                let o = if outcome == SipOutcome::NoAnswer { PacingOutcome::NoAnswer { after_s } } else { PacingOutcome::Failed { after_s } };
                camp.reports.send(Report::Outcome(o)).ok();
                return None;
            }
            Some(CallEvent::HungUp { .. }) | None => {
                rec.out.outcome = "congestion".into();
                rec.out.notes = Some("call ended without an answer or a final response".into());
                camp.reports.send(Report::Outcome(PacingOutcome::Failed { after_s: rec.secs_since_dial() })).ok();
                return None;
            }
        }
    }
    let ring_s = rec.secs_since_dial();
    camp.in_flight.stage(id, CallStage::Detecting);
    // Answering-machine detection on the first seconds of the customer's audio.
    let (machine, verdict_s) = if s.amd.enabled {
        match detect(ctx, c, leg, &mut call).await {
            Detected::Hangup => {
                rec.out.outcome = "no_answer".into();
                rec.out.answered_by = Some("unknown".into());
                rec.out.notes = Some("hung up during detection".into());
                camp.reports.send(Report::Outcome(PacingOutcome::Failed { after_s: rec.secs_since_dial() })).ok();
                return None;
            }
            Detected::Verdict { machine, after } => (machine, after.as_secs_f64()),
        }
    } else {
        (false, 0.0)
    };
    let outcome = if machine { PacingOutcome::Machine { ring_s, verdict_s } } else { PacingOutcome::Human { ring_s, verdict_s } };
    camp.reports.send(Report::Outcome(outcome)).ok();
    rec.out.answered_by = Some(if machine { "machine" } else { "human" }.into());
    if machine && s.amd.action != AmdAction::RouteToAgent {
        rec.out.outcome = "machine".into();
        if s.amd.action == AmdAction::LeaveMessage {
            leave_message(ctx, c, leg, &mut call, rec).await;
        }
        call.hangup().await;
        drain(&mut call).await;
        return None;
    }
    let routing = Routing { priority: 0, wait: Duration::from_secs_f64(super::campaign::pacing_settings(c).connect_limit_s), inbound: false };
    connect(ctx, Some(camp), c, claimed, id, leg, &mut call, rec, machine, routing).await
}

/// How an answered call looks for an agent.
pub(super) struct Routing {
    /// Higher is served first (inbound callers before outbound calls still ringing).
    pub priority: i32,
    /// How long the call may wait for an agent: the connect limit for outbound calls
    /// (then it is abandoned to the safe-harbor message), longer for inbound callers.
    pub wait: Duration,
    pub inbound: bool,
}

fn report(camp: Option<&CampaignCtx>, r: Report) {
    if let Some(k) = camp {
        k.reports.send(r).ok();
    }
}

fn track(camp: Option<&CampaignCtx>, id: CallId, stage: Option<CallStage>) {
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
    let mut masked = routing.inbound.then(|| mask(leg, None, Some(ctx.hold_music.clone()))).flatten();
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
    masked = mask(leg, masked, None);
    let Some(agent) = agent else {
        return abandon(ctx, camp, c, id, leg, call, rec, machine, routing.inbound).await;
    };
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
    let (cmd_tx, mut cmds) = mpsc::unbounded_channel();
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

enum Detected {
    Verdict { machine: bool, after: Duration },
    Hangup,
}

/// Runs AMD over the answered leg's audio; an undecided or timed-out call counts as a
/// person (never hang up on someone the detector is unsure of).
async fn detect(ctx: &Ctx, c: &Campaign, leg: &Endpoint, call: &mut Line) -> Detected {
    let mut tap = leg.tap();
    let mut det = Detector::new(AmdConfig::default());
    let deadline = Instant::now() + AMD_DEADLINE;
    let started = Instant::now();
    let verdict = loop {
        tokio::select! {
            f = tap.recv() => match f {
                Some(frame) => {
                    if let Some(v) = det.push(&frame.samples) {
                        break Some(v);
                    }
                }
                None => break None,
            },
            ev = call.next_event() => match ev {
                Some(CallEvent::HungUp { .. }) | None => return Detected::Hangup,
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    let (machine, after) = match verdict {
        Some(v) => (v.kind == VerdictKind::Machine, v.after),
        None => (false, started.elapsed()),
    };
    let label = match verdict.map(|v| v.kind) {
        Some(VerdictKind::Machine) => "machine",
        Some(VerdictKind::Human) => "human",
        _ => "unknown",
    };
    ctx.metrics.amd_verdicts.with_label_values(&[&c.name, label]).inc();
    ctx.metrics.amd_seconds.with_label_values(&[label]).observe(after.as_secs_f64());
    Detected::Verdict { machine, after }
}

/// Waits for the beep that ends a machine's greeting (or its silence), then plays the
/// campaign's message.
async fn leave_message(ctx: &Ctx, c: &Campaign, leg: &Endpoint, call: &mut Line, rec: &mut Record) {
    let mut tap = leg.tap();
    let mut beep = BeepDetector::new(AmdConfig::default());
    let deadline = Instant::now() + BEEP_WAIT;
    loop {
        tokio::select! {
            f = tap.recv() => match f {
                Some(frame) => if beep.push(&frame.samples).is_some() { break },
                None => return,
            },
            ev = call.next_event() => if matches!(ev, Some(CallEvent::HungUp { .. }) | None) { return },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let prompt = ctx.prompt(&c.settings.amd.message_file);
    tokio::select! {
        r = leg.play(&prompt) => match r {
            Ok(()) => rec.out.notes = Some("message left after the beep".into()),
            Err(e) => warn!(error = %e, "message could not be played"),
        },
        _ = wait_hangup(call) => {}
    }
}

/// No agent in time: the safe-harbor message plays, the call ends, it counts abandoned.
#[allow(clippy::too_many_arguments)]
async fn abandon(
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

/// After the customer's leg: the agent wraps up and dispositions (or the system does when
/// they do not, past the wrap-up and a grace period).
/// After the customer's leg: the agent's wrap-up and disposition (when an agent took the
/// call), then the one write that settles the call.
pub(super) async fn settle(
    ctx: &Ctx,
    camp: Option<&CampaignCtx>,
    c: &Campaign,
    id: CallId,
    mut rec: Record,
    agent: Option<(AgentId, mpsc::UnboundedReceiver<AgentCommand>)>,
    lead: &pacer_dialer::store::Lead,
) {
    let done = match agent {
        Some((a, cmds)) => {
            wrap_up(ctx, camp, c, id, a, cmds, &mut rec).await;
            Some(a)
        }
        None => None,
    };
    finish(ctx, camp, c, id, rec, done, lead).await;
}

async fn wrap_up(ctx: &Ctx, camp: Option<&CampaignCtx>, c: &Campaign, id: CallId, agent: AgentId, mut cmds: mpsc::UnboundedReceiver<AgentCommand>, rec: &mut Record) {
    let started = Instant::now();
    if rec.out.disposition.is_none() && !ctx.desks.online(agent) {
        tracing::info!(agent, "the agent's desktop is gone; the call keeps its system outcome");
    } else if rec.out.disposition.is_none() {
        let limit = Duration::from_secs(u64::from(c.settings.wrap_up_s)) + DISPOSITION_GRACE;
        let deadline = started + limit;
        ctx.metrics.in_flight.with_label_values(&[&c.name, "wrap_up"]).inc();
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(AgentCommand::Disposition(d)) => {
                        apply_disposition(rec, d);
                        break;
                    }
                    Some(_) => ctx.desks.send(agent, ServerMsg::Error { code: "no_call".into(), message: "the call has ended; only a disposition is expected".into() }),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(agent, "no disposition in time; the call keeps its system outcome");
                    break;
                }
            }
        }
        ctx.metrics.in_flight.with_label_values(&[&c.name, "wrap_up"]).dec();
    }
    rec.out.wrap_s = started.elapsed().as_secs_f64();
    report(camp, Report::Wrap(rec.out.wrap_s));
    ctx.desks.unbind_call(agent, id);
}

fn apply_disposition(rec: &mut Record, d: DispositionCmd) {
    if d.fields.is_some() {
        rec.edited_fields = d.fields;
    }
    rec.out.disposition = Some(d.code);
    if d.notes.is_some() {
        rec.out.notes = d.notes;
    }
    rec.out.callback = d.callback;
}

/// The agent's edits of the lead: `name` is the lead's name, other keys its custom fields
/// (merged into the ones it has). A failure is logged; the call's outcome goes on.
async fn save_edits(ctx: &Ctx, lead_id: i64, mut edits: serde_json::Map<String, serde_json::Value>) {
    let name = match edits.remove("name") {
        Some(serde_json::Value::String(n)) => Some(n),
        _ => None,
    };
    edits.remove("phone");
    let r = async {
        let mut fields = ctx.store.lead(lead_id).await?.fields;
        let changed = !edits.is_empty();
        fields.extend(edits);
        let edit = pacer_dialer::store::LeadEdit { name, fields: changed.then_some(fields), ..Default::default() };
        ctx.store.edit_lead(lead_id, &edit).await
    }
    .await;
    if let Err(e) = r {
        warn!(lead = lead_id, error = %e, "the agent's edits of the lead cannot be saved");
    }
}

/// The one transaction: attempt (CDR), recording path and lead. Retried until the store
/// takes it, so a slow or briefly unreachable database delays the write but loses nothing.
async fn finish(ctx: &Ctx, camp: Option<&CampaignCtx>, c: &Campaign, id: CallId, mut rec: Record, agent: Option<AgentId>, lead: &pacer_dialer::store::Lead) {
    track(camp, id, None);
    rec.out.ended_at.get_or_insert_with(now_ms);
    if let Some(edits) = rec.edited_fields.take() {
        save_edits(ctx, lead.id, edits).await;
    }
    let name = c.name.clone();
    let code = rec.out.disposition.clone().unwrap_or_else(|| rec.out.outcome.clone());
    let mut delay = Duration::from_millis(200);
    loop {
        let t = std::time::Instant::now();
        match ctx.store.record_outcome(&rec.out, now_ms(), ctx.centre_zone).await {
            Ok(settled) => {
                ctx.metrics.db_seconds.with_label_values(&["outcome"]).observe(t.elapsed().as_secs_f64());
                ctx.metrics.calls.with_label_values(&[&name, &rec.out.outcome]).inc();
                debug!(?settled, "outcome written");
                // A connected call's end was announced when its customer hung up; what
                // follows the wrap-up is the disposition. Other calls end here.
                let kind = if agent.is_some() { "call.dispositioned" } else { "call.ended" };
                ctx.webhooks.emit(kind, &event(ctx, c, &rec.out, lead, Some(settled.attempt_id), kind)).await;
                if let Some(a) = agent {
                    let next = serde_json::to_value(settled.decision).ok().and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_string)).unwrap_or_default();
                    ctx.desks.send(a, ServerMsg::DispositionSaved { call_id: id.to_string(), next });
                }
                return;
            }
            Err(StoreError::Invalid(m)) if rec.out.disposition.is_some() && m.contains("disposition") => {
                // The agent's code vanished between the desktop's check and now: keep the
                // call with its system outcome rather than lose it.
                warn!(code, reason = %m, "the agent's disposition is unknown; the system outcome is kept");
                rec.out.disposition = None;
            }
            Err(e @ (StoreError::Invalid(_) | StoreError::NotFound { .. })) => {
                // Retrying cannot help (the lead is gone): the full record goes to the log.
                ctx.metrics.outcome_write_failures.with_label_values(&[&name]).inc();
                tracing::error!(error = %e, outcome = %serde_json::to_string(&rec.out).unwrap_or_default(), "the call's outcome cannot be stored");
                return;
            }
            Err(e) => {
                ctx.metrics.outcome_write_failures.with_label_values(&[&name]).inc();
                warn!(error = %e, retry_in = ?delay, "cannot write the call's outcome yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn start_recording(ctx: &Ctx, c: &Campaign, bridge: &Bridge, rec: &Record) -> Option<pacer_media::Recording> {
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

async fn screen_pop(ctx: &Ctx, c: &Campaign, claimed: &Claimed, id: CallId, machine: bool, connected_at: i64) -> ScreenPop {
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
async fn transfer_out(ctx: &Ctx, c: &Campaign, leg: &Endpoint, call: &mut Line, number: &str) -> Result<Option<(Line, Endpoint, Bridge)>, String> {
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

/// A webhook event's body. The recording link is signed and expires (`auth.signed_url_ttl_s`).
fn event(ctx: &Ctx, c: &Campaign, o: &CallOutcome, lead: &pacer_dialer::store::Lead, attempt: Option<i64>, kind: &str) -> serde_json::Value {
    let recording_url = attempt.filter(|_| o.recording_path.is_some()).map(|a| {
        format!("{}{}", ctx.public_url, crate::recordings::signed_path(&ctx.signing_key, a, chrono::Utc::now().timestamp(), ctx.config.auth.signed_url_ttl_s))
    });
    serde_json::json!({
        "event": kind,
        "attempt_id": attempt,
        "call_id": o.call_id,
        "campaign": {"id": c.id, "name": c.name},
        "lead": {"id": lead.id, "phone": o.phone, "name": lead.name, "fields": lead.fields},
        "outcome": o.outcome,
        "disposition": o.disposition,
        "answered_by": o.answered_by,
        "abandoned": o.abandoned,
        "agent": o.agent_id.map(|a| serde_json::json!({"id": a, "username": ctx.desks.username(a as AgentId)})),
        "started_at": o.started_at,
        "answered_at": o.answered_at,
        "connected_at": o.connected_at,
        "ended_at": o.ended_at,
        "talk_s": o.talk_s,
        "wrap_s": o.wrap_s,
        "sip_status": o.sip_status,
        "q850_cause": o.q850_cause,
        "notes": o.notes,
        "recording_url": recording_url,
    })
}

/// Replaces what the customer hears by `prompt` in a loop (or ends the one playing when
/// `None`). Returns the token that ends the new loop.
fn mask(leg: &Endpoint, current: Option<tokio_util::sync::CancellationToken>, prompt: Option<Prompt>) -> Option<tokio_util::sync::CancellationToken> {
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

async fn wait_hangup(call: &mut Line) -> &'static str {
    loop {
        match call.next_event().await {
            Some(CallEvent::HungUp { by: HangupBy::Remote }) => return "remote",
            Some(CallEvent::HungUp { by: HangupBy::Local }) => return "local",
            None => return "ended",
            Some(_) => {}
        }
    }
}

/// Reads the call's remaining events so its last one (our BYE's result) is seen.
async fn drain(call: &mut Line) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while call.next_event().await.is_some() {} }).await;
}
