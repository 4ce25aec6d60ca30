//! Bridges: a customer leg connected to an agent's leg, with optional supervisor and
//! recording. The handle is a remote control; the bridge itself lives on the shard that
//! owns its legs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use tokio::sync::oneshot;

use crate::endpoint::Endpoint;
use crate::engine::EngineInner;
use crate::recorder::{self, WriterMsg};
use crate::shard::{Cmd, RecOp};
use crate::{LegShared, MediaError};

/// How a supervisor joins a live call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupervisorMode {
    /// Hears both parties; nobody hears the supervisor.
    Listen,
    /// Hears both; the agent hears the supervisor, the customer does not (coaching).
    Whisper,
    /// A three-way call: everyone hears everyone.
    Barge,
}

pub(crate) struct BridgeShared {
    pub id: u64,
    /// The agent's leg: the bridge lives on whichever shard it does.
    pub anchor: Arc<LegShared>,
    pub ended: AtomicBool,
}

struct BridgeInner {
    shared: Arc<BridgeShared>,
    engine: Arc<EngineInner>,
    // Handles keep both legs open for as long as they are bridged.
    _customer: Endpoint,
    _agent: Endpoint,
    supervisor: std::sync::Mutex<Option<Endpoint>>,
}

impl Drop for BridgeInner {
    fn drop(&mut self) {
        end(&self.engine, &self.shared);
    }
}

fn end(engine: &EngineInner, shared: &Arc<BridgeShared>) {
    if !shared.ended.swap(true, SeqCst) {
        engine.ctx.send_to_leg(&shared.anchor, Cmd::Unjoin { bridge: shared.clone() });
    }
}

/// A customer leg connected to an agent leg, both ways. Clones are handles to the same
/// bridge; ending it (or dropping the last handle) puts both legs back to silence, and
/// the agent's stream goes on without a break.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<BridgeInner>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bridge({})", self.inner.shared.id)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Bridge {
    pub(crate) fn start(engine: Arc<EngineInner>, customer: &Endpoint, agent: &Endpoint) -> Result<Bridge, MediaError> {
        if customer.shared().id == agent.shared().id {
            return Err(MediaError::InvalidArgument("a leg cannot be bridged to itself".into()));
        }
        for e in [customer, agent] {
            if e.shared().closed.load(SeqCst) {
                return Err(MediaError::Closed);
            }
        }
        let shared = Arc::new(BridgeShared {
            id: NEXT_ID.fetch_add(1, SeqCst),
            anchor: agent.shared().clone(),
            ended: AtomicBool::new(false),
        });
        engine.ctx.send_to_leg(agent.shared(), Cmd::Join { bridge: shared.clone(), customer: customer.shared().clone() });
        Ok(Bridge {
            inner: Arc::new(BridgeInner {
                shared,
                engine,
                _customer: customer.clone(),
                _agent: agent.clone(),
                supervisor: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Starts recording this call into a stereo WAV at `path` (customer left, agent right,
    /// 8 kHz 16-bit). The file is created now, so a bad path fails here.
    pub fn record(&self, path: impl Into<PathBuf>) -> Result<Recording, MediaError> {
        if self.inner.shared.ended.load(SeqCst) {
            return Err(MediaError::Closed);
        }
        let path = path.into();
        let wav = recorder::create(&path)?;
        let id = NEXT_ID.fetch_add(1, SeqCst);
        let writer = self.inner.engine.ctx.writer.clone();
        writer
            .send(WriterMsg::Open { id, path: path.clone(), wav })
            .map_err(|_| MediaError::Recording { path: path.clone(), reason: "the recorder thread is gone".into() })?;
        self.send(Cmd::Record { bridge: self.inner.shared.clone(), rec_id: id });
        Ok(Recording { id, path, bridge: self.inner.shared.clone(), engine: self.inner.engine.clone() })
    }

    /// Adds (or changes the mode of) a supervisor. The supervisor's leg is typically
    /// their own persistent leg; it leaves any other bridge it was in.
    pub fn add_supervisor(&self, supervisor: &Endpoint, mode: SupervisorMode) -> Result<(), MediaError> {
        if self.inner.shared.ended.load(SeqCst) || supervisor.shared().closed.load(SeqCst) {
            return Err(MediaError::Closed);
        }
        if supervisor.shared().id == self.inner.shared.anchor.id || supervisor.shared().id == self.inner._customer.shared().id {
            return Err(MediaError::InvalidArgument("a party of the call cannot also supervise it".into()));
        }
        self.send(Cmd::Supervise { bridge: self.inner.shared.clone(), sup: supervisor.shared().clone(), mode });
        if let Ok(mut s) = self.inner.supervisor.lock() {
            *s = Some(supervisor.clone());
        }
        Ok(())
    }

    /// Takes the supervisor out of the call; their leg goes back to silence.
    pub fn remove_supervisor(&self) {
        self.send(Cmd::Unsupervise { bridge: self.inner.shared.clone() });
        if let Ok(mut s) = self.inner.supervisor.lock() {
            *s = None;
        }
    }

    /// Disconnects the legs (both hear silence) and closes a running recording.
    pub fn end(&self) {
        end(&self.inner.engine, &self.inner.shared);
    }

    /// Whether [`Bridge::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.inner.shared.ended.load(SeqCst)
    }

    fn send(&self, cmd: Cmd) {
        self.inner.engine.ctx.send_to_leg(&self.inner.shared.anchor, cmd);
    }
}

/// A running recording. It runs until [`Recording::stop`] or the end of the bridge
/// (dropping this handle does not stop it); `stop` still returns the path after the
/// bridge has ended.
pub struct Recording {
    id: u64,
    path: PathBuf,
    bridge: Arc<BridgeShared>,
    engine: Arc<EngineInner>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recording({})", self.path.display())
    }
}

impl Recording {
    /// Where the file is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Stops capturing (payment details): silence is written meanwhile, so the file
    /// keeps the call's timeline.
    pub fn pause(&self) {
        self.ctl(RecOp::Pause);
    }

    pub fn resume(&self) {
        self.ctl(RecOp::Resume);
    }

    fn ctl(&self, op: RecOp) {
        self.engine.ctx.send_to_leg(&self.bridge.anchor, Cmd::RecordCtl { bridge: self.bridge.clone(), rec_id: self.id, op });
    }

    /// Writes what is left, closes the file and returns its path (for the CDR).
    pub async fn stop(self) -> Result<PathBuf, MediaError> {
        let (tx, rx) = oneshot::channel();
        self.ctl(RecOp::Stop(tx));
        if let Ok(r) = rx.await {
            return r;
        }
        // The bridge had already ended and closed the file: ask the writer how it went.
        let (tx, rx) = oneshot::channel();
        let _ = self.engine.ctx.writer.send(WriterMsg::Finish { id: self.id, reply: Some(tx) });
        rx.await.unwrap_or(Err(MediaError::Closed))
    }
}
