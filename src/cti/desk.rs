//! The agents' desks: for each logged-in agent, their persistent media leg, the socket
//! their desktop listens on, and the call actor their call-control commands go to.
//!
//! The ACD owns agent *states*; a desk holds only the connections. A desktop that
//! reconnects replaces the socket of its desk; the call and the media leg stay.

use std::collections::HashMap;
use std::sync::Mutex;

use pacer_acd::{AgentId, CallId};
use pacer_dialer::outcome::CallbackRequest;
use pacer_media::Endpoint;
use tokio::sync::mpsc;

use super::protocol::ServerMsg;

/// A desktop's command for the call actor of its current call.
#[derive(Debug)]
pub enum AgentCommand {
    Hangup,
    Hold(bool),
    Mute(bool),
    Dtmf(String),
    Transfer(TransferTo),
    Disposition(DispositionCmd),
    /// The desktop reconnected with a new media leg: the call's audio moves to it.
    NewLeg(Endpoint),
    /// A supervisor joins the call on their leg (`None`: leaves it).
    Supervise(Option<(Endpoint, pacer_media::SupervisorMode)>),
}

/// Where a blind transfer sends the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTo {
    /// Another agent, by username (then any agent with the campaign's skill).
    Agent(String),
    /// A queue: the agents of that campaign (by name), with its skill.
    Queue(String),
    /// An outside number on the campaign's trunk.
    Number(String),
}

#[derive(Debug, Clone)]
pub struct DispositionCmd {
    pub code: String,
    pub notes: Option<String>,
    pub callback: Option<CallbackRequest>,
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What the supervisor's floor shows of an agent's current call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    pub campaign_id: i64,
    pub campaign: String,
    /// The customer's number.
    pub phone: String,
    /// When the customer was connected (Unix ms).
    pub connected_at: i64,
}

struct Desk {
    username: String,
    leg: Option<Endpoint>,
    desktop: Option<(u64, mpsc::UnboundedSender<ServerMsg>)>,
    call: Option<(CallId, mpsc::UnboundedSender<AgentCommand>, CallSummary)>,
    /// The current call's screen pop, sent again to a desktop that comes back mid-call.
    pop: Option<ServerMsg>,
    /// The lead being previewed (leased to this node) and its campaign.
    preview: Option<(pacer_dialer::store::Campaign, pacer_dialer::hopper::Claimed)>,
}

/// Every agent's desk. One per server.
#[derive(Default)]
pub struct Desks {
    inner: Mutex<HashMap<AgentId, Desk>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Desks {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<AgentId, Desk>) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A desktop socket for `agent`; replaces an older one. Returns its generation, which
    /// [`Desks::detach`] needs so a late close of the old socket cannot detach the new one.
    pub fn attach(&self, agent: AgentId, username: &str, tx: mpsc::UnboundedSender<ServerMsg>) -> u64 {
        let generation = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.with(|m| {
            let desk = m.entry(agent).or_insert_with(|| Desk { username: username.to_string(), leg: None, desktop: None, call: None, pop: None, preview: None });
            desk.desktop = Some((generation, tx));
        });
        generation
    }

    /// The socket of that generation closed. True when it was the desk's current socket.
    pub fn detach(&self, agent: AgentId, generation: u64) -> bool {
        self.with(|m| match m.get_mut(&agent) {
            Some(d) if d.desktop.as_ref().is_some_and(|(g, _)| *g == generation) => {
                d.desktop = None;
                true
            }
            _ => false,
        })
    }

    /// True while a desktop socket is attached.
    pub fn online(&self, agent: AgentId) -> bool {
        self.with(|m| m.get(&agent).is_some_and(|d| d.desktop.is_some()))
    }

    /// Keeps the lead the agent is previewing; returns the one it replaces (to release).
    pub fn set_preview(&self, agent: AgentId, p: (pacer_dialer::store::Campaign, pacer_dialer::hopper::Claimed)) -> Option<pacer_dialer::hopper::Claimed> {
        self.with(|m| m.get_mut(&agent).and_then(|d| d.preview.replace(p)).map(|(_, c)| c))
    }

    /// Takes the previewed lead if it is `lead_id`.
    pub fn take_preview(&self, agent: AgentId, lead_id: i64) -> Option<(pacer_dialer::store::Campaign, pacer_dialer::hopper::Claimed)> {
        self.with(|m| {
            let d = m.get_mut(&agent)?;
            if d.preview.as_ref().is_some_and(|(_, c)| c.lead.id == lead_id) { d.preview.take() } else { None }
        })
    }

