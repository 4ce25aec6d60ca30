//! The live ACD: the sans-I/O [`pacer_acd::Acd`] driven in real time.
//!
//! One lock holds the state machine and the calls waiting for an agent; every operation
//! applies its event, hands out the assignments it caused and publishes the state changes
//! (to the agents' desktops, the supervisors and the state log writer) before it returns.
//! A timer task wakes the machine at its next deadline (wrap-ups ending). Nothing awaits
//! while the lock is held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pacer_acd::{Acd, AcdError, AgentId, AgentSpec, AgentState, AgentView, CallId, CallOffer, NotReadyReason, Routed, StateChange, Time};
use pacer_dialer::store::{AgentStateRow, Store};
use tokio::sync::{Notify, broadcast, oneshot};
use tokio::time::Instant;

/// A state change, with wall-clock time, as published to desktops and supervisors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEvent {
    pub agent: AgentId,
    pub from: AgentState,
    pub to: AgentState,
    /// Unix milliseconds.
    pub at_ms: i64,
}

struct Inner {
    acd: Acd,
    /// Calls queued for an agent, and where to say which agent they got.
    waiters: HashMap<CallId, oneshot::Sender<AgentId>>,
}

/// The ACD shared by the server's tasks. Cheap to clone.
#[derive(Clone)]
pub struct LiveAcd {
    inner: Arc<Mutex<Inner>>,
    wake: Arc<Notify>,
    epoch: Instant,
    epoch_ms: i64,
    events: broadcast::Sender<AgentEvent>,
}

/// A call offered to the ACD: it either has an agent now or waits for one.
pub enum Offered {
    Agent(AgentId),
    Queued(oneshot::Receiver<AgentId>),
}

impl LiveAcd {
    /// An ACD with no agents; its timer task runs until the process ends.
    pub fn new() -> LiveAcd {
        let (events, _) = broadcast::channel(4096);
        let acd = LiveAcd {
            inner: Arc::new(Mutex::new(Inner { acd: Acd::new(), waiters: HashMap::new() })),
            wake: Arc::new(Notify::new()),
            epoch: Instant::now(),
            epoch_ms: pacer_dialer::store::now_ms(),
            events,
        };
        tokio::spawn(acd.clone().timer());
        acd
    }

    /// The ACD's time now.
    pub fn now(&self) -> Time {
        self.epoch.elapsed()
    }

    /// Unix milliseconds of an ACD time.
    pub fn wall_ms(&self, t: Time) -> i64 {
        self.epoch_ms + t.as_millis() as i64
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every state change and assignment an operation caused leaves here, under the lock,
    /// so no waiter misses its agent and no subscriber misses a change.
    fn settle(&self, inner: &mut Inner, now: Time) {
        for a in inner.acd.poll(now) {
            if let Some(tx) = inner.waiters.remove(&a.call) {
                // A waiter that gave up has already withdrawn under this lock, so the
                // receiver is alive here.
                let _ = tx.send(a.agent);
            }
        }
        for StateChange { agent, from, to, at } in inner.acd.drain_changes() {
            let _ = self.events.send(AgentEvent { agent, from, to, at_ms: self.wall_ms(at) });
        }
        self.wake.notify_one();
    }

    fn apply<T>(&self, f: impl FnOnce(&mut Acd, Time) -> Result<T, AcdError>) -> Result<T, AcdError> {
        let now = self.now();
        let mut inner = self.lock();
        let r = f(&mut inner.acd, now);
        self.settle(&mut inner, now);
        r
    }

    /// Every state change from now on (desktops, supervisors, the state log writer).
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }

    pub fn add_agent(&self, spec: AgentSpec) {
        self.lock().acd.add_agent(spec);
    }

    pub fn state(&self, agent: AgentId) -> Option<(AgentState, i64)> {
        self.lock().acd.state(agent).map(|(s, since)| (s.clone(), self.wall_ms(since)))
    }

    pub fn login(&self, agent: AgentId) -> Result<(), AcdError> {
        self.apply(|acd, now| acd.login(agent, now))
    }

    pub fn logout(&self, agent: AgentId) -> Result<(), AcdError> {
        self.apply(|acd, now| acd.logout(agent, now))
    }

    pub fn set_ready(&self, agent: AgentId) -> Result<(), AcdError> {
        self.apply(|acd, now| acd.set_ready(agent, now))
    }

