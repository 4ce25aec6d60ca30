//! Media shards: one thread per core, each owning a set of legs and the bridges between
//! them, driven by one `epoll` loop (mio) and a 20 ms tick.
//!
//! Every per-packet decision is made by the one thread that owns all parties of a
//! bridge, so the packet path takes no lock and shares no cache line. When a bridge joins
//! legs that live on different shards, the joining leg moves (with its sockets) to the
//! shard of the anchor, the agent's persistent leg, and commands addressed to a leg that
//! has moved are forwarded after it.

mod bridge;
pub(crate) mod leg;
mod packet;
pub(crate) mod rtcp;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Interest, Poll, Token, Waker};
use slab::Slab;
use tokio::sync::{mpsc as tmpsc, oneshot};

pub(crate) use bridge::Role;
use bridge::{BridgeState, Recorder};
use leg::{Leg, LegIo};

use crate::bridge::{BridgeShared, SupervisorMode};
use crate::leg::{AudioFrame, LegShared};
use crate::metrics::{Metrics, ShardCounters};
use crate::ports::PortAllocator;
use crate::prompt::Prompt;
use crate::recorder::{Timeline, WriterMsg};
use crate::sdp::Negotiated;

const TICK: Duration = Duration::from_millis(20);
const WAKE: Token = Token(usize::MAX);
/// A command that keeps missing its leg is dropped after this many hops.
const MAX_HOPS: u8 = 64;

pub(crate) enum RecOp {
    Pause,
    Resume,
    Stop(oneshot::Sender<Result<std::path::PathBuf, crate::MediaError>>),
}

pub(crate) enum Cmd {
    Add { leg: Box<Leg>, then: Option<Box<Cmd>> },
    Configure { leg: Arc<LegShared>, neg: Negotiated },
    Join { bridge: Arc<BridgeShared>, customer: Arc<LegShared> },
    Move { leg: Arc<LegShared>, to: usize, then: Box<Cmd> },
    Unjoin { bridge: Arc<BridgeShared> },
    Supervise { bridge: Arc<BridgeShared>, sup: Arc<LegShared>, mode: SupervisorMode },
    Unsupervise { bridge: Arc<BridgeShared> },
    Record { bridge: Arc<BridgeShared>, rec_id: u64 },
    RecordCtl { bridge: Arc<BridgeShared>, rec_id: u64, op: RecOp },
    Play { leg: Arc<LegShared>, prompt: Prompt, done: oneshot::Sender<()> },
    StopPlay { leg: Arc<LegShared> },
    Dtmf { leg: Arc<LegShared>, codes: Vec<u8> },
    Tap { leg: Arc<LegShared>, tx: tmpsc::Sender<AudioFrame> },
    Inbound { leg: Arc<LegShared>, pkt: Vec<u8> },
    Close { leg: Arc<LegShared> },
    Shutdown,
}

impl Cmd {
    /// The bridge a command acts on once it exists (not the join that creates it).
    fn joining_bridge(&self) -> Option<u64> {
        match self {
            Cmd::Unjoin { bridge } | Cmd::Supervise { bridge, .. } | Cmd::Unsupervise { bridge } | Cmd::Record { bridge, .. } | Cmd::RecordCtl { bridge, .. } => Some(bridge.id),
            _ => None,
        }
    }

    /// The leg that must live on the shard that runs this command.
    fn target(&self) -> Option<&Arc<LegShared>> {
        match self {
            Cmd::Add { .. } | Cmd::Shutdown => None,
            Cmd::Configure { leg, .. }
            | Cmd::Move { leg, .. }
            | Cmd::Play { leg, .. }
            | Cmd::StopPlay { leg }
            | Cmd::Dtmf { leg, .. }
            | Cmd::Tap { leg, .. }
            | Cmd::Inbound { leg, .. }
            | Cmd::Close { leg } => Some(leg),
            Cmd::Join { bridge, .. }
            | Cmd::Unjoin { bridge }
            | Cmd::Supervise { bridge, .. }
            | Cmd::Unsupervise { bridge }
            | Cmd::Record { bridge, .. }
            | Cmd::RecordCtl { bridge, .. } => Some(&bridge.anchor),
        }
    }
}

/// The way into one shard from any thread.
pub(crate) struct ShardHandle {
    tx: mpsc::Sender<(Cmd, u8)>,
    waker: Waker,
    /// Legs that live on this shard or are on their way to it: new legs go to the shard
    /// with the fewest, so that bridges (which gather on their agent leg's shard) spread.
    pub legs: AtomicUsize,
}

