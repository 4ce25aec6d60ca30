//! The customer's side of a call, whichever way it came: an outbound call the gateway
//! placed, or an inbound call a trunk offered. The call actor drives both the same way.

use pacer_sip::{CallEvent, CallHandle, InboundCall};

pub enum Line {
    Out(CallHandle),
    In(InboundCall),
}

impl Line {
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        match self {
            Line::Out(h) => h.next_event().await,
            Line::In(c) => c.next_event().await,
        }
    }

    /// Ends the call (CANCEL or BYE for outbound calls, BYE for answered inbound ones).
    pub async fn hangup(&mut self) {
        match self {
            Line::Out(h) => h.hangup(),
            Line::In(c) => {
                if let Err(e) = c.hangup().await {
                    tracing::debug!(error = %e, "BYE to the caller failed");
                }
            }
        }
    }
}
