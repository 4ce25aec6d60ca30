use std::sync::Arc;
use tokio::sync::mpsc;
use crate::{Endpoint, LegShared, MediaError};
use crate::engine::EngineInner;
#[derive(Clone)]
pub(crate) struct PeerLeg;
impl PeerLeg { pub fn attach(&self, _e: &Endpoint) -> Result<(), MediaError> { Ok(()) } }
pub(crate) async fn answer(_e: Arc<EngineInner>, _s: Arc<LegShared>, _o: &str) -> Result<(PeerLeg, mpsc::Sender<Vec<u8>>, String), MediaError> {
    Err(MediaError::Unsupported("x"))
}
