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
    tracing::info!(%addr, url = %format!("http://{addr}"), "listening");

    let grace = Duration::from_secs(cfg.http.shutdown_grace_s);
    let state = AppState { store: store.clone(), metrics: Metrics::new(), config: Arc::new(cfg) };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    });
    tokio::spawn(async move {
        shutdown_signal().await;
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

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