impl ShardHandle {
    pub fn send(&self, cmd: Cmd) {
        self.send_hop(cmd, 0);
    }

    fn send_hop(&self, cmd: Cmd, hops: u8) {
        if self.tx.send((cmd, hops)).is_ok() {
            // A failed wake means the shard is gone; the command is moot then.
            let _ = self.waker.wake();
        }
    }
}

/// What all shards share.
pub(crate) struct Context {
    pub shards: Vec<ShardHandle>,
    pub metrics: Metrics,
    pub ports: Mutex<PortAllocator>,
    pub writer: mpsc::Sender<WriterMsg>,
    pub rtp_timeout: Option<Duration>,
    /// Arrival times are measured from here, on every shard alike, so a leg that moves
    /// keeps a consistent jitter estimate.
    pub epoch: Instant,
}

impl Context {
    pub fn send_to_leg(&self, leg: &LegShared, cmd: Cmd) {
        self.shards[leg.shard.load(SeqCst)].send(cmd);
    }
}

/// Creates the shards' polls and channels; [`spawn`] starts their threads.
/// A shard's own ends: its poll and the receiving side of its command channel.
pub(crate) type ShardParts = (Poll, mpsc::Receiver<(Cmd, u8)>);

pub(crate) fn prepare(n: usize) -> std::io::Result<(Vec<ShardHandle>, Vec<ShardParts>)> {
    let mut handles = Vec::with_capacity(n);
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        let (tx, rx) = mpsc::channel();
        handles.push(ShardHandle { tx, waker, legs: AtomicUsize::new(0) });
        parts.push((poll, rx));
    }
    Ok((handles, parts))
}

pub(crate) fn spawn(ctx: Arc<Context>, parts: Vec<ShardParts>) -> std::io::Result<()> {
    for (index, (poll, rx)) in parts.into_iter().enumerate() {
        let ctx = ctx.clone();
        std::thread::Builder::new().name(format!("pacer-media-{index}")).spawn(move || {
            Shard::new(index, poll, rx, ctx).run();
        })?;
    }
    Ok(())
}

pub(crate) struct Shard {
    index: usize,
    poll: Poll,
    rx: mpsc::Receiver<(Cmd, u8)>,
    ctx: Arc<Context>,
    legs: Slab<Leg>,
    ids: HashMap<u64, usize>,
    bridges: Slab<BridgeState>,
    bridge_ids: HashMap<u64, usize>,
    /// Commands for bridges whose join waits for the customer's leg to move here: they
    /// run once the bridge exists (a recording started right after the bridge would
    /// otherwise find no bridge and close its file empty).
    joining: HashMap<u64, Vec<Cmd>>,
    counters: ShardCounters,
    bufs: Option<Box<packet::RecvBufs>>,
    scratch: Box<packet::Scratch>,
    next_tick: Instant,
    ticks: u64,
}

impl Shard {
    fn new(index: usize, poll: Poll, rx: mpsc::Receiver<(Cmd, u8)>, ctx: Arc<Context>) -> Self {
        Self {
            index,
            poll,
            rx,
            ctx,
            legs: Slab::new(),
            ids: HashMap::new(),
            bridges: Slab::new(),
            bridge_ids: HashMap::new(),
            joining: HashMap::new(),
            counters: ShardCounters::default(),
            bufs: Some(packet::RecvBufs::new()),
            scratch: packet::Scratch::new(),
            next_tick: Instant::now() + TICK,
            ticks: 0,
        }
    }

