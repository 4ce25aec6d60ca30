//! After the customer's leg: the agent's wrap-up and disposition, then the one write that
//! settles the call (attempt, CDR, recording path, lead) and the CRM's webhook.

use std::time::Duration;

use pacer_acd::{AgentId, CallId};
use pacer_dialer::outcome::CallOutcome;
use pacer_dialer::store::{Campaign, StoreError, now_ms};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Ctx;
use super::campaign::{CampaignCtx, Report};
use crate::cti::desk::{AgentCommand, DispositionCmd};
use crate::cti::protocol::ServerMsg;
use super::call::Record;
use super::talk::{report, track};

/// Time an agent has past the wrap-up to disposition before the system does.
pub(super) const DISPOSITION_GRACE: Duration = Duration::from_secs(30);

/// What is left of the agent's part of a call when the customer's leg ends.
pub(super) enum AgentPart {
    /// The agent still wraps up and dispositions.
    WrapUp(AgentId, mpsc::UnboundedReceiver<AgentCommand>),
    /// The agent wrapped up while the call went on (a blind transfer to a number).
    Done(AgentId),
}

/// After the customer's leg: the agent's wrap-up and disposition (when an agent took the
/// call), then the one write that settles the call.
pub(super) async fn settle(
    ctx: &Ctx,
    camp: Option<&CampaignCtx>,
    c: &Campaign,
    id: CallId,
    mut rec: Record,
    agent: Option<AgentPart>,
    lead: &pacer_dialer::store::Lead,
) {
    let done = match agent {
        Some(AgentPart::WrapUp(a, cmds)) => {
            wrap_up(ctx, camp, c, id, a, cmds, &mut rec).await;
            Some(a)
        }
        Some(AgentPart::Done(a)) => Some(a),
        None => None,
    };
    finish(ctx, camp, c, id, rec, done, lead).await;
}

pub(super) async fn wrap_up(ctx: &Ctx, camp: Option<&CampaignCtx>, c: &Campaign, id: CallId, agent: AgentId, mut cmds: mpsc::UnboundedReceiver<AgentCommand>, rec: &mut Record) {
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

pub(super) fn apply_disposition(rec: &mut Record, d: DispositionCmd) {
    if d.fields.is_some() {
        rec.edited_fields = d.fields;
    }
    rec.out.disposition = Some(d.code);
    if let Some(n) = d.notes {
        // A transfer's own note stays beside the agent's.
        rec.out.notes = Some(match rec.out.notes.take() {
            Some(sys) if sys.starts_with("transferred to") => format!("{sys}; {n}"),
            _ => n,
        });
    }
    rec.out.callback = d.callback;
}

/// The agent's edits of the lead: `name` is the lead's name, other keys its custom fields
/// (merged into the ones it has). A failure is logged; the call's outcome goes on.
pub(super) async fn save_edits(ctx: &Ctx, lead_id: i64, mut edits: serde_json::Map<String, serde_json::Value>) {
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
pub(super) async fn finish(ctx: &Ctx, camp: Option<&CampaignCtx>, c: &Campaign, id: CallId, mut rec: Record, agent: Option<AgentId>, lead: &pacer_dialer::store::Lead) {
    track(camp, id, None);
    rec.out.ended_at.get_or_insert_with(now_ms);
    if let Some(edits) = rec.edited_fields.take() {
        save_edits(ctx, lead.id, edits).await;
    }
    let name = c.name.clone();
    let code = rec.out.disposition.clone().unwrap_or_else(|| rec.out.outcome.clone());
    let mut delay = Duration::from_millis(200);
    let mut spooled: Option<std::path::PathBuf> = None;
    loop {
        let t = std::time::Instant::now();
        if let Some(p) = &spooled
            && ctx.spool.already_stored(&ctx.store, &rec.out).await
        {
            // A write whose answer was lost on the way (the connection dropped after the
            // commit): it is in, and is not written twice.
            ctx.spool.remove(p);
            if let Some(a) = agent {
                ctx.desks.send(a, ServerMsg::DispositionSaved { call_id: id.to_string(), next: String::new() });
            }
            return;
        }
        match ctx.store.record_outcome(&rec.out, now_ms(), ctx.centre_zone).await {
            Ok(settled) => {
                if let Some(p) = spooled.take() {
                    ctx.spool.remove(&p);
                    info!(lead = lead.id, "the spooled outcome is written");
                }
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
                if let Some(p) = spooled.take() {
                    ctx.spool.set_aside(&p);
                }
                return;
            }
            Err(e) => {
                ctx.metrics.outcome_write_failures.with_label_values(&[&name]).inc();
                if spooled.is_none() {
                    // On disk before anything else: a crash while the database is away
                    // must not lose the call (the next start writes it).
                    match ctx.spool.put(&rec.out) {
                        Ok(p) => spooled = Some(p),
                        Err(se) => tracing::error!(error = %se, "cannot spool the call's outcome; it is kept in memory only"),
                    }
                }
                warn!(error = %e, retry_in = ?delay, "cannot write the call's outcome yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A webhook event's body. The recording link is signed and expires (`auth.signed_url_ttl_s`).
pub(super) fn event(ctx: &Ctx, c: &Campaign, o: &CallOutcome, lead: &pacer_dialer::store::Lead, attempt: Option<i64>, kind: &str) -> serde_json::Value {
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
