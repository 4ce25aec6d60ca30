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

use pacer_acd::CallId;
use pacer_dialer::hopper::Claimed;
use pacer_dialer::outcome::CallOutcome;
use pacer_dialer::pacing::{CallStage, Outcome as PacingOutcome};
use pacer_dialer::settings::AmdAction;
use pacer_dialer::store::{Campaign, now_ms};
use pacer_media::amd::{AmdConfig, BeepDetector, Detector, VerdictKind};
use pacer_media::Endpoint;
use pacer_sip::{CallEvent, OriginateRequest, Outcome as SipOutcome};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Ctx;
use super::campaign::{CampaignCtx, Report};
use super::line::{Line, drain, wait_hangup};
use crate::cti::desk::AgentCommand;
use super::settle::settle;
use super::talk::{Routing, connect, report};

/// Longest a call may wait for the AMD verdict before it is treated as a person.
const AMD_DEADLINE: Duration = Duration::from_secs(4);

/// Longest a machine's greeting may last before the message is left without a beep.
const BEEP_WAIT: Duration = Duration::from_secs(30);

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
    pub(super) edited_fields: Option<serde_json::Map<String, serde_json::Value>>,
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

/// Places a call to `number` on the campaign's first trunk and follows it to its answer.
/// `None` when it ended without one: the outcome is in `rec` (and reported to the
/// campaign's pacing when `camp` is given). With `agent`, the dialling agent's hang-up
/// cancels the call while it rings; so does `pacing_hang_up`, the campaign engine's advice
/// to hang up a late ring (reported to pacing as [`PacingOutcome::HungUp`]).
#[allow(clippy::too_many_arguments)]
pub(super) async fn dial(
    ctx: &Arc<Ctx>,
    camp: Option<&CampaignCtx>,
    c: &Campaign,
    number: &str,
    caller_id: Option<String>,
    leg: &Endpoint,
    rec: &mut Record,
    agent: Option<&mut mpsc::UnboundedReceiver<AgentCommand>>,
    pacing_hang_up: Option<CancellationToken>,
) -> Option<Line> {
    let s = &c.settings;
    // The toll-fraud guard, on the one path every outbound call to a lead takes. The lead
    // is closed with `blocked` (never retried) and the pacing engine is not told: no call
    // was placed, so its answer rates stay true.
    if let Err(r) = ctx.screen(c, number) {
        rec.out.outcome = pacer_dialer::retry::BLOCKED.into();
        rec.out.notes = Some(format!("not dialled: {r}"));
        return None;
    }
    let trunks = trunks_of(ctx, c);
    let Some(trunk) = trunks.first().cloned() else {
        rec.out.outcome = "congestion".into();
        rec.out.notes = Some("no trunk configured".into());
        report(camp, Report::Outcome(PacingOutcome::Failed { after_s: 0.0 }));
        return None;
    };
    let req = OriginateRequest {
        trunk,
        number: number.to_string(),
        caller_id,
        sdp_offer: leg.local_offer().into_bytes(),
        ring_timeout: Duration::from_secs(u64::from(s.ring_timeout_s.max(15))),
    };
    let mut call = match ctx.sip.originate(req) {
        Ok(h) => Line::Out(h),
        Err(e) => {
            warn!(error = %e, "cannot originate");
            rec.out.outcome = "invalid_number".into();
            rec.out.notes = Some(e.to_string());
            report(camp, Report::Outcome(PacingOutcome::Failed { after_s: 0.0 }));
            return None;
        }
    };
    // Progress until answer or failure (or the dialling agent's hang-up: CANCEL). A carrier that never sends a final response (not
    // even to our CANCEL) must not hold the lead for ever: past the ring timeout and the
    // SIP transaction timeout (64·T1) the call is given up.
    let give_up = tokio::time::Instant::now() + Duration::from_secs(u64::from(s.ring_timeout_s.max(15)) + 40);
    let mut agent = agent;
    let mut pacing_hang_up = pacing_hang_up;
    let mut hung_up_by_pacing = false;
    loop {
        let next = async {
            tokio::select! {
                ev = call.next_event() => Some(ev),
                cmd = async {
                    match agent.as_deref_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match cmd {
                    Some(AgentCommand::Hangup) | None => None,
                    Some(_) => Some(Some(CallEvent::Trying)),
                },
                _ = async {
                    match &pacing_hang_up {
                        Some(t) => t.cancelled().await,
                        None => std::future::pending().await,
                    }
                } => None,
            }
        };
        let ev = match tokio::time::timeout_at(give_up, next).await {
            Ok(Some(ev)) => ev,
            Ok(None) => {
                // The agent gave up on their call, or pacing advises hanging up a late
                // ring: CANCEL, then its final response.
                if pacing_hang_up.as_ref().is_some_and(|t| t.is_cancelled()) {
                    hung_up_by_pacing = true;
                    info!(after_s = rec.secs_since_dial(), "hanging up a late ring: a person answering now would probably find no agent");
                }
                call.hangup().await;
                agent = None;
                pacing_hang_up = None;
                continue;
            }
            Err(_) => {
                warn!("no final response from the carrier; the call is given up");
                call.hangup().await;
                rec.out.outcome = "no_answer".into();
                rec.out.notes = Some("no final response from the carrier".into());
                report(camp, Report::Outcome(PacingOutcome::NoAnswer { after_s: rec.secs_since_dial() }));
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
                    report(camp, Report::Outcome(PacingOutcome::Failed { after_s: rec.secs_since_dial() }));
                    return None;
                }
                rec.answered = Some(Instant::now());
                rec.out.answered_at = Some(now_ms());
                return Some(call);
            }
            Some(CallEvent::Failed { status, reason, q850, outcome }) => {
                rec.out.sip_status = status.map(i64::from);
                rec.out.q850_cause = q850.map(i64::from);
                rec.out.outcome = failure_code(outcome).into();
                let after_s = rec.secs_since_dial();
                let o = if hung_up_by_pacing && outcome == SipOutcome::Cancelled {
                    rec.out.notes = Some(format!("hung up by pacing after {after_s:.0} s of ringing ({reason})"));
                    PacingOutcome::HungUp { after_s }
                } else {
                    rec.out.notes = Some(reason);
                    if outcome == SipOutcome::NoAnswer { PacingOutcome::NoAnswer { after_s } } else { PacingOutcome::Failed { after_s } }
                };
                report(camp, Report::Outcome(o));
                return None;
            }
            Some(CallEvent::HungUp { .. }) | None => {
                rec.out.outcome = "congestion".into();
                rec.out.notes = Some("call ended without an answer or a final response".into());
                report(camp, Report::Outcome(PacingOutcome::Failed { after_s: rec.secs_since_dial() }));
                return None;
            }
        }
    }
}

/// Renews the lead's lease while the call lasts.
pub(super) async fn keep_lease(ctx: Arc<Ctx>, lead: i64) {
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
) -> Option<super::settle::AgentPart> {
    let s = &c.settings;
    let hang_up = camp.in_flight.hang_up_token(id);
    let mut call = dial(ctx, Some(camp.as_ref()), c, &claimed.number, claimed.caller_id.clone(), leg, rec, None, hang_up).await?;
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
            Detected::Verdict { machine, after } => {
                rec.out.verdict_at = Some(now_ms());
                (machine, after.as_secs_f64())
            }
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
