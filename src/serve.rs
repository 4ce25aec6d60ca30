//! `pacer serve`: start the server (see [`crate::live`]), stop cleanly on SIGINT/SIGTERM.

use std::time::Duration;

use pacer_config::Config;

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    // Register the signal handlers before announcing readiness: a SIGTERM that arrives
    // right after "listening" must shut down cleanly, not kill the process.
    let signals = Signals::register()?;
    let grace = Duration::from_secs(cfg.http.shutdown_grace_s);
    let live = crate::live::Live::start(cfg).await?;
    signals.recv().await;
    tracing::info!("shutting down: no new calls or requests, finishing the ones in flight");
    live.shutdown(grace).await;
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
