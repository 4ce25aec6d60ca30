//! The local durable spool of call outcomes the database could not take. When an outcome
//! write fails for a reason that retrying can cure (the database is unreachable or slow),
//! the outcome is first written to `DATA_DIR/spool/` (one file per call, fsynced, renamed
//! into place) and the write is retried until it succeeds; then the file goes. A node
//! that dies meanwhile finds the files at its next start and writes them before it
//! returns its leads to the hopper, so a finished call's outcome is never lost.
//!
//! Replaying is idempotent: an outcome whose attempt is already stored (same lead, same
//! start time) is only removed from the spool.

use std::io::Write;
use std::path::{Path, PathBuf};

use pacer_dialer::outcome::CallOutcome;
use pacer_dialer::store::{Store, StoreError};
use sqlx::Row;

/// The spool directory of a node.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn open(data_dir: &Path) -> std::io::Result<Spool> {
        let dir = data_dir.join("spool");
        std::fs::create_dir_all(dir.join("failed"))?;
        Ok(Spool { dir })
    }

    /// Writes `o` durably; returns its file.
    pub fn put(&self, o: &CallOutcome) -> std::io::Result<PathBuf> {
        let name = format!("{}-{}", o.started_at, o.lead_id);
        let (tmp, done) = (self.dir.join(format!("{name}.tmp")), self.dir.join(format!("{name}.json")));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(o).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &done)?;
        // The rename itself must survive a crash.
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(done)
    }

    pub fn remove(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a written outcome from the spool");
        }
    }

    /// Outcomes waiting, oldest first. Unreadable files are moved to `failed/`.
    pub fn pending(&self) -> Vec<(PathBuf, CallOutcome)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for p in files {
            match std::fs::read(&p).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice::<CallOutcome>(&b).map_err(|e| e.to_string())) {
                Ok(o) => out.push((p, o)),
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "unreadable outcome in the spool; moved to failed/");
                    self.set_aside(&p);
                }
            }
        }
        out
    }

    /// Moves a file the store refuses for good to `failed/` (kept for a person to look at).
    pub fn set_aside(&self, path: &Path) {
        if let Some(name) = path.file_name() {
            let _ = std::fs::rename(path, self.dir.join("failed").join(name));
        }
    }

    /// Whether the attempt of `o` is in the store (false when that cannot be told now).
    pub async fn already_stored(&self, store: &Store, o: &CallOutcome) -> bool {
        stored(store, o).await.unwrap_or(false)
    }

    /// Writes every spooled outcome. `Err` when the database is still unreachable (the
    /// rest stays spooled). Returns how many were written.
    pub async fn replay(&self, store: &Store, zone: chrono_tz::Tz) -> Result<usize, StoreError> {
        let mut written = 0;
        for (path, o) in self.pending() {
            if stored(store, &o).await? {
                self.remove(&path);
                continue;
            }
            match store.record_outcome(&o, pacer_dialer::store::now_ms(), zone).await {
                Ok(_) => {
                    tracing::info!(lead = o.lead_id, outcome = %o.outcome, "spooled outcome written");
                    self.remove(&path);
                    written += 1;
                }
                Err(e @ (StoreError::Invalid(_) | StoreError::NotFound { .. })) => {
                    tracing::error!(lead = o.lead_id, error = %e, "the store refuses a spooled outcome; kept in spool/failed/");
                    self.set_aside(&path);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }
}

async fn stored(store: &Store, o: &CallOutcome) -> Result<bool, StoreError> {
    let n = sqlx::query("SELECT COUNT(*) FROM lead_attempts WHERE lead_id = $1 AND started_at = $2")
        .bind(o.lead_id)
        .bind(o.started_at)
        .fetch_one(store.pool())
        .await?
        .try_get::<i64, _>(0)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_survive_in_files_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let o = CallOutcome { lead_id: 7, started_at: 1000, outcome: "answered".into(), ..CallOutcome::default() };
        let p = s.put(&o).unwrap();
        std::fs::write(dir.path().join("spool/garbage.json"), b"{not json").unwrap();
        let again = Spool::open(dir.path()).unwrap();
        let pending = again.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].1.lead_id, pending[0].1.outcome.as_str()), (7, "answered"));
        assert!(dir.path().join("spool/failed/garbage.json").exists(), "unreadable files are set aside");
        again.remove(&p);
        assert!(again.pending().is_empty());
    }
}
