//! `pacer serve`: open the store, start the HTTP server, stop cleanly on SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pacer_config::Config;
use tokio::sync::watch;

use crate::http::{AppState, router};
use crate::metrics::Metrics;

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let store = crate::cli::open_store(&cfg).await?;
    if cfg.database.migrate_on_start {
        store.migrate().await.context("applying migrations")?;
    }
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("http.listen: cannot bind {}", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    // Register the signal handlers before announcing readiness: a SIGTERM that arrives
    // right after "listening" must shut down cleanly, not kill the process.
    let signals = Signals::register()?;
    tracing::info!(%addr, url = %format!("http://{addr}"), "listening");

    let grace = Duration::from_secs(cfg.http.shutdown_grace_s);
    let state = AppState { store: store.clone(), metrics: Metrics::new(), config: Arc::new(cfg) };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    });
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("shutting down: no new requests, finishing the ones in flight");
        let _ = stop_tx.send(true);
    });

    tokio::select! {
        r = server => r.context("http server")?,
        _ = async {
            let _ = stop_rx.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(grace_s = grace.as_secs(), "requests still open after the grace period; closing them"),
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM, registered up front.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Resolves on the first SIGINT or SIGTERM.
    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! { _ = self.term.recv() => {}, _ = self.int.recv() => {} }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
