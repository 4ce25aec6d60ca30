//! `pacer-acd`: the automatic call distributor, as a sans-I/O state machine.
//!
//! Agents, skills, agent states (ready, reserved, on call, wrap-up, not ready) and the
//! routing of answered calls to agents; the pacing engine reads its agent view. Time is an
//! input, so `pacer simulate` can drive the same code in virtual time.
//! Not built yet: this crate has no code so far (issue #6).
