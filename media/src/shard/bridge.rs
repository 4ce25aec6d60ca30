//! A bridge as its shard holds it: which legs play which part, who hears whom in each
//! supervisor mode, the last decoded frame of every party that others hear mixed in, and
//! the recording timeline.

use std::time::{Duration, Instant};

use crate::bridge::SupervisorMode;
use crate::codec::FRAME_SAMPLES;
use crate::recorder::Timeline;

/// A mixed-in frame older than this is stale (its sender stopped): it is not reused.
const FRAME_FRESH: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Customer = 0,
    Agent = 1,
    Supervisor = 2,
}

/// A receiver of audio from some party: it takes that party's packet as the one that sets
/// its timing, and mixes in the latest frame of `mix` when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub to: Role,
    pub mix: Option<Role>,
}

/// Who hears audio arriving from `from`, given the supervisor mode.
///
/// - no supervisor: customer ⇄ agent.
/// - listen: the supervisor hears the customer with the agent mixed in.
/// - whisper: as listen, and the agent also hears the supervisor; the customer does not.
/// - barge: everyone hears the other two.
pub(crate) fn routes(from: Role, mode: Option<SupervisorMode>) -> [Option<Route>; 2] {
    use SupervisorMode::*;
    let sup_talks_to_agent = matches!(mode, Some(Whisper | Barge));
    match from {
        Role::Customer => [
            Some(Route { to: Role::Agent, mix: sup_talks_to_agent.then_some(Role::Supervisor) }),
            mode.map(|_| Route { to: Role::Supervisor, mix: Some(Role::Agent) }),
        ],
        Role::Agent => [Some(Route { to: Role::Customer, mix: matches!(mode, Some(Barge)).then_some(Role::Supervisor) }), None],
        Role::Supervisor => [None, None],
    }
}

/// Whether audio from `from` is mixed into somebody else's stream, so its last frame is kept.
pub(crate) fn is_mixed_in(from: Role, mode: Option<SupervisorMode>) -> bool {
    match from {
        Role::Customer => false,
        Role::Agent => mode.is_some(),
        Role::Supervisor => matches!(mode, Some(SupervisorMode::Whisper | SupervisorMode::Barge)),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MixFrame {
    pub pcm: [i16; FRAME_SAMPLES],
    pub len: usize,
    generation: u64,
    at: Option<Instant>,
}

pub(crate) struct Recorder {
    pub id: u64,
    pub timeline: Timeline,
}

pub(crate) struct BridgeState {
    pub id: u64,
    /// Slots of the legs, by [`Role`].
    pub slots: [Option<usize>; 3],
    pub mode: Option<SupervisorMode>,
    frames: [MixFrame; 3],
    /// `consumed[to][from]`: the generation of `from`'s frame that `to` mixed last.
    consumed: [[u64; 3]; 3],
    pub recorder: Option<Recorder>,
}

impl BridgeState {
    pub fn new(id: u64, customer: usize, agent: usize) -> Self {
        let empty = MixFrame { pcm: [0; FRAME_SAMPLES], len: 0, generation: 0, at: None };
        Self {
            id,
            slots: [Some(customer), Some(agent), None],
            mode: None,
            frames: [empty.clone(), empty.clone(), empty],
            consumed: [[0; 3]; 3],
            recorder: None,
        }
    }

    /// Keeps the latest frame of a party that others hear mixed in.
    pub fn store(&mut self, from: Role, pcm: &[i16], now: Instant) {
        let f = &mut self.frames[from as usize];
        let n = pcm.len().min(FRAME_SAMPLES);
        f.pcm[..n].copy_from_slice(&pcm[..n]);
        f.len = n;
        f.generation += 1;
        f.at = Some(now);
    }

    /// The frame of `from` that `to` has not mixed yet, if it is fresh. Each frame is
    /// mixed into each receiver once, so a party is never heard twice.
    pub fn take(&mut self, from: Role, to: Role, now: Instant) -> Option<&[i16]> {
        let f = &self.frames[from as usize];
        let seen = &mut self.consumed[to as usize][from as usize];
        if f.generation == *seen || f.at.is_none_or(|t| now.duration_since(t) > FRAME_FRESH) {
            return None;
        }
        *seen = f.generation;
        Some(&f.pcm[..f.len])
    }

    pub fn role_of(&self, slot: usize) -> Option<Role> {
        [Role::Customer, Role::Agent, Role::Supervisor].into_iter().find(|r| self.slots[*r as usize] == Some(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SupervisorMode::*;

    fn hears(listener: Role, mode: Option<SupervisorMode>) -> Vec<Role> {
        let mut v = Vec::new();
        for from in [Role::Customer, Role::Agent, Role::Supervisor] {
            for r in routes(from, mode).into_iter().flatten() {
                if r.to == listener {
                    v.push(from);
                    if let Some(m) = r.mix {
                        assert!(is_mixed_in(m, mode), "{m:?} is mixed but not kept");
                        v.push(m);
                    }
                }
            }
        }
        v.sort_by_key(|r| *r as u8);
        v
    }

    #[test]
    fn who_hears_whom() {
        use Role::*;
        assert_eq!(hears(Customer, None), vec![Agent]);
        assert_eq!(hears(Agent, None), vec![Customer]);
        assert_eq!(hears(Supervisor, None), vec![]);
        assert_eq!(hears(Customer, Some(Listen)), vec![Agent]);
        assert_eq!(hears(Agent, Some(Listen)), vec![Customer]);
        assert_eq!(hears(Supervisor, Some(Listen)), vec![Customer, Agent]);
        assert_eq!(hears(Customer, Some(Whisper)), vec![Agent]);
        assert_eq!(hears(Agent, Some(Whisper)), vec![Customer, Supervisor]);
        assert_eq!(hears(Supervisor, Some(Whisper)), vec![Customer, Agent]);
        assert_eq!(hears(Customer, Some(Barge)), vec![Agent, Supervisor]);
        assert_eq!(hears(Agent, Some(Barge)), vec![Customer, Supervisor]);
        assert_eq!(hears(Supervisor, Some(Barge)), vec![Customer, Agent]);
    }

    #[test]
    fn a_frame_is_mixed_once_per_receiver_and_goes_stale() {
        let t = Instant::now();
        let mut b = BridgeState::new(1, 0, 1);
        b.store(Role::Supervisor, &[3; 160], t);
        assert_eq!(b.take(Role::Supervisor, Role::Agent, t).map(|f| f[0]), Some(3));
        assert!(b.take(Role::Supervisor, Role::Agent, t).is_none());
        assert!(b.take(Role::Supervisor, Role::Customer, t).is_some());
        b.store(Role::Supervisor, &[4; 160], t);
        assert!(b.take(Role::Supervisor, Role::Agent, t + Duration::from_millis(150)).is_none());
    }
}
