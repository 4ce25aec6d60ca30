//! CTI: the agents' and supervisors' WebSockets (JSON messages, see `docs/cti.md`).
//!
//! An agent socket starts with `login`; then the desktop sends its persistent media leg's
//! offer, state changes, call control and dispositions, and receives its state, screen
//! pops and call events. A socket that goes silent past the heartbeat limit is closed;
//! an agent whose desktop stays away past a short grace is put not ready (after their
//! current call, which goes on), and resumes where they were when the desktop reconnects.

pub mod desk;
pub mod protocol;
pub mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use pacer_acd::{AgentId, AgentSpec, AgentState, NotReadyReason};
use pacer_dialer::outcome::CallbackRequest;
use pacer_dialer::store::{AuditEvent, Store};
use pacer_media::MediaEngine;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::acd::{AgentEvent, LiveAcd, parse_reason, reason_code};
use crate::http::AppState;
use desk::{AgentCommand, Desks, DispositionCmd, TransferTo};
use protocol::{ClientMsg, DispositionInfo, ServerMsg};

/// A socket with no message (or pong) for this long is dead.
const HEARTBEAT_LIMIT: Duration = Duration::from_secs(30);
/// The server pings this often.
const PING_EVERY: Duration = Duration::from_secs(10);
/// An agent whose desktop is gone this long is put not ready.
const DISCONNECT_GRACE: Duration = Duration::from_secs(10);
/// Time allowed for the `login` message.
pub(crate) const LOGIN_WAIT: Duration = Duration::from_secs(10);
/// Longest extra wrap-up an agent may ask for at once.
const MAX_WRAP_EXTENSION_S: u32 = 300;
/// Reason codes offered to desktops.
pub const REASONS: [&str; 4] = ["break", "lunch", "training", "meeting"];

/// The live parts the sockets reach.
pub struct Cti {
    pub store: Store,
    pub acd: LiveAcd,
    pub desks: Arc<Desks>,
    pub media: MediaEngine,
    pub dialer: Arc<crate::dialing::Dialer>,
    pub centre_zone: chrono_tz::Tz,
}

/// `GET /cti/agent`: an agent desktop's socket. With the agent's session cookie (from
/// `POST /login/agent`) it is logged in at once; otherwise its first message logs in.
pub async fn agent_socket(State(state): State<AppState>, headers: axum::http::HeaderMap, ws: WebSocketUpgrade) -> Response {
    let cti = state.cti.clone();
    let by_session = crate::auth::session_agent(&state.store, &headers).await;
    ws.on_upgrade(move |socket| async move {
        match cti {
            Some(cti) => agent_session(cti, socket, by_session).await,
            None => refuse(socket, "this server runs no dialer (no CTI)").await,
        }
    })
}

pub(crate) async fn refuse(mut socket: WebSocket, why: &str) {
    let _ = socket.send(text(&ServerMsg::Error { code: "unavailable".into(), message: why.into() })).await;
    let _ = socket.send(Message::Close(None)).await;
}

pub(crate) fn text(m: &ServerMsg) -> Message {
    Message::Text(serde_json::to_string(m).expect("server messages serialise").into())
}

pub(crate) fn error(code: &str, message: impl Into<String>) -> ServerMsg {
    ServerMsg::Error { code: code.into(), message: message.into() }
}

/// The state message for an agent's current state.
fn state_msg(acd: &LiveAcd, agent: AgentId) -> Option<ServerMsg> {
    let (state, since) = acd.state(agent)?;
    Some(describe(&state, since, acd))
}

fn describe(state: &AgentState, since: i64, acd: &LiveAcd) -> ServerMsg {
    let (reason, call_id, wrap_until) = match state {
        AgentState::NotReady(r) => (Some(reason_code(r)), None, None),
        AgentState::Reserved(c) | AgentState::OnCall(c) => (None, Some(c.to_string()), None),
        AgentState::WrapUp { until } => (None, None, Some(acd.wall_ms(*until))),
        _ => (None, None, None),
    };
    ServerMsg::State { state: state.name().into(), reason, since, call_id, wrap_until }
}

/// Reads the first message; it must be a good `login`.
async fn login(cti: &Cti, socket: &mut WebSocket) -> Result<pacer_dialer::store::Agent, String> {
    let first = tokio::time::timeout(LOGIN_WAIT, socket.recv()).await.map_err(|_| "no login message in time".to_string())?;
    let Some(Ok(Message::Text(t))) = first else { return Err("the first message must be a text login message".into()) };
    let Ok(ClientMsg::Login { username, password }) = protocol::parse(&t) else { return Err("the first message must be {\"type\":\"login\",...}".into()) };
    let agent = cti.store.agent_by_username(&username).await.map_err(|e| format!("cannot check credentials: {e}"))?;
    let actor = format!("agent:{username}");
    match agent {
        Some(a) if a.active && crate::auth::verify_password(&password, &a.password_hash) => {
            crate::auth::audit(&cti.store, AuditEvent { actor: &actor, action: "login", target: "agent desktop", ..Default::default() }).await;
            Ok(a)
        }
        _ => {
            crate::auth::audit(&cti.store, AuditEvent { actor: &actor, action: "login_failed", target: "agent desktop", ..Default::default() }).await;
            Err("wrong username or password".into())
        }
    }
}

