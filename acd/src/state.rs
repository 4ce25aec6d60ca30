//! Agent states.

use crate::{CallId, Time};

/// Why an agent is not taking calls. Reason codes beyond the built-in ones are configured
/// per call centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReadyReason {
    /// Just logged in, has not chosen ready yet.
    Login,
    Break,
    Lunch,
    Training,
    Meeting,
    /// The agent's desktop connection was lost.
    Disconnected,
    /// Put there by a supervisor.
    Forced,
    Other(String),
}

/// Where an agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    /// Waiting for a call.
    Ready,
    /// Chosen for a call that is being connected.
    Reserved(CallId),
    /// Talking to a customer.
    OnCall(CallId),
    /// After a call, until `until` (or until the agent chooses ready).
    WrapUp { until: Time },
    NotReady(NotReadyReason),
}

impl AgentState {
    /// A short name for messages and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Ready => "ready",
            AgentState::Reserved(_) => "reserved",
            AgentState::OnCall(_) => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::NotReady(_) => "not_ready",
        }
    }

    /// True while the agent is tied to a call.
    pub fn holds_call(&self) -> bool {
        matches!(self, AgentState::Reserved(_) | AgentState::OnCall(_))
    }
}
