//! Inbound calls from trunks go through the same ACD as outbound ones (blended agents):
//! the caller's dedicated agent first, then skill routing, with hold music meanwhile.
//! Outside the campaign's calling window a message plays and a callback is scheduled for
//! the next opening.
//!
//! The call belongs to the running campaign whose trunks include the one it came on (the
//! first running campaign otherwise); the caller is matched to the campaign's lead with
//! that number, or becomes a new lead in the campaign's `inbound` list.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pacer_acd::CallId;
use pacer_dialer::hopper::Claimed;
use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::outcome::{CallOutcome, CallbackRequest};
use pacer_dialer::store::{Campaign, CampaignStatus, Lead, LeadQuery, now_ms};
use pacer_dialer::window::WindowPolicy;
use pacer_sip::InboundCall;
use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

use super::Ctx;
use super::call::{self, Record};
use super::settle;
use super::talk::{self, Routing};
use super::line::Line;

/// How long an inbound caller waits for an agent before the message and a callback.
const INBOUND_WAIT: Duration = Duration::from_secs(60);

/// Takes the gateway's inbound calls until it closes.
pub async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<InboundCall>, tasks: tokio_util::task::TaskTracker) {
    let mut seq: u64 = 1;
    while let Some(call) = rx.recv().await {
        // Inbound ids live above every campaign's outbound range (campaign id << 40).
        let id = (1u64 << 62) | seq;
        seq += 1;
        let span = info_span!("inbound", call = id, caller = %call.caller, trunk = %call.trunk);
        tasks.spawn(handle(ctx.clone(), call, id).instrument(span));
    }
}

async fn campaign_for(ctx: &Ctx, trunk: &str) -> Option<Campaign> {
    let running: Vec<Campaign> = ctx.store.campaigns().await.ok()?.into_iter().filter(|c| c.status == CampaignStatus::Running).collect();
    running.iter().find(|c| call::trunks_of(ctx, c).iter().any(|t| t == trunk)).or(running.first()).cloned()
}

/// The campaign's lead with this number, or a new one in its `inbound` list.
pub(super) async fn lead_for(ctx: &Ctx, c: &Campaign, caller: &str) -> Result<Lead, String> {
    let e164 = if caller.starts_with('+') { caller.to_string() } else { format!("+{caller}") };
    for phone in [caller.to_string(), e164] {
        let found = ctx.store.search_leads(&LeadQuery { campaign_id: Some(c.id), phone: Some(phone), limit: Some(1), ..LeadQuery::default() }).await.map_err(|e| e.to_string())?;
        if let Some(l) = found.into_iter().next() {
            return Ok(l);
        }
    }
    let list = match ctx.store.list_by_name(c.id, "inbound").await.map_err(|e| e.to_string())? {
        Some(l) => l,
        None => ctx.store.create_list(c.id, "inbound", -100).await.map_err(|e| e.to_string())?,
    };
    // The import path normalises the number and derives its time zone as for any list.
    let csv = format!("phone\n{caller}\n");
    let opts = ImportOptions { mapping: Mapping::default(), default_country: ctx.config.dialer.default_country.clone() };
    let report = import_csv(&ctx.store, list.id, std::io::Cursor::new(csv.into_bytes()), opts).await.map_err(|e| e.to_string())?;
    if let Some(r) = report.rejected.first() {
        return Err(format!("caller number {caller:?}: {}", r.reason));
    }
    if report.dnc > 0 {
        // On a DNC list: we must not call them, but they may call us.
        let e164 = pacer_dialer::phone::Normalizer::new(&ctx.config.dialer.default_country)?.normalize(caller)?.e164;
        return ctx.store.create_dnc_lead(list.id, &e164).await.map_err(|e| e.to_string());
    }
    let found = ctx.store.search_leads(&LeadQuery { list_id: Some(list.id), limit: Some(1_000_000), ..LeadQuery::default() }).await.map_err(|e| e.to_string())?;
    found.into_iter().rev().find(|l| l.phone.ends_with(caller.trim_start_matches('+'))).ok_or_else(|| "the new lead was not found after import".into())
}

/// The next minute the campaign's window opens in the call centre's zone (within a week).
fn next_opening(policy: &WindowPolicy, zone: chrono_tz::Tz, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (1..=7 * 24 * 60).map(|m| from + chrono::Duration::minutes(m)).find(|t| policy.open_in(zone, *t))
}

async fn handle(ctx: Arc<Ctx>, call: InboundCall, id: CallId) {
    let Some(c) = campaign_for(&ctx, &call.trunk).await else {
        info!("no campaign runs: the inbound call is refused");
        let _ = call.reject(480);
        return;
    };
    let lead = match lead_for(&ctx, &c, &call.caller).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot match the caller to a lead; the call is refused");
            let _ = call.reject(480);
            return;
        }
    };
    let leg = match ctx.media.rtp_endpoint().await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "no media for the inbound call");
            let _ = call.reject(503);
            return;
        }
    };
    let answer = match leg.answer_offer(&String::from_utf8_lossy(&call.sdp_offer)) {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot answer the caller's offer");
            let _ = call.reject(488);
            leg.close();
            return;
        }
    };
    if let Err(e) = call.answer(answer.into_bytes()) {
        warn!(error = %e, "cannot answer the inbound call");
        leg.close();
        return;
    }
    let mut rec = Record::new(CallOutcome {
        lead_id: lead.id,
        owner: ctx.node.clone(),
        phone: lead.phone.clone(),
        call_id: Some(call.call_id.clone()),
        trunk: Some(call.trunk.clone()),
        started_at: now_ms(),
        answered_at: Some(now_ms()),
        answered_by: Some("human".into()),
        ..CallOutcome::default()
    });
    let mut line = Line::In(call);
    let claimed = Claimed { number: lead.phone.clone(), reserved_for_agent: None, caller_id: None, lead };
    let open = WindowPolicy::new(&c.settings.windows, &ctx.config.dialer.legal_window_start, &ctx.config.dialer.legal_window_end)
        .ok()
        .filter(|p| p.open_in(ctx.centre_zone, Utc::now()));
    let agent = if let Some(_policy) = open {
        let routing = Routing { priority: 10, wait: INBOUND_WAIT, inbound: true };
        talk::connect(&ctx, None, &c, &claimed, id, &leg, &mut line, &mut rec, false, routing).await
    } else {
        // After hours: the message, then a callback at the next opening.
        let policy = WindowPolicy::new(&c.settings.windows, &ctx.config.dialer.legal_window_start, &ctx.config.dialer.legal_window_end).ok();
        let at = policy.and_then(|p| next_opening(&p, ctx.centre_zone, Utc::now()));
        let prompt = ctx.prompt(&c.settings.safe_harbor_file);
        tokio::select! {
            _ = leg.play(&prompt) => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        line.hangup().await;
        rec.out.outcome = "no_answer".into();
        rec.out.notes = Some("inbound call after hours; callback at the next opening".into());
        rec.out.callback = at.map(|t| CallbackRequest { at_local: t.with_timezone(&ctx.centre_zone).naive_local(), agent_only: false, notes: "called after hours".into() });
        None
    };
    leg.close();
    settle::settle(&ctx, None, &c, id, rec, agent, &claimed.lead).await;
}