    pub fn set_not_ready(&self, agent: AgentId, reason: NotReadyReason) -> Result<(), AcdError> {
        self.apply(|acd, now| acd.set_not_ready(agent, reason, now))
    }

    /// A supervisor's (or the server's) forced state; applies after the current call.
    pub fn force(&self, agent: AgentId, to: AgentState) -> Result<(), AcdError> {
        self.apply(|acd, now| acd.force(agent, to, now))
    }

    /// Extend wrap-up by `by` from now, within the caller's limit.
    pub fn extend_wrap_up(&self, agent: AgentId, by: Duration) -> Result<(), AcdError> {
        self.apply(|acd, now| acd.extend_wrap_up(agent, now + by))
    }

    /// An answered call needs an agent.
    pub fn offer(&self, offer: CallOffer) -> Offered {
        let now = self.now();
        let mut inner = self.lock();
        let id = offer.id;
        let r = match inner.acd.offer(offer, now) {
            Routed::Agent(a) => Offered::Agent(a),
            Routed::Queued => {
                let (tx, rx) = oneshot::channel();
                inner.waiters.insert(id, tx);
                Offered::Queued(rx)
            }
        };
        self.settle(&mut inner, now);
        r
    }

    /// The agent starts a call themselves (preview or manual dial).
    pub fn reserve_for(&self, agent: AgentId, call: CallId) -> Result<(), AcdError> {
        self.apply(|acd, now| acd.reserve_for(agent, call, now))
    }

    /// Waits until `deadline` for the agent of a queued call. `None`: no agent came in
    /// time and the call has left the queue.
    pub async fn wait_agent(&self, call: CallId, offered: Offered, deadline: Instant) -> Option<AgentId> {
        let rx = match offered {
            Offered::Agent(a) => return Some(a),
            Offered::Queued(rx) => rx,
        };
        if let Ok(Ok(agent)) = tokio::time::timeout_at(deadline, rx).await {
            return Some(agent);
        }
        // Decide under the lock: an agent may have been assigned just now.
        let now = self.now();
        let mut inner = self.lock();
        inner.waiters.remove(&call);
        if let Some(agent) = inner.acd.agent_of(call) {
            return Some(agent);
        }
        let _ = inner.acd.withdraw(call, now);
        self.settle(&mut inner, now);
        None
    }

    /// The call left the ACD before it was connected (customer gone, bridge failed).
    pub fn withdraw(&self, call: CallId) {
        let now = self.now();
        let mut inner = self.lock();
        inner.waiters.remove(&call);
        let _ = inner.acd.withdraw(call, now);
        self.settle(&mut inner, now);
    }

    pub fn connected(&self, call: CallId) -> Result<AgentId, AcdError> {
        self.apply(|acd, now| acd.connected(call, now))
    }

    /// The call ended; its agent wraps up for `wrap`.
    pub fn hangup(&self, call: CallId, wrap: Duration) -> Result<AgentId, AcdError> {
        self.apply(|acd, now| acd.hangup(call, wrap, now))
    }

    /// Agents by state for a campaign (or all), with elapsed times measured now.
    pub fn view(&self, campaign: Option<u64>) -> AgentView {
        let now = self.now();
        let mut inner = self.lock();
        // Wrap-ups that ended must count as ready before pacing reads the view.
        self.settle(&mut inner, now);
        inner.acd.view_at(campaign, Some(now))
    }

    /// Whether the agent may take calls of `campaign`.
    pub fn works(&self, agent: AgentId, campaign: u64) -> bool {
        self.lock().acd.works(agent, campaign)
    }

    /// Agents ready now for a campaign (or all).
    pub fn ready_agents(&self, campaign: Option<u64>) -> Vec<AgentId> {
        self.lock().acd.ready_agents(campaign)
    }

    async fn timer(self) {
        loop {
            let next = self.lock().acd.next_deadline();
            let sleep = match next {
                Some(t) => tokio::time::sleep_until(self.epoch + t),
                None => tokio::time::sleep(Duration::from_secs(3600)),
            };
            tokio::select! {
                _ = sleep => {
                    let now = self.now();
                    let mut inner = self.lock();
                    self.settle(&mut inner, now);
                }
                _ = self.wake.notified() => {}
            }
            // `settle` notifies on every operation; the loop just re-reads the deadline.
            if Arc::strong_count(&self.inner) == 1 {
                return;
            }
        }
    }
}