    /// The agent left: their media leg is closed and the desk removed.
    pub fn remove(&self, agent: AgentId) {
        if let Some(d) = self.with(|m| m.remove(&agent)) {
            if let Some(leg) = d.leg {
                leg.close();
            }
        }
    }

    /// Sets the agent's persistent media leg, closing the one it replaces.
    pub fn set_leg(&self, agent: AgentId, leg: Endpoint) {
        let old = self.with(|m| m.get_mut(&agent).and_then(|d| d.leg.replace(leg)));
        if let Some(old) = old {
            old.close();
        }
    }

    pub fn leg(&self, agent: AgentId) -> Option<Endpoint> {
        self.with(|m| m.get(&agent).and_then(|d| d.leg.clone()))
    }

    pub fn username(&self, agent: AgentId) -> Option<String> {
        self.with(|m| m.get(&agent).map(|d| d.username.clone()))
    }

    /// Every agent with a desk: (id, username, online).
    pub fn agents(&self) -> Vec<(AgentId, String, bool)> {
        let mut v: Vec<_> = self.with(|m| m.iter().map(|(id, d)| (*id, d.username.clone(), d.desktop.is_some())).collect());
        v.sort();
        v
    }

    pub fn agent_by_username(&self, username: &str) -> Option<AgentId> {
        self.with(|m| m.iter().find(|(_, d)| d.username == username).map(|(id, _)| *id))
    }

    /// Sends to the agent's desktop; dropped silently while it is offline (the state it
    /// missed is sent again when it reconnects).
    pub fn send(&self, agent: AgentId, msg: ServerMsg) {
        self.with(|m| {
            if let Some((_, tx)) = m.get(&agent).and_then(|d| d.desktop.as_ref()) {
                let _ = tx.send(msg);
            }
        });
    }

    /// The agent's commands go to this call's actor from now on.
    pub fn bind_call(&self, agent: AgentId, call: CallId, tx: mpsc::UnboundedSender<AgentCommand>, summary: CallSummary) {
        self.with(|m| {
            if let Some(d) = m.get_mut(&agent) {
                d.call = Some((call, tx, summary));
            }
        });
    }

    /// Sends the screen pop of `call` and keeps it while the call is the agent's.
    pub fn pop(&self, agent: AgentId, call: CallId, pop: ServerMsg) {
        self.with(|m| {
            if let Some(d) = m.get_mut(&agent).filter(|d| d.call.as_ref().is_some_and(|(c, _, _)| *c == call)) {
                d.pop = Some(pop.clone());
            }
        });
        self.send(agent, pop);
    }

    /// The current call's screen pop (for a desktop that reconnected).
    pub fn current_pop(&self, agent: AgentId) -> Option<ServerMsg> {
        self.with(|m| m.get(&agent).and_then(|d| d.pop.clone()))
    }

    /// The agent's current call as the floor shows it.
    pub fn call_summary(&self, agent: AgentId) -> Option<(CallId, CallSummary)> {
        self.with(|m| m.get(&agent).and_then(|d| d.call.as_ref().map(|(c, _, s)| (*c, s.clone()))))
    }

    /// The call is settled: its actor takes no more commands.
    pub fn unbind_call(&self, agent: AgentId, call: CallId) {
        self.with(|m| {
            if let Some(d) = m.get_mut(&agent).filter(|d| d.call.as_ref().is_some_and(|(c, _, _)| *c == call)) {
                d.call = None;
                d.pop = None;
            }
        });
    }

    /// The call the agent's commands go to now.
    pub fn current_call(&self, agent: AgentId) -> Option<CallId> {
        self.with(|m| m.get(&agent).and_then(|d| d.call.as_ref().map(|(c, _, _)| *c)))
    }

    /// Forwards a command to the agent's call actor; `Err` when the agent has no call.
    pub fn command(&self, agent: AgentId, cmd: AgentCommand) -> Result<(), AgentCommand> {
        self.with(|m| match m.get(&agent).and_then(|d| d.call.as_ref()) {
            Some((_, tx, _)) => tx.send(cmd).map_err(|e| e.0),
            None => Err(cmd),
        })
    }
}