    fn run(mut self) {
        let mut events = mio::Events::with_capacity(1024);
        loop {
            let timeout = self.next_tick.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                tracing::error!(shard = self.index, error = %e, "media shard poll failed");
                return;
            }
            let now = Instant::now();
            for ev in events.iter() {
                if ev.token() != WAKE {
                    self.on_readable(ev.token().0 >> 1, ev.token().0 & 1 == 1, now);
                }
            }
            loop {
                match self.rx.try_recv() {
                    Ok((Cmd::Shutdown, _)) | Err(mpsc::TryRecvError::Disconnected) => return self.shutdown(),
                    Ok((cmd, hops)) => self.handle(cmd, hops, Instant::now()),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            if now >= self.next_tick {
                self.tick(now);
                self.next_tick += TICK;
                // After a stall (debugger, overload) start afresh instead of catching up.
                if self.next_tick + TICK * 5 < now {
                    self.next_tick = now + TICK;
                }
            }
        }
    }

    fn shutdown(&mut self) {
        // Recordings get their last audio and a final header before the legs go.
        let bridges: Vec<usize> = self.bridges.iter().map(|(b, _)| b).collect();
        for b in bridges {
            self.end_bridge(b, Instant::now());
        }
        let slots: Vec<usize> = self.legs.iter().map(|(s, _)| s).collect();
        for s in slots {
            self.remove_leg(s, Instant::now());
        }
        self.counters.flush(&self.ctx.metrics);
    }

    fn handle(&mut self, cmd: Cmd, hops: u8, now: Instant) {
        if let Some(t) = cmd.target()
            && !self.ids.contains_key(&t.id)
        {
            let t = t.clone();
            return self.reroute(&t, cmd, hops);
        }
        if let Some(id) = cmd.joining_bridge()
            && !self.bridge_ids.contains_key(&id)
            && let Some(queue) = self.joining.get_mut(&id)
        {
            if matches!(cmd, Cmd::Unjoin { .. }) {
                // Ended before it was joined: what waited runs against no bridge.
                for c in self.joining.remove(&id).unwrap_or_default() {
                    self.handle(c, 0, now);
                }
            } else {
                queue.push(cmd);
            }
            return;
        }
        match cmd {
            Cmd::Add { leg, then } => {
                let slot = self.legs.insert(*leg);
                if let LegIo::Udp { rtp, rtcp, .. } = &mut self.legs[slot].io {
                    let reg = self.poll.registry();
                    if let Err(e) = reg
                        .register(rtp, Token(slot * 2), Interest::READABLE)
                        .and_then(|_| reg.register(rtcp, Token(slot * 2 + 1), Interest::READABLE))
                    {
                        tracing::error!(error = %e, "cannot poll an RTP socket");
                    }
                }
                self.ids.insert(self.legs[slot].id(), slot);
                if let Some(then) = then {
                    self.handle(*then, 0, now);
                }
            }
            Cmd::Configure { leg, neg } => self.leg_mut(&leg).configure(neg, now),
            Cmd::Join { bridge, customer } => self.join(bridge, customer, now),
            Cmd::Move { leg, to, then } => self.move_leg(&leg, to, then, now),
            Cmd::Unjoin { bridge } => {
                if let Some(&b) = self.bridge_ids.get(&bridge.id) {
                    self.end_bridge(b, now);
                }
            }
            Cmd::Supervise { bridge, sup, mode } => self.supervise(bridge, sup, mode, now),
            Cmd::Unsupervise { bridge } => {
                if let Some(&b) = self.bridge_ids.get(&bridge.id)
                    && let Some(s) = self.bridges[b].slots[Role::Supervisor as usize]
                {
                    self.detach(s, now);
                }
            }
            Cmd::Record { bridge, rec_id } => match self.bridge_ids.get(&bridge.id) {
                Some(&b) => {
                    self.finish_recording(b, now, None);
                    self.bridges[b].recorder = Some(Recorder { id: rec_id, timeline: Timeline::new(now) });
                    self.ctx.metrics.recordings.inc();
                }
                // The bridge ended before the recording could start: close the file.
                None => {
                    let _ = self.ctx.writer.send(WriterMsg::Finish { id: rec_id, reply: None });
                }
            },
            Cmd::RecordCtl { bridge, rec_id, op } => {
                let Some(&b) = self.bridge_ids.get(&bridge.id) else { return };
                if self.bridges[b].recorder.as_ref().is_none_or(|r| r.id != rec_id) {
                    return;
                }
                match op {
                    RecOp::Pause | RecOp::Resume => {
                        if let Some(r) = &mut self.bridges[b].recorder {
                            r.timeline.set_paused(matches!(op, RecOp::Pause));
                        }
                    }
                    RecOp::Stop(reply) => self.finish_recording(b, now, Some(reply)),
                }
            }
            Cmd::Play { leg, prompt, done } => self.leg_mut(&leg).start_playback(prompt, done),
            Cmd::StopPlay { leg } => self.leg_mut(&leg).stop_playback(),
            Cmd::Dtmf { leg, codes } => self.leg_mut(&leg).dtmf_tx.push(codes),
            Cmd::Tap { leg, tx } => self.leg_mut(&leg).taps.push(tx),
            Cmd::Inbound { leg, mut pkt } => {
                let slot = self.ids[&leg.id];
                self.on_datagram(slot, &mut pkt, None, now);
            }
            Cmd::Close { leg } => {
                let slot = self.ids[&leg.id];
                self.remove_leg(slot, now);
            }
            Cmd::Shutdown => {}
        }
    }

    fn leg_mut(&mut self, leg: &LegShared) -> &mut Leg {
        &mut self.legs[self.ids[&leg.id]]
    }

    /// Sends a command after a leg that is not here: to the shard it moved to, or back to
    /// ourselves when it is on its way here.
    fn reroute(&mut self, leg: &Arc<LegShared>, cmd: Cmd, hops: u8) {
        if hops >= MAX_HOPS || (leg.closed.load(SeqCst) && !matches!(cmd, Cmd::Close { .. })) {
            tracing::debug!(leg = leg.id, hops, "command for a closed or vanished leg dropped");
            return;
        }
        self.ctx.shards[leg.shard.load(SeqCst)].send_hop(cmd, hops + 1);
    }

    fn join(&mut self, bridge: Arc<BridgeShared>, customer: Arc<LegShared>, now: Instant) {
        if bridge.ended.load(SeqCst) {
            for c in self.joining.remove(&bridge.id).unwrap_or_default() {
                self.handle(c, 0, now);
            }
            return;
        }
        let Some(&cs) = self.ids.get(&customer.id) else {
            // Bring the customer here first; the join runs again once it has arrived.
            self.joining.entry(bridge.id).or_default();
            let to = self.index;
            let then = Box::new(Cmd::Join { bridge, customer: customer.clone() });
            return self.ctx.send_to_leg(&customer, Cmd::Move { leg: customer.clone(), to, then });
        };
        let agent_slot = self.ids[&bridge.anchor.id];
        if cs == agent_slot {
            tracing::warn!(leg = customer.id, "a leg cannot be bridged to itself");
            for c in self.joining.remove(&bridge.id).unwrap_or_default() {
                self.handle(c, 0, now);
            }
            return;
        }
        // Re-pointing: a leg in another bridge leaves it (its old partner hears silence).
        self.detach(cs, now);
        self.detach(agent_slot, now);
        let b = self.bridges.insert(BridgeState::new(bridge.id, cs, agent_slot));
        self.bridge_ids.insert(bridge.id, b);
        // The new partner's next packet is due within one packet time: hold our silence
        // back for that long, so a re-point goes straight from one voice to the next.
        for (slot, role) in [(cs, Role::Customer), (agent_slot, Role::Agent)] {
            self.legs[slot].bridge = Some((b, role));
            self.legs[slot].fed_at = Some(now);
        }
        self.ctx.metrics.bridges.inc();
        for c in self.joining.remove(&bridge.id).unwrap_or_default() {
            self.handle(c, 0, now);
        }
    }

    fn supervise(&mut self, bridge: Arc<BridgeShared>, sup: Arc<LegShared>, mode: SupervisorMode, now: Instant) {
        let Some(&b) = self.bridge_ids.get(&bridge.id) else { return };
        let Some(&ss) = self.ids.get(&sup.id) else {
            let to = self.index;
            let then = Box::new(Cmd::Supervise { bridge, sup: sup.clone(), mode });
            return self.ctx.send_to_leg(&sup, Cmd::Move { leg: sup.clone(), to, then });
        };
        if self.bridges[b].role_of(ss).is_some_and(|r| r != Role::Supervisor) {
            tracing::warn!(leg = sup.id, "a party of the call cannot also supervise it");
            return;
        }
        if self.legs[ss].bridge.is_some_and(|(ob, _)| ob != b) {
            self.detach(ss, now);
        }
        if let Some(old) = self.bridges[b].slots[Role::Supervisor as usize]
            && old != ss
        {
            self.detach(old, now);
        }
        if self.bridges[b].mode.is_none() {
            self.ctx.metrics.supervised.inc();
        }
        self.bridges[b].slots[Role::Supervisor as usize] = Some(ss);
        self.bridges[b].mode = Some(mode);
        self.legs[ss].bridge = Some((b, Role::Supervisor));
    }

    fn move_leg(&mut self, leg: &Arc<LegShared>, to: usize, then: Box<Cmd>, now: Instant) {
        let slot = self.ids[&leg.id];
        if to == self.index {
            return self.handle(*then, 0, now);
        }
        self.detach(slot, now);
        let mut l = self.take_leg(slot);
        // A bridge's own feed from this shard is over; the new shard starts fresh.
        l.fed_at = None;
        self.ctx.shards[self.index].legs.fetch_sub(1, SeqCst);
        self.ctx.shards[to].legs.fetch_add(1, SeqCst);
        self.ctx.shards[to].send(Cmd::Add { leg: Box::new(l), then: Some(then) });
        // Only now: commands sent straight to the new shard must queue behind the Add.
        leg.shard.store(to, SeqCst);
    }

    fn take_leg(&mut self, slot: usize) -> Leg {
        let mut l = self.legs.remove(slot);
        self.ids.remove(&l.id());
        if let LegIo::Udp { rtp, rtcp, .. } = &mut l.io {
            let reg = self.poll.registry();
            let _ = reg.deregister(rtp);
            let _ = reg.deregister(rtcp);
        }
        l.publish(&mut self.counters);
        l
    }

    fn remove_leg(&mut self, slot: usize, now: Instant) {
        self.detach(slot, now);
        let mut l = self.take_leg(slot);
        self.ctx.shards[self.index].legs.fetch_sub(1, SeqCst);
        l.stop_playback();
        let kind = match l.io {
            LegIo::Udp { port, .. } => {
                if let Ok(mut p) = self.ctx.ports.lock() {
                    p.free(port);
                    self.ctx.metrics.ports_in_use.set(p.in_use() as i64);
                }
                "rtp"
            }
            LegIo::Channel { .. } => "webrtc",
        };
        self.ctx.metrics.legs.with_label_values(&[kind]).dec();
    }

    /// Takes a leg out of its bridge. The agent leg is the bridge's anchor: without it
    /// the bridge is over.
    fn detach(&mut self, slot: usize, now: Instant) {
        let Some((b, role)) = self.legs[slot].bridge.take() else { return };
        if role == Role::Agent {
            self.legs[slot].bridge = Some((b, role));
            return self.end_bridge(b, now);
        }
        let br = &mut self.bridges[b];
        br.slots[role as usize] = None;
        if role == Role::Supervisor && br.mode.take().is_some() {
            self.ctx.metrics.supervised.dec();
        }
        // Whoever this leg fed gets our silence from the next tick on, not after a gap.
        for s in br.slots.into_iter().flatten() {
            self.legs[s].fed_at = None;
        }
        self.legs[slot].fed_at = None;
    }

    fn end_bridge(&mut self, b: usize, now: Instant) {
        self.finish_recording(b, now, None);
        let br = self.bridges.remove(b);
        self.bridge_ids.remove(&br.id);
        for slot in br.slots.into_iter().flatten() {
            self.legs[slot].bridge = None;
            self.legs[slot].fed_at = None;
        }
        if br.mode.is_some() {
            self.ctx.metrics.supervised.dec();
        }
        self.ctx.metrics.bridges.dec();
    }

    fn finish_recording(&mut self, b: usize, now: Instant, reply: Option<oneshot::Sender<Result<std::path::PathBuf, crate::MediaError>>>) {
        let Some(mut rec) = self.bridges[b].recorder.take() else { return };
        if let Some(samples) = rec.timeline.take(now, true) {
            let _ = self.ctx.writer.send(WriterMsg::Data { id: rec.id, samples });
        }
        let _ = self.ctx.writer.send(WriterMsg::Finish { id: rec.id, reply });
        self.ctx.metrics.recordings.dec();
    }

    fn tick(&mut self, now: Instant) {
        self.ticks += 1;
        let timeout = self.ctx.rtp_timeout;
        for (_, leg) in self.legs.iter_mut() {
            leg.tick(now, &mut self.scratch.out, &mut self.counters, timeout);
        }
        for (_, b) in self.bridges.iter_mut() {
            if let Some(r) = &mut b.recorder
                && let Some(samples) = r.timeline.take(now, false)
            {
                let _ = self.ctx.writer.send(WriterMsg::Data { id: r.id, samples });
            }
        }
        if self.ticks.is_multiple_of(5) {
            for (_, leg) in self.legs.iter_mut() {
                leg.publish(&mut self.counters);
            }
        }
        if self.ticks.is_multiple_of(50) {
            for (_, leg) in self.legs.iter() {
                if leg.last_rx.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
                    self.ctx.metrics.jitter.observe(leg.rx.jitter() as f64 / 8000.0);
                }
            }
            self.counters.flush(&self.ctx.metrics);
        }
    }
}
