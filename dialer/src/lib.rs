//! `pacer-dialer`: the campaign side of Pacer.
//!
//! Today this crate holds the [`store::Store`]: one connection pool over SQLite (the embedded
//! default) or PostgreSQL, the schema's migrations (the same files for both databases), and
//! the first campaign rows. Campaigns, lists, leads, the hopper, calling windows, DNC,
//! retries and the pacing engine build on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pacer_dialer::store::StoreError> {
//! use pacer_dialer::store::{Store, StoreOptions};
//! let store = Store::connect("sqlite://data/pacer.db", &StoreOptions::default()).await?;
//! store.migrate().await?;
//! assert!(store.pending_migrations().await?.is_empty());
//! # Ok(()) }
//! ```

pub mod caller_id;
pub mod filter;
pub mod guard;
pub mod hopper;
pub mod import;
pub mod lead_state;
pub mod outcome;
pub mod pacing;
pub mod phone;
pub mod retry;
pub mod settings;
pub mod sim;
pub mod store;
pub mod window;
pub mod test_support;
