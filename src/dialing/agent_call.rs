//! Calls an agent places themselves: preview dialling (the agent sees the next lead, then
//! dials it or skips it) and manual dialling (a number the agent types). The agent is
//! reserved for the call from the moment they dial; there is no answering-machine
//! detection (the agent hears the line) and no queue: the answer is bridged to the agent's
//! persistent leg at once. DNC and the calling window are checked before dialling, as for
//! every other call.

use std::sync::Arc;

use pacer_acd::{AgentId, CallId};
use pacer_dialer::hopper::Claimed;
use pacer_dialer::outcome::CallOutcome;
use pacer_dialer::store::{Campaign, CampaignStatus, now_ms};
use pacer_dialer::window::WindowPolicy;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, info_span, warn};

use super::Ctx;
use super::call::{Record, dial};
use super::settle::settle;
use super::talk::converse;
use crate::cti::desk::CallSummary;
use crate::cti::protocol::ServerMsg;

/// The campaign an agent dials for: the one named, or the first running campaign the
/// agent may work.
pub async fn campaign_for_agent(ctx: &Ctx, agent: AgentId, named: Option<i64>) -> Result<Campaign, String> {
    let all = ctx.store.campaigns().await.map_err(|e| e.to_string())?;
    let works = |c: &Campaign| ctx.acd.works(agent, c.id as u64);
    let c = match named {
        Some(id) => all.into_iter().find(|c| c.id == id).ok_or_else(|| format!("no campaign {id}"))?,
        None => all.into_iter().find(|c| c.status == CampaignStatus::Running && works(c)).ok_or("no running campaign for this agent")?,
    };
    if c.status != CampaignStatus::Running {
        return Err(format!("campaign {} is {}", c.name, c.status.as_str()));
    }
    if !works(&c) {
        return Err(format!("this agent does not work campaign {}", c.name));
    }
    Ok(c)
}

/// The next lead of the campaign for the agent to look at, leased to this node.
pub async fn preview_next(ctx: &Ctx, c: &Campaign, agent: AgentId) -> Result<Option<Claimed>, String> {
    let got = ctx.hopper.claim_for_agents(c.id, &ctx.node, 1, chrono::Utc::now(), &[agent as i64]).await.map_err(|e| e.to_string())?;
    Ok(got.into_iter().next())
}

/// A number the agent typed, as a lead of the campaign (an existing one, or a new lead in
/// its `inbound` list), refused while the kill switch is on, when the toll-fraud guard
/// refuses it, when it is on a DNC list or outside the calling window.
pub async fn manual_lead(ctx: &Ctx, c: &Campaign, number: &str) -> Result<Claimed, String> {
    let normalizer = pacer_dialer::phone::Normalizer::new(&ctx.config.dialer.default_country)?;
    let e164 = normalizer.normalize(number).map_err(|e| format!("{number:?}: {e}"))?.e164;
    if ctx.killed() {
        return Err("dialling is stopped by the kill switch".into());
    }
    ctx.screen(c, &e164).map_err(|r| format!("refused: {r}"))?;
    if ctx.store.is_dnc(c.id, &e164).await.map_err(|e| e.to_string())? {
        return Err(format!("{e164} is on a do-not-call list"));
    }
    let lead = super::inbound::lead_for(ctx, c, &e164).await?;
    let policy = WindowPolicy::new(&c.settings.windows, &ctx.config.dialer.legal_window_start, &ctx.config.dialer.legal_window_end)?;
    let zone = lead.time_zone.as_deref().and_then(|z| z.parse().ok());
    let covered = [ctx.centre_zone];
    if !policy.open_for(zone, &covered, chrono::Utc::now()) {
        return Err(format!("{} is outside the calling window in the called party's time", lead.phone));
    }
    let caller_id = c.settings.caller_id_for(&lead.phone, lead.attempts as u64);
    Ok(Claimed { number: lead.phone.clone(), reserved_for_agent: None, caller_id, lead })
}