/// The state log row of a change.
pub fn state_row(e: &AgentEvent) -> AgentStateRow {
    let (reason, call) = match &e.to {
        AgentState::NotReady(r) => (Some(reason_code(r)), None),
        AgentState::Reserved(c) | AgentState::OnCall(c) => (None, Some(c.to_string())),
        _ => (None, None),
    };
    AgentStateRow { agent_id: e.agent as i64, state: e.to.name().to_string(), reason, call_id: call, at: e.at_ms }
}

/// The code of a not-ready reason, as stored and sent to desktops.
pub fn reason_code(r: &NotReadyReason) -> String {
    match r {
        NotReadyReason::Login => "login".into(),
        NotReadyReason::Break => "break".into(),
        NotReadyReason::Lunch => "lunch".into(),
        NotReadyReason::Training => "training".into(),
        NotReadyReason::Meeting => "meeting".into(),
        NotReadyReason::Disconnected => "disconnected".into(),
        NotReadyReason::Forced => "forced".into(),
        NotReadyReason::Other(s) => s.clone(),
    }
}

/// A reason code from a desktop or the API; unknown codes are kept as they are.
pub fn parse_reason(code: &str) -> NotReadyReason {
    match code {
        "login" => NotReadyReason::Login,
        "break" => NotReadyReason::Break,
        "lunch" => NotReadyReason::Lunch,
        "training" => NotReadyReason::Training,
        "meeting" => NotReadyReason::Meeting,
        "disconnected" => NotReadyReason::Disconnected,
        "forced" => NotReadyReason::Forced,
        other => NotReadyReason::Other(other.to_string()),
    }
}

/// Writes every state change to the store's agent state log, in batches, until the ACD
/// and its subscribers are gone. A failed write is retried with the next batch, so a
/// database hiccup delays the log but loses nothing held in memory.
pub async fn log_states(store: Store, mut rx: broadcast::Receiver<AgentEvent>) {
    let mut batch: Vec<AgentStateRow> = Vec::new();
    loop {
        let first = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "agent state log fell behind; some changes were not logged");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        batch.push(state_row(&first));
        while let Ok(e) = rx.try_recv() {
            batch.push(state_row(&e));
        }
        match store.log_agent_states(&batch).await {
            Ok(()) => batch.clear(),
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), "cannot write the agent state log yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if let Err(e) = store.log_agent_states(&batch).await {
        tracing::warn!(error = %e, rows = batch.len(), "agent state changes lost at shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_call_gets_the_agent_who_becomes_ready() {
        let acd = LiveAcd::new();
        acd.add_agent(AgentSpec::new(1));
        acd.login(1).unwrap();
        let mut events = acd.subscribe();
        let offered = acd.offer(CallOffer::new(9));
        assert!(matches!(offered, Offered::Queued(_)));
        acd.set_ready(1).unwrap();
        let got = acd.wait_agent(9, offered, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(got, Some(1));
        let e1 = events.recv().await.unwrap();
        assert_eq!(e1.to, AgentState::Ready);
        let e2 = events.recv().await.unwrap();
        assert_eq!(e2.to, AgentState::Reserved(9));
        acd.connected(9).unwrap();
        acd.hangup(9, Duration::from_millis(50)).unwrap();
        assert_eq!(acd.view(None).wrap_up.len(), 1);
        // The timer ends the wrap-up without anyone asking.
        let mut ready = false;
        for _ in 0..3 {
            if let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
                if e.to == AgentState::Ready {
                    ready = true;
                    break;
                }
            }
        }
        assert!(ready, "wrap-up ended by the timer");
    }

    #[tokio::test]
    async fn a_call_that_waits_too_long_leaves_the_queue() {
        let acd = LiveAcd::new();
        acd.add_agent(AgentSpec::new(1));
        acd.login(1).unwrap();
        let offered = acd.offer(CallOffer::new(5));
        let got = acd.wait_agent(5, offered, Instant::now() + Duration::from_millis(30)).await;
        assert_eq!(got, None);
        assert_eq!(acd.view(None).waiting, 0);
        // The agent becoming ready later does not get the abandoned call.
        acd.set_ready(1).unwrap();
        assert_eq!(acd.view(None).ready, 1);
    }
}
