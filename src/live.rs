//! The whole server started in one place: store, SIP gateway, media engine, ACD, agent
//! desks, dialer and the HTTP server (API, CTI sockets, pages, metrics). `pacer serve`
//! and `pacer demo` both run this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pacer_config::Config;
use pacer_dialer::store::Store;
use pacer_media::MediaEngine;
use pacer_sip::SipGateway;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::acd::LiveAcd;
use crate::cti::Cti;
use crate::cti::desk::Desks;
use crate::dialing::{Dialer, Parts};
use crate::http::{AppState, router};
use crate::metrics::Metrics;

/// A running server.
pub struct Live {
    pub store: Store,
    pub acd: LiveAcd,
    pub sip: Arc<SipGateway>,
    pub dialer: Arc<Dialer>,
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Live {
    /// Opens the store (migrating when the config says so), binds SIP, RTP and HTTP, and
    /// starts dialling the campaigns that are running.
    pub async fn start(cfg: Config) -> anyhow::Result<Live> {
        let store = crate::cli::open_store(&cfg).await?;
        if cfg.database.migrate_on_start {
            store.migrate().await.context("applying migrations")?;
        }
        let listener = tokio::net::TcpListener::bind(cfg.http.listen).await.with_context(|| format!("http.listen: cannot bind {}", cfg.http.listen))?;
        let http_addr = listener.local_addr()?;
        let tls = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
            (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k)?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let metrics = Metrics::new();
        let media = MediaEngine::new(&cfg.media).context("media")?;
        media.register_metrics(&metrics.registry)?;
        let sip = Arc::new(SipGateway::start(&cfg.sip, &cfg.trunks).await.context("sip")?);
        sip.register_metrics(&metrics.registry)?;
        let acd = LiveAcd::new();
        tokio::spawn(crate::acd::log_states(store.clone(), acd.subscribe()));
        let desks = Arc::new(Desks::default());
        let signing_key = Arc::new(crate::webhooks::signing_key(cfg.auth.signing_key.as_deref(), &cfg.data_dir)?);
        let config = Arc::new(cfg);
        let node = config.dialer.node_name.clone().unwrap_or_else(hostname);
        let webhooks = Arc::new(crate::webhooks::Webhooks::new(store.clone(), config.webhooks.clone(), node.clone(), signing_key.to_vec()));
        tokio::spawn(webhooks.clone().run());
        let public_url = config.http.public_url.clone().unwrap_or_else(|| format!("{scheme}://{http_addr}"));
        let dialer = Dialer::start(Parts {
            store: store.clone(),
            sip: sip.clone(),
            media: media.clone(),
            acd: acd.clone(),
            desks: desks.clone(),
            config: config.clone(),
            registry: metrics.registry.clone(),
            node,
            webhooks,
            signing_key: signing_key.clone(),
            public_url,
        })
        .await?;
        let cti = Arc::new(Cti { store: store.clone(), acd: acd.clone(), desks: desks.clone(), media: media.clone(), dialer: dialer.clone(), centre_zone: config.dialer.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC) });
        let state = AppState { store: store.clone(), metrics: metrics.clone(), config: config.clone(), cti: Some(cti), dialer: Some(dialer.clone()), signing_key: Some(signing_key) };
        let (stop, mut stop_rx) = watch::channel(false);
        let app = router(state).into_make_service_with_connect_info::<crate::tls::Peer>();
        let shutdown = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        let server = match tls {
            Some(acceptor) => {
                let listener = crate::tls::TlsListener::new(listener, acceptor)?;
                tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await })
            }
            None => tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await }),
        };
        tokio::spawn(agent_gauges(acd.clone(), dialer.ctx().metrics.agents.clone()));
        tracing::info!(%http_addr, url = %format!("{scheme}://{http_addr}"), sip = %sip.local_addr(), "listening");
        Ok(Live { store, acd, sip, dialer, http_addr, stop, server })
    }

    /// Calls the dialer has started for a campaign on this node (its metric).
    pub fn metrics_dials(&self, campaign: i64) -> u64 {
        self.dialer.campaign_name(campaign).map_or(0, |n| self.dialer.ctx().metrics.dials.with_label_values(&[&n]).get())
    }

    /// Stops dialling, lets calls end (bounded by `grace`), then closes HTTP and SIP.
    pub async fn shutdown(self, grace: Duration) {
        self.dialer.shutdown(grace).await;
        let _ = self.stop.send(true);
        match tokio::time::timeout(grace, self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "http server task failed"),
            Err(_) => tracing::warn!("requests still open after the grace period; closing them"),
        }
        self.sip.shutdown();
        self.store.close().await;
    }
}

/// `pacer_agents{state}` from the ACD's view, every two seconds.
async fn agent_gauges(acd: LiveAcd, g: prometheus::IntGaugeVec) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let v = acd.view(None);
        for (state, n) in [("ready", v.ready as usize), ("reserved", v.reserved as usize), ("on_call", v.in_call.len()), ("wrap_up", v.wrap_up.len()), ("not_ready", v.not_ready as usize)] {
            g.with_label_values(&[state]).set(n as i64);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "pacer".into())
}
