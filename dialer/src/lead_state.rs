//! The lead state machine.
//!
//! ```text
//! new ──claim──▶ hopper ──dial──▶ dialling ──outcome──▶ retry / callback / done / dnc
//!  ▲               │  ▲             │                      │       │
//!  │               └──┴─lease expires┘ (back to new/retry/callback)│
//!  └──────────────── reset ◀────────────────────────────────────────┘
//! retry, callback ──claim (when due)──▶ hopper
//! new, retry, callback ──skip (no dialable number at claim)──▶ retry / done / dnc
//! new, retry, done ──schedule──▶ callback ──cancel──▶ retry
//! ```
//!
//! The store performs these moves in SQL; [`next`] is the single statement of which moves
//! are legal. The property tests check it on its own and against the real store (every
//! change the store makes to a lead is one of these moves, and no lead is held twice).
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
    /// A call finished and the retry rules decided. Also from an unleased lead: a call
    /// placed outside the hopper (a manual dial) is recorded the same way.
    Outcome { to: LeadState },
    /// At claim, no number of the lead could be dialled: all on DNC, all at their attempt
    /// cap (done), or resting after an abandoned call (retry later).
    Skip { to: LeadState },
    /// A manager starts the lead over (also out of `dnc` once its number left the lists).
    Reset,
    AddDnc,
    /// A callback is scheduled (by a manager) for a lead that is not on a call.
    Schedule,
    /// An open callback is cancelled; the lead becomes a retry.
    CancelCallback,
}

/// The state after `event`, or `None` when the move is not allowed.
pub fn next(state: LeadState, event: Event) -> Option<LeadState> {
    use LeadState::*;
    match (state, event) {
        (New | Retry | Callback, Event::Claim) => Some(Hopper),
        (Hopper, Event::Dial) => Some(Dialling),
        (Hopper | Dialling, Event::LeaseExpired { back_to: b @ (New | Retry | Callback) }) => Some(b),
        (Hopper | Dialling | New | Retry | Callback | Done, Event::Outcome { to: t @ (Retry | Callback | Done | Dnc) }) => Some(t),
        (New | Retry | Callback, Event::Skip { to: t @ (Retry | Done | Dnc) }) => Some(t),
        (New | Retry | Callback | Done | Dnc, Event::Reset) => Some(New),
        (New | Retry | Callback | Done, Event::AddDnc) => Some(Dnc),
        (New | Retry | Callback | Done, Event::Schedule) => Some(Callback),
        (Callback, Event::CancelCallback) => Some(Retry),
        _ => None,
    }
}

/// Every event, for the property tests.
pub fn all_events() -> Vec<Event> {
    let mut v = vec![Event::Claim, Event::Dial, Event::Reset, Event::AddDnc, Event::Schedule, Event::CancelCallback];
    for s in LeadState::ALL {
        v.push(Event::LeaseExpired { back_to: s });
        v.push(Event::Outcome { to: s });
        v.push(Event::Skip { to: s });
    }
    v
}

/// True when one legal move (or none) takes a lead from `from` to `to`.
pub fn reachable_in_one(from: LeadState, to: LeadState) -> bool {
    from == to || all_events().into_iter().any(|e| next(from, e) == Some(to))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event() -> impl Strategy<Value = Event> {
        proptest::sample::select(all_events())
    }

    proptest! {
        /// Leads driven by random events. The only way into a lease is a claim; the only
        /// ways out are an outcome or the lease's expiry (a live call is never dropped by
        /// a reset, a DNC add or a callback); dnc is left only by a reset; a lead is in
        /// exactly one state, so a population keeps its size and each state count adds up.
        #[test]
        fn no_transition_loses_or_duplicates(events in proptest::collection::vec((0usize..20, event()), 0..400)) {
            let mut leads = vec![LeadState::New; 20];
            for (i, ev) in events {
                let before = leads[i];
                if let Some(after) = next(before, ev) {
                    if before == LeadState::Dnc {
                        prop_assert_eq!(ev, Event::Reset, "dnc left by {:?}", ev);
                    }
                    if before.is_leased() && !after.is_leased() {
                        let settled = matches!(ev, Event::Outcome { .. } | Event::LeaseExpired { .. });
                        prop_assert!(settled, "left a lease by {:?}", ev);
                    }
                    if after.is_leased() && !before.is_leased() {
                        prop_assert_eq!(ev, Event::Claim);
                    }
                    leads[i] = after;
                } else {
                    prop_assert!(!matches!((before, ev), (LeadState::New | LeadState::Retry | LeadState::Callback, Event::Claim)), "claim refused from {:?}", before);
                }
                let per_state: usize = LeadState::ALL.iter().map(|s| leads.iter().filter(|l| *l == s).count()).sum();
                prop_assert_eq!(per_state, 20);
            }
        }
    }

    #[test]
    fn every_state_can_reach_done_or_dnc() {
        // No state is a trap: from each, some sequence of moves finishes the lead.
        for s in LeadState::ALL {
            let mut seen = vec![s];
            let mut i = 0;
            while i < seen.len() {
                for e in all_events() {
                    if let Some(t) = next(seen[i], e) {
                        if !seen.contains(&t) {
                            seen.push(t);
                        }
                    }
                }
                i += 1;
            }
            assert!(seen.contains(&LeadState::Done) && seen.contains(&LeadState::Dnc), "{s:?} reaches only {seen:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in LeadState::ALL {
            assert_eq!(s.as_str().parse::<LeadState>().unwrap(), s);
        }
    }
}
