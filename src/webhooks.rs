//! Webhooks: call events POSTed as JSON to the configured URLs, so a CRM can store the
//! outcome and the recording link.
//!
//! Events go through the store's outbox (`webhook_outbox`): queued when the call actor
//! knows them, delivered by one task per node, retried with exponential backoff (1 s, 2 s,
//! 4 s … at most 5 min) until the receiver answers 2xx or `webhooks.max_attempts` run out.
//! A restart picks up what was not delivered. Each POST carries
//! `X-Pacer-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with
//! `auth.signing_key` (or the key generated in the data directory), and
//! `X-Pacer-Event: <event>`.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use pacer_config::WebhooksConfig;
use pacer_dialer::store::{Store, now_ms};
use sha2::Sha256;
use tokio::sync::Notify;

/// The server's secret for signatures (webhooks, recording URLs): `auth.signing_key`, or
/// a random key kept in `DATA_DIR/signing.key` (created on first start, mode 0600).
pub fn signing_key(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(k) = configured {
        return Ok(k.as_bytes().to_vec());
    }
    let path = data_dir.join("signing.key");
    if let Ok(k) = std::fs::read(&path) {
        if k.len() >= 32 {
            return Ok(k);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let key: String = (0..48).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[rand::random_range(0..62)])).collect();
    std::fs::write(&path, &key).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key.into_bytes())
}

/// `t=…,v1=…` for `body` at time `t`.
pub fn signature(key: &[u8], t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Queues events and delivers them.
pub struct Webhooks {
    store: Store,
    cfg: WebhooksConfig,
    node: String,
    key: Vec<u8>,
    wake: Notify,
}

impl Webhooks {
    pub fn new(store: Store, cfg: WebhooksConfig, node: String, key: Vec<u8>) -> Webhooks {
        Webhooks { store, cfg, node, key, wake: Notify::new() }
    }

    /// Queues one event for every URL (nothing when none is configured). A store error is
    /// logged: the event is lost, but never the call's outcome, which is written first.
    pub async fn emit(&self, event: &str, body: &serde_json::Value) {
        if self.cfg.urls.is_empty() {
            return;
        }
        let text = body.to_string();
        match self.store.enqueue_webhooks(&self.node, &self.cfg.urls, event, &text).await {
            Ok(()) => self.wake.notify_one(),
            Err(e) => tracing::warn!(event, error = %e, "cannot queue the webhook event"),
        }
    }

    /// Delivers queued events until the process ends.
    pub async fn run(self: std::sync::Arc<Self>) {
        if self.cfg.urls.is_empty() {
            return;
        }
        let client = match reqwest::Client::builder().timeout(Duration::from_secs(self.cfg.timeout_s)).user_agent(concat!("Pacer/", env!("CARGO_PKG_VERSION"))).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not delivered");
                return;
            }
        };
        loop {
            let due = match self.store.due_webhooks(&self.node, self.cfg.max_attempts, 50).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the webhook outbox");
                    Vec::new()
                }
            };
            for d in &due {
                let t = now_ms() / 1000;
                let sent = client
                    .post(&d.url)
                    .header("content-type", "application/json")
                    .header("x-pacer-event", &d.event)
                    .header("x-pacer-signature", signature(&self.key, t, &d.body))
                    .body(d.body.clone())
                    .send()
                    .await;
                let result = match sent {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                    Err(e) => Err(e.to_string()),
                };
                // 1 s, 2 s, 4 s … doubling per attempt, at most 5 minutes.
                let backoff = 1000i64 << d.attempts.clamp(0, 20);
                let retry_at = now_ms() + backoff.min(300_000);
                if let Err(e) = &result {
                    let last = d.attempts + 1 >= i64::from(self.cfg.max_attempts);
                    if last {
                        tracing::warn!(url = %d.url, event = %d.event, error = %e, "webhook given up after its last attempt");
                    } else {
                        tracing::debug!(url = %d.url, event = %d.event, error = %e, "webhook failed; will retry");
                    }
                }
                if let Err(e) = self.store.webhook_attempted(d.id, result, retry_at).await {
                    tracing::warn!(error = %e, "cannot record the webhook attempt");
                }
            }
            if due.len() == 50 {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_time_and_body() {
        let s = signature(b"key", 1_700_000_000, "{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature(b"key", 1_700_000_001, "{}"));
        assert_ne!(s, signature(b"other", 1_700_000_000, "{}"));
        assert_eq!(s, signature(b"key", 1_700_000_000, "{}"));
    }

    #[test]
    fn a_generated_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = signing_key(None, dir.path()).unwrap();
        assert!(a.len() >= 32);
        assert_eq!(a, signing_key(None, dir.path()).unwrap());
        assert_eq!(signing_key(Some("configured-key-of-at-least-32-characters"), dir.path()).unwrap(), b"configured-key-of-at-least-32-characters");
    }
}
