//! The lead state machine.
//!
//! ```text
//! new ──claim──▶ hopper ──dial──▶ dialling ──outcome──▶ retry / callback / done / dnc
//!  ▲               │  ▲             │                      │       │
//!  │               └──┴─lease expires┘ (back to new/retry/callback)│
//!  └──────────────── reset ◀────────────────────────────────────────┘
//! retry, callback ──claim (when due)──▶ hopper
//! ```
//!
//! The store performs these moves in SQL; [`next`] is the single statement of which moves
//! are legal, used by the store's checks and by the property tests.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeadState {
    /// Never dialled.
    New,
    /// Claimed by a dialer node under a lease.
    Hopper,
    /// A call is in progress (still leased).
    Dialling,
    /// Waits for `next_due_at`.
    Retry,
    /// A scheduled callback (see the `callbacks` table).
    Callback,
    /// Finished: contacted, exhausted or invalid.
    Done,
    /// On a do-not-call list.
    Dnc,
}

impl LeadState {
    pub const ALL: [LeadState; 7] =
        [LeadState::New, LeadState::Hopper, LeadState::Dialling, LeadState::Retry, LeadState::Callback, LeadState::Done, LeadState::Dnc];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadState::New => "new",
            LeadState::Hopper => "hopper",
            LeadState::Dialling => "dialling",
            LeadState::Retry => "retry",
            LeadState::Callback => "callback",
            LeadState::Done => "done",
            LeadState::Dnc => "dnc",
        }
    }

    /// Held by a lease (a node is working on it).
    pub fn is_leased(self) -> bool {
        matches!(self, LeadState::Hopper | LeadState::Dialling)
    }
}

impl std::str::FromStr for LeadState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LeadState::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| format!("unknown lead state {s:?}"))
    }
}

/// What happens to a lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Claim,
    Dial,
    /// The lease ran out; the lead returns to where it came from.
    LeaseExpired { back_to: LeadState },
    /// A call finished and the retry rules decided.
    Outcome { to: LeadState },
    Reset,
    AddDnc,
}

/// The state after `event`, or `None` when the move is not allowed.
pub fn next(state: LeadState, event: Event) -> Option<LeadState> {
    use LeadState::*;
    match (state, event) {
        (New | Retry | Callback, Event::Claim) => Some(Hopper),
        (Hopper, Event::Dial) => Some(Dialling),
        (Hopper | Dialling, Event::LeaseExpired { back_to: b @ (New | Retry | Callback) }) => Some(b),
        (Hopper | Dialling, Event::Outcome { to: t @ (Retry | Callback | Done | Dnc) }) => Some(t),
        (New | Retry | Callback | Done, Event::Reset) => Some(New),
        (New | Retry | Callback | Done, Event::AddDnc) => Some(Dnc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event() -> impl Strategy<Value = Event> {
        let st = proptest::sample::select(LeadState::ALL.to_vec());
        prop_oneof![
            Just(Event::Claim),
            Just(Event::Dial),
            st.clone().prop_map(|b| Event::LeaseExpired { back_to: b }),
            st.prop_map(|t| Event::Outcome { to: t }),
            Just(Event::Reset),
            Just(Event::AddDnc),
        ]
    }

    proptest! {
        /// A population of leads driven by random events: refused moves leave a lead where
        /// it is, so the count per run is constant and every lead is in exactly one state;
        /// a leased lead always leaves its lease through a legal move; dnc is final.
        #[test]
        fn no_transition_loses_or_duplicates(events in proptest::collection::vec((0usize..20, event()), 0..400)) {
            let mut leads = vec![LeadState::New; 20];
            for (i, ev) in events {
                let before = leads[i];
                if let Some(after) = next(before, ev) {
                    prop_assert!(before != LeadState::Dnc, "dnc is final");
                    if before.is_leased() && !after.is_leased() {
                        let settled = matches!(ev, Event::Outcome { .. } | Event::LeaseExpired { .. });
                        prop_assert!(settled, "left a lease by {:?}", ev);
                    }
                    if after.is_leased() && !before.is_leased() {
                        prop_assert_eq!(ev, Event::Claim);
                    }
                    leads[i] = after;
                }
                prop_assert_eq!(leads.len(), 20);
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in LeadState::ALL {
            assert_eq!(s.as_str().parse::<LeadState>().unwrap(), s);
        }
    }
}
