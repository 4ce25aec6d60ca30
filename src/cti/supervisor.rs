//! The supervisor's socket: a live view of the floor (every agent's state, every running
//! campaign's figures), listen / whisper / barge on an agent's call over the supervisor's
//! own media leg, and forced states.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use pacer_acd::{AgentId, AgentState, NotReadyReason};
use pacer_dialer::store::{AuditEvent, CampaignStatus, Role};
use pacer_media::{Endpoint, SupervisorMode};
use tokio::sync::broadcast;
use tracing::{Instrument, info, info_span};

use super::desk::AgentCommand;
use super::protocol::{AgentRow, CampaignRow, ServerMsg, SupervisorMsg};
use super::{Cti, error, media_leg, text};
use crate::acd::{AgentEvent, reason_code};
use crate::http::AppState;

/// `GET /cti/supervisor`.
/// With a supervisor's (or higher) web session cookie it is logged in at once; otherwise
/// its first message logs in.
pub async fn supervisor_socket(State(state): State<AppState>, headers: axum::http::HeaderMap, ws: WebSocketUpgrade) -> Response {
    let cti = state.cti.clone();
    let by_session = crate::auth::session_user(&state.store, &headers).await;
    ws.on_upgrade(move |socket| async move {
        match cti {
            Some(cti) => session(cti, socket, by_session).await,
            None => super::refuse(socket, "this server runs no dialer (no CTI)").await,
        }
    })
}

async fn login(cti: &Cti, socket: &mut WebSocket) -> Result<pacer_dialer::store::User, String> {
    let first = tokio::time::timeout(super::LOGIN_WAIT, socket.recv()).await.map_err(|_| "no login message in time".to_string())?;
    let Some(Ok(Message::Text(t))) = first else { return Err("the first message must be a text login message".into()) };
    let Ok(SupervisorMsg::Login { username, password }) = serde_json::from_str::<SupervisorMsg>(&t) else {
        return Err("the first message must be {\"type\":\"login\",...}".into());
    };
    let r = match cti.store.user_by_username(&username).await.map_err(|e| format!("cannot check credentials: {e}"))? {
        Some(u) if crate::auth::verify_password(&password, &u.password_hash) && u.role >= Role::Supervisor => Ok(u),
        Some(u) if u.role < Role::Supervisor => Err("this user is not a supervisor".into()),
        _ => Err("wrong username or password".into()),
    };
    let action = if r.is_ok() { "login" } else { "login_failed" };
    crate::auth::audit(&cti.store, AuditEvent { actor: &username, action, target: "supervisor page", ..Default::default() }).await;
    r
}

async fn session(cti: Arc<Cti>, mut socket: WebSocket, by_session: Option<pacer_dialer::store::User>) {
    let logged_in = match by_session {
        Some(u) if u.role >= Role::Supervisor => Ok(u),
        Some(u) => Err(format!("{} is a {}, not a supervisor", u.username, u.role.as_str())),
        None => login(&cti, &mut socket).await,
    };
    let user = match logged_in {
        Ok(u) => u,
        Err(why) => {
            let _ = socket.send(text(&error("login_failed", why))).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let span = info_span!("supervisor", user = %user.username);
    async move {
        info!("supervisor connected");
        let _ = socket.send(text(&ServerMsg::SupervisorReady { username: user.username.clone(), role: user.role.as_str().into() })).await;
        let mut leg: Option<Endpoint> = None;
        let mut listening: Option<AgentId> = None;
        let mut events = cti.acd.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                m = socket.recv() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let reply = match serde_json::from_str::<SupervisorMsg>(&t) {
                            Ok(msg) => handle(&cti, &user.username, msg, &mut leg, &mut listening).await,
                            Err(e) => Some(error("bad_message", format!("bad message: {e}"))),
                        };
                        if let Some(r) = reply {
                            let _ = socket.send(text(&r)).await;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(Message::Binary(_))) => { let _ = socket.send(text(&error("bad_message", "messages are JSON text"))).await; }
                    Some(Ok(_)) => {}
                },
                e = events.recv() => match e {
                    Ok(AgentEvent { agent, to, at_ms, .. }) => {
                        let m = ServerMsg::AgentState { agent_id: agent as i64, state: to.name().into(), since: at_ms };
                        if socket.send(text(&m)).await.is_err() { break; }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    let snap = snapshot(&cti).await;
                    if socket.send(text(&snap)).await.is_err() { break; }
                }
            }
        }
        if let Some(agent) = listening {
            let _ = cti.desks.command(agent, AgentCommand::Supervise(None));
        }
        if let Some(l) = leg {
            l.close();
        }
        info!("supervisor disconnected");
    }
    .instrument(span)
    .await
}