async fn agent_session(cti: Arc<Cti>, mut socket: WebSocket, by_session: Option<pacer_dialer::store::Agent>) {
    let logged_in = match by_session {
        Some(a) => Ok(a),
        None => login(&cti, &mut socket).await,
    };
    let agent = match logged_in {
        Ok(a) => a,
        Err(why) => {
            let _ = socket.send(text(&error("login_failed", why))).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let id = agent.id as AgentId;
    let span = info_span!("agent", agent = %agent.username);
    async move {
        cti.acd.add_agent(AgentSpec {
            id,
            skills: agent.skills.clone(),
            campaigns: agent.campaigns.iter().map(|c| *c as u64).collect(),
            rank: agent.rank.clamp(0, u32::MAX as i64) as u32,
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let generation = cti.desks.attach(id, &agent.username, tx.clone());
        let resumed = match cti.acd.state(id) {
            Some((AgentState::LoggedOut, _)) | None => {
                let _ = cti.acd.login(id);
                false
            }
            Some(_) => true,
        };
        info!(resumed, "agent desktop connected");
        let dispositions = cti.store.dispositions().await.unwrap_or_default();
        let hello = ServerMsg::LoggedIn {
            agent_id: agent.id,
            username: agent.username.clone(),
            name: agent.name.clone(),
            reasons: REASONS.iter().map(|s| s.to_string()).collect(),
            dispositions: dispositions.into_iter().filter(|d| !d.system || d.code == "dnc" || d.code == "answered").map(|d| DispositionInfo { code: d.code, label: d.label, callback: d.callback }).collect(),
        };
        let _ = socket.send(text(&hello)).await;
        // Back mid-call: the screen pop again, before the state that refers to it.
        if let Some(pop) = cti.desks.current_pop(id).filter(|_| resumed) {
            let _ = socket.send(text(&pop)).await;
        }
        if let Some(m) = state_msg(&cti.acd, id) {
            let _ = socket.send(text(&m)).await;
        }
        let mut events = cti.acd.subscribe();
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(PING_EVERY);
        let logged_out = loop {
            tokio::select! {
                m = socket.recv() => match m {
                    Some(Ok(Message::Text(t))) => {
                        last_heard = Instant::now();
                        match protocol::parse(&t) {
                            Ok(msg) => {
                                let quit = matches!(msg, ClientMsg::Logout);
                                if let Some(reply) = handle(&cti, id, msg).await {
                                    let _ = socket.send(text(&reply)).await;
                                }
                                if quit && matches!(cti.acd.state(id), Some((AgentState::LoggedOut, _))) {
                                    break true;
                                }
                            }
                            Err(e) => { let _ = socket.send(text(&error("bad_message", e))).await; }
                        }
                    }
                    Some(Ok(Message::Pong(_) | Message::Ping(_))) => last_heard = Instant::now(),
                    Some(Ok(Message::Binary(_))) => { let _ = socket.send(text(&error("bad_message", "messages are JSON text"))).await; }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break false,
                },
                out = rx.recv() => if let Some(m) = out {
                    if socket.send(text(&m)).await.is_err() { break false; }
                },
                e = events.recv() => match e {
                    Ok(AgentEvent { agent, to, at_ms, .. }) if agent == id => {
                        if socket.send(text(&describe(&to, at_ms, &cti.acd))).await.is_err() { break false; }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(m) = state_msg(&cti.acd, id) { let _ = socket.send(text(&m)).await; }
                    }
                    Err(broadcast::error::RecvError::Closed) => break false,
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > HEARTBEAT_LIMIT {
                        warn!("agent desktop silent past the heartbeat limit; closing its socket");
                        break false;
                    }
                    if socket.send(Message::Ping(Vec::new().into())).await.is_err() { break false; }
                }
            }
        };
        let _ = socket.send(Message::Close(None)).await;
        if logged_out {
            cti.desks.remove(id);
            info!("agent logged out");
            return;
        }
        if cti.desks.detach(id, generation) {
            info!("agent desktop disconnected");
            tokio::spawn(disconnected(cti.clone(), id));
        }
    }
    .instrument(span)
    .await
}

/// After the grace, an agent whose desktop did not come back is put not ready (after
/// their call and wrap-up, if they have one): never stuck ready with nobody there.
async fn disconnected(cti: Arc<Cti>, id: AgentId) {
    tokio::time::sleep(DISCONNECT_GRACE).await;
    if cti.desks.online(id) {
        return;
    }
    let r = match cti.acd.state(id) {
        Some((s, _)) if s.holds_call() || matches!(s, AgentState::WrapUp { .. }) => cti.acd.force(id, AgentState::NotReady(NotReadyReason::Disconnected)),
        Some((AgentState::LoggedOut, _)) | None => return,
        Some(_) => cti.acd.set_not_ready(id, NotReadyReason::Disconnected),
    };
    if let Err(e) = r {
        warn!(agent = id, error = %e, "cannot put the disconnected agent not ready");
    }
}

/// One desktop message; returns the direct reply, if any.
async fn handle(cti: &Cti, id: AgentId, msg: ClientMsg) -> Option<ServerMsg> {
    let acd_err = |e: pacer_acd::AcdError| error("refused", e.to_string());
    match msg {
        ClientMsg::Login { .. } => Some(error("already_logged_in", "this socket is logged in already")),
        ClientMsg::Ping => Some(ServerMsg::Pong),
        ClientMsg::MediaOffer { sdp } => Some(match media_leg(&cti.media, &sdp).await {
            Ok((leg, answer)) => {
                cti.desks.set_leg(id, leg.clone());
                // A leg replaced mid-call (the desktop reconnected) takes over the call's audio.
                if let Some(call) = cti.desks.current_call(id) {
                    debug!(call, "media leg replaced during a call");
                    let _ = cti.desks.command(id, AgentCommand::NewLeg(leg));
                }
                ServerMsg::MediaAnswer { sdp: answer }
            }
            Err(e) => error("media", e),
        }),
        ClientMsg::Ready => {
            if cti.desks.leg(id).is_none() {
                return Some(error("no_media", "connect the softphone (media_offer) before going ready"));
            }
            cti.acd.set_ready(id).err().map(acd_err)
        }
        ClientMsg::NotReady { reason } => cti.acd.set_not_ready(id, parse_reason(&reason)).err().map(acd_err),
        ClientMsg::Logout => cti.acd.logout(id).err().map(acd_err),
        ClientMsg::ExtendWrap { seconds } => cti.acd.extend_wrap_up(id, Duration::from_secs(u64::from(seconds.min(MAX_WRAP_EXTENSION_S)))).err().map(acd_err),
        ClientMsg::Hangup => command(cti, id, AgentCommand::Hangup),
        ClientMsg::Hold => command(cti, id, AgentCommand::Hold(true)),
        ClientMsg::Unhold => command(cti, id, AgentCommand::Hold(false)),
        ClientMsg::Mute { on } => command(cti, id, AgentCommand::Mute(on)),
        ClientMsg::Dtmf { digits } => {
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')) {
                return Some(error("bad_digits", "digits are 0-9, *, # and A-D"));
            }
            command(cti, id, AgentCommand::Dtmf(digits))
        }
        ClientMsg::Transfer { agent, queue, number } => {
            let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            let to = match (nonempty(agent), nonempty(queue), nonempty(number)) {
                (Some(a), None, None) => TransferTo::Agent(a),
                (None, Some(q), None) => TransferTo::Queue(q),
                (None, None, Some(n)) => TransferTo::Number(n),
                _ => return Some(error("bad_transfer", "give exactly one of agent, queue and number")),
            };
            command(cti, id, AgentCommand::Transfer(to))
        }
        ClientMsg::TimeReport { from } => {
            let to = pacer_dialer::store::now_ms();
            Some(match crate::api::floor::TimeReport::of(&cti.store, id as i64, from.unwrap_or(to - 86_400_000).min(to), to).await {
                Ok(t) => ServerMsg::TimeReport(Box::new(t)),
                Err(e) => error("time_report", e.to_string()),
            })
        }
        ClientMsg::PreviewNext { campaign_id } => Some(preview_next(cti, id, campaign_id).await),
        ClientMsg::Dial { lead_id } => Some(match cti.desks.take_preview(id, lead_id) {
            Some((c, claimed)) => start_agent_call(cti, id, c, claimed, true),
            None => error("no_preview", format!("lead {lead_id} is not the one being previewed")),
        }),
        ClientMsg::Skip { lead_id } => Some(match cti.desks.take_preview(id, lead_id) {
            Some((c, claimed)) => {
                // The next lead is claimed while the skipped one is still held, so that it
                // is another lead; then the skipped one goes back to the hopper.
                let next = preview_next(cti, id, Some(c.id)).await;
                let ctx = cti.dialer.ctx();
                let _ = ctx.hopper.release_lead(claimed.lead.id, &ctx.node, pacer_dialer::store::now_ms()).await;
                next
            }
            None => error("no_preview", format!("lead {lead_id} is not the one being previewed")),
        }),
        ClientMsg::ManualDial { number, campaign_id } => {
            if cti.desks.current_call(id).is_some() {
                return Some(error("busy", "finish the current call first"));
            }
            let ctx = cti.dialer.ctx().clone();
            let r = async {
                let c = crate::dialing::agent_call::campaign_for_agent(&ctx, id, campaign_id).await?;
                let claimed = crate::dialing::agent_call::manual_lead(&ctx, &c, number.trim()).await?;
                Ok::<_, String>((c, claimed))
            }
            .await;
            Some(match r {
                Ok((c, claimed)) => start_agent_call(cti, id, c, claimed, false),
                Err(e) => error("manual_dial", e),
            })
        }
        ClientMsg::Disposition { call_id, code, notes, callback_at, callback_mine, fields } => {
            if cti.desks.current_call(id).map(|c| c.to_string()) != Some(call_id.clone()) {
                return Some(error("no_call", format!("call {call_id} is not this agent's call")));
            }
            let callback = match callback_at {
                None => None,
                Some(at) => match chrono::NaiveDateTime::parse_from_str(&at, "%Y-%m-%dT%H:%M").or_else(|_| chrono::NaiveDateTime::parse_from_str(&at, "%Y-%m-%dT%H:%M:%S")) {
                    Ok(at_local) => Some(CallbackRequest { at_local, agent_only: callback_mine, notes: notes.clone().unwrap_or_default() }),
                    Err(_) => return Some(error("bad_callback_at", "callback_at is YYYY-MM-DDTHH:MM in the lead's local time")),
                },
            };
            let known = cti.store.dispositions().await.map(|d| d.iter().any(|x| x.code == code)).unwrap_or(true);
            if !known {
                return Some(error("unknown_disposition", format!("no disposition {code:?}")));
            }
            command(cti, id, AgentCommand::Disposition(DispositionCmd { code, notes, callback, fields }))
        }
    }
}

/// Claims the next lead for the agent to preview (the previous one, if any, goes back).
async fn preview_next(cti: &Cti, id: AgentId, campaign_id: Option<i64>) -> ServerMsg {
    if cti.desks.current_call(id).is_some() {
        return error("busy", "finish the current call first");
    }
    let ctx = cti.dialer.ctx().clone();
    let c = match crate::dialing::agent_call::campaign_for_agent(&ctx, id, campaign_id).await {
        Ok(c) => c,
        Err(e) => return error("preview", e),
    };
    match crate::dialing::agent_call::preview_next(&ctx, &c, id).await {
        Ok(Some(claimed)) => {
            // Previewing takes the agent out of the queue: no predictive call meanwhile.
            if matches!(cti.acd.state(id), Some((AgentState::Ready, _))) {
                let _ = cti.acd.set_not_ready(id, NotReadyReason::Other("preview".into()));
            }
            let pop = crate::dialing::talk::preview_pop(&ctx, &c, &claimed).await;
            if let Some(old) = cti.desks.set_preview(id, (c, claimed)) {
                let _ = ctx.hopper.release_lead(old.lead.id, &ctx.node, pacer_dialer::store::now_ms()).await;
            }
            ServerMsg::Preview(Box::new(pop))
        }
        Ok(None) => error("no_leads", format!("campaign {} has no lead to dial now", c.name)),
        Err(e) => error("preview", e),
    }
}

fn start_agent_call(cti: &Cti, id: AgentId, c: pacer_dialer::store::Campaign, claimed: pacer_dialer::hopper::Claimed, leased: bool) -> ServerMsg {
    let ctx = cti.dialer.ctx().clone();
    let call = ctx.agent_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let number = claimed.number.clone();
    cti.dialer.spawn(crate::dialing::agent_call::run(ctx, c, claimed, id, call, leased));
    ServerMsg::Dialing { call_id: call.to_string(), number }
}

fn command(cti: &Cti, id: AgentId, cmd: AgentCommand) -> Option<ServerMsg> {
    cti.desks.command(id, cmd).err().map(|_| error("no_call", "the agent has no call"))
}

/// A persistent leg for a desktop's offer: WebRTC when the offer carries DTLS
/// fingerprints (a browser), plain RTP otherwise.
pub async fn media_leg(media: &MediaEngine, offer: &str) -> Result<(pacer_media::Endpoint, String), String> {
    if offer.contains("a=fingerprint:") {
        media.webrtc_endpoint(offer).await.map_err(|e| e.to_string())
    } else {
        let leg = media.rtp_endpoint().await.map_err(|e| e.to_string())?;
        let answer = leg.answer_offer(offer).map_err(|e| e.to_string())?;
        Ok((leg, answer))
    }
}
