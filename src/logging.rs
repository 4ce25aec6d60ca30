//! Logs: `tracing` to stderr, human-readable or JSON lines (`logging.format`).

use pacer_config::{LogFormat, LoggingConfig};
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `RUST_LOG`, when set, wins over `logging.level`.
pub fn init(cfg: &LoggingConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(&v).map_err(|e| anyhow::anyhow!("RUST_LOG: {e}"))?,
        _ => EnvFilter::try_new(&cfg.level).map_err(|e| anyhow::anyhow!("logging.level: {e}"))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}