async fn handle(cti: &Cti, who: &str, msg: SupervisorMsg, leg: &mut Option<Endpoint>, listening: &mut Option<AgentId>) -> Option<ServerMsg> {
    match msg {
        SupervisorMsg::Login { .. } => Some(error("already_logged_in", "this socket is logged in already")),
        SupervisorMsg::Ping => Some(ServerMsg::Pong),
        SupervisorMsg::MediaOffer { sdp } => Some(match media_leg(&cti.media, &sdp).await {
            Ok((l, answer)) => {
                if let Some(old) = leg.replace(l) {
                    old.close();
                }
                ServerMsg::MediaAnswer { sdp: answer }
            }
            Err(e) => error("media", e),
        }),
        SupervisorMsg::Listen { agent_id, mode } => {
            let mode = match mode.as_str() {
                "listen" => SupervisorMode::Listen,
                "whisper" => SupervisorMode::Whisper,
                "barge" => SupervisorMode::Barge,
                _ => return Some(error("bad_mode", "mode is listen, whisper or barge")),
            };
            let Some(l) = leg.clone() else { return Some(error("no_media", "connect the supervisor's audio (media_offer) first")) };
            let agent = agent_id as AgentId;
            if let Some(prev) = listening.take().filter(|p| *p != agent) {
                let _ = prev_leave(cti, prev);
            }
            match cti.desks.command(agent, AgentCommand::Supervise(Some((l, mode)))) {
                Ok(()) => {
                    *listening = Some(agent);
                    info!(agent = agent_id, ?mode, "supervisor joined a call");
                    let target = format!("agent {agent_id} ({})", cti.desks.username(agent).unwrap_or_default());
                    let detail = format!("{mode:?}").to_lowercase();
                    crate::auth::audit(&cti.store, AuditEvent { actor: who, action: "listen", target: &target, detail: &detail, source: "" }).await;
                    Some(ServerMsg::Listening { agent_id: Some(agent_id), mode: Some(format!("{mode:?}").to_lowercase()) })
                }
                Err(_) => Some(error("no_call", "that agent has no call")),
            }
        }
        SupervisorMsg::StopListen => {
            if let Some(a) = listening.take() {
                let _ = prev_leave(cti, a);
            }
            Some(ServerMsg::Listening { agent_id: None, mode: None })
        }
        SupervisorMsg::Force { agent_id, state } => {
            let to = match state.as_str() {
                "not_ready" => AgentState::NotReady(NotReadyReason::Forced),
                "logged_out" => AgentState::LoggedOut,
                _ => return Some(error("bad_state", "state is not_ready or logged_out")),
            };
            cti.acd.force(agent_id as AgentId, to).err().map(|e| error("refused", e.to_string()))
        }
    }
}

fn prev_leave(cti: &Cti, agent: AgentId) -> Result<(), AgentCommand> {
    cti.desks.command(agent, AgentCommand::Supervise(None))
}

/// The floor now: agents with a desk, and running campaigns with their figures.
pub async fn snapshot(cti: &Cti) -> ServerMsg {
    let agents = cti
        .desks
        .agents()
        .into_iter()
        .filter_map(|(id, username, online)| {
            let (state, since) = cti.acd.state(id)?;
            let (reason, call_id) = match &state {
                AgentState::NotReady(r) => (Some(reason_code(r)), None),
                AgentState::Reserved(c) | AgentState::OnCall(c) => (None, Some(c.to_string())),
                _ => (None, None),
            };
            // The call's details only while the ACD says the agent holds that call.
            let call = cti.desks.call_summary(id).filter(|(c, _)| call_id.as_deref() == Some(c.to_string().as_str())).map(|(_, s)| s);
            Some(AgentRow {
                agent_id: id as i64,
                username,
                state: state.name().into(),
                reason,
                since,
                call_id,
                campaign_id: call.as_ref().map(|s| s.campaign_id),
                campaign: call.as_ref().map(|s| s.campaign.clone()),
                phone: call.as_ref().map(|s| s.phone.clone()),
                connected_at: call.map(|s| s.connected_at),
                online,
            })
        })
        .collect();
    let mut campaigns = Vec::new();
    let now = chrono::Utc::now();
    if let Ok(list) = cti.store.campaigns().await {
        for c in list.into_iter().filter(|c| c.status == CampaignStatus::Running) {
            let e = cti.dialer.explain(c.id).unwrap_or_default();
            let view = cti.acd.view(Some(c.id as u64));
            let active = view.logged_in.saturating_sub(view.not_ready).max(1);
            let ab = cti.store.abandon_stats(c.id, now, cti.centre_zone).await.ok();
            let midnight = now.with_timezone(&cti.centre_zone).date_naive().and_hms_opt(0, 0, 0).and_then(|d| d.and_local_timezone(cti.centre_zone).earliest()).map_or(0, |d| d.timestamp_millis());
            let occ = cti.store.agent_time(None, midnight, now.timestamp_millis()).await.map(|t| pacer_dialer::store::agents::team_occupancy(&t)).unwrap_or(0.0);
            campaigns.push(CampaignRow {
                id: c.id,
                name: c.name.clone(),
                dial_mode: c.dial_mode.as_str().into(),
                calls_in_flight: e.calls_in_flight,
                dial_level: f64::from(e.calls_in_flight) / f64::from(active),
                answer_rate: e.answer_rate,
                abandon_rate_today: ab.as_ref().map_or(0.0, |a| a.today.rate),
                abandon_rate_30d: ab.as_ref().map_or(0.0, |a| a.last_30_days.rate),
                occupancy_today: occ,
                reason: e.reason.map(|r| serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()),
            });
        }
    }
    ServerMsg::Snapshot { agents, campaigns }
}