/// Places the agent's call and follows it to its settled outcome. `leased`: the lead was
/// claimed from the hopper (preview) and its lease must be kept while the call lasts.
pub async fn run(ctx: Arc<Ctx>, c: Campaign, claimed: Claimed, agent: AgentId, id: CallId, leased: bool) {
    let span = info_span!("agent_call", call = id, agent, lead = claimed.lead.id, campaign = %c.name);
    async move {
        if ctx.killed() {
            // A stolen agent login must not dial round the kill switch either.
            ctx.desks.send(agent, ServerMsg::Error { code: "killed".into(), message: "dialling is stopped by the kill switch".into() });
            if leased {
                let _ = ctx.hopper.release_lead(claimed.lead.id, &ctx.node, now_ms()).await;
            }
            return;
        }
        if let Err(e) = ctx.acd.reserve_for(agent, id) {
            ctx.desks.send(agent, ServerMsg::Error { code: "refused".into(), message: e.to_string() });
            if leased {
                let _ = ctx.hopper.release_lead(claimed.lead.id, &ctx.node, now_ms()).await;
            }
            return;
        }
        if leased && let Err(e) = ctx.hopper.mark_dialling(claimed.lead.id, &ctx.node, now_ms()).await {
            warn!(error = %e, "the previewed lead left the hopper; not dialled");
            ctx.acd.withdraw(id);
            ctx.desks.send(agent, ServerMsg::Error { code: "lead_gone".into(), message: "the lead is no longer available".into() });
            return;
        }
        let mut rec = Record::new(CallOutcome { lead_id: claimed.lead.id, owner: ctx.node.clone(), phone: claimed.number.clone(), started_at: now_ms(), agent_id: Some(agent as i64), ..CallOutcome::default() });
        let leg = match ctx.media.rtp_endpoint().await {
            Ok(l) => l,
            Err(e) => {
                ctx.acd.withdraw(id);
                ctx.desks.send(agent, ServerMsg::Error { code: "media".into(), message: e.to_string() });
                rec.out.outcome = "congestion".into();
                rec.out.notes = Some(format!("not dialled: {e}"));
                settle(&ctx, None, &c, id, rec, None, &claimed.lead).await;
                return;
            }
        };
        // The agent's commands reach this call from the moment they dial (hang up = cancel).
        let (tx, mut rx) = mpsc::unbounded_channel();
        ctx.desks.bind_call(agent, id, tx.clone(), CallSummary { campaign_id: c.id, campaign: c.name.clone(), phone: claimed.number.clone(), connected_at: 0 });
        let lease = leased.then(|| tokio::spawn(super::call::keep_lease(ctx.clone(), claimed.lead.id)));
        let answered = dial(&ctx, None, &c, &claimed.number, claimed.caller_id.clone(), &leg, &mut rec, Some(&mut rx), None).await;
        let agent_done = match answered {
            Some(mut line) => {
                rec.out.answered_by = Some("human".into());
                converse(&ctx, None, &c, &claimed, id, &leg, &mut line, &mut rec, false, agent, false, Instant::now(), (tx, rx)).await
            }
            None => {
                ctx.acd.withdraw(id);
                ctx.desks.unbind_call(agent, id);
                let outcome = rec.out.outcome.clone();
                if outcome == pacer_dialer::retry::BLOCKED {
                    // A previewed lead whose number the guard refuses: say why, close it.
                    ctx.desks.send(agent, ServerMsg::Error { code: "blocked".into(), message: rec.out.notes.clone().unwrap_or_default() });
                }
                ctx.desks.send(agent, ServerMsg::CallEnded { call_id: id.to_string(), by: format!("no answer: {outcome}"), talk_s: 0.0, handed_over: false });
                None
            }
        };
        if let Some(l) = lease {
            l.abort();
        }
        leg.close();
        settle(&ctx, None, &c, id, rec, agent_done, &claimed.lead).await;
    }
    .instrument(span)
    .await
}
