//! The customer's side of a call, whichever way it came: an outbound call the gateway
//! placed, or an inbound call a trunk offered. The call actor drives both the same way.

use std::time::Duration;

use pacer_sip::{CallEvent, CallHandle, HangupBy, InboundCall};

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

pub(super) async fn wait_hangup(call: &mut Line) -> &'static str {
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
pub(super) async fn drain(call: &mut Line) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while call.next_event().await.is_some() {} }).await;
}
