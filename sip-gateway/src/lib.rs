//! `pacer-sip`: Pacer's SIP gateway (a B2BUA built on rsipstack).
//!
//! It will offer three things to the application and know nothing of campaigns:
//! originate a call to a number on a trunk with an SDP offer and report what happens;
//! hand over inbound calls from configured trunks; and keep the registrar of agent stations
//! (UDP, TCP, SIP over WebSocket). Settings come from [`pacer_config::SipConfig`] and
//! [`pacer_config::TrunkConfig`]. Not built yet: this crate has no code so far (issue #4).
