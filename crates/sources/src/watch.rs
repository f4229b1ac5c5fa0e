//! Watch a config directory: file events are debounced (100 ms quiet, 1 s at most, as DESIGN §8
//! asks of pushes), then the whole directory is re-read and reconciled, and the new state is
//! published on a `watch` channel. Re-reading everything makes editors' save strategies
//! (rename into place, truncate then write) and deletions all look the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use plexus_pilot::MeshConfig;
use tokio::sync::{mpsc, watch};

use crate::store::{ConfigState, reconcile};

/// Wait this long without file events before reloading.
pub const QUIET: Duration = Duration::from_millis(100);
/// Reload at the latest this long after the first event of a burst.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Why the directory cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("config directory {0}: not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot watch config directory {path}: {source}")]
    Notify {
        path: PathBuf,
        source: notify::Error,
    },
}

/// A watched directory. Dropping it stops watching.
pub struct FileSource {
    pub dir: PathBuf,
    state: watch::Receiver<Arc<ConfigState>>,
    _watcher: notify::RecommendedWatcher,
}

impl FileSource {
    /// Read `dir` once, publish the result, and keep it watched. Must run inside a tokio runtime.
    pub fn start(dir: &Path, mesh: MeshConfig) -> Result<FileSource, WatchError> {
        if !dir.is_dir() {
            return Err(WatchError::NotADirectory(dir.to_path_buf()));
        }
        let first = Arc::new(load(dir, &ConfigState::default(), &mesh));
        let (tx, rx) = watch::channel(first);
        let (events_tx, events_rx) = mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if ev.is_ok_and(|e| !e.kind.is_access()) {
                let _ = events_tx.send(());
            }
        })
        .map_err(|source| WatchError::Notify {
            path: dir.to_path_buf(),
            source,
        })?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Notify {
                path: dir.to_path_buf(),
                source,
            })?;
        tokio::spawn(reload_loop(dir.to_path_buf(), mesh, events_rx, tx));
        Ok(FileSource {
            dir: dir.to_path_buf(),
            state: rx,
            _watcher: watcher,
        })
    }

    /// The current state; `changed()` on the receiver wakes on every reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigState>> {
        self.state.clone()
    }

    pub fn current(&self) -> Arc<ConfigState> {
        self.state.borrow().clone()
    }
}

/// Re-read `dir` and reconcile against `prev`, logging every rejection.
pub fn load(dir: &Path, prev: &ConfigState, mesh: &MeshConfig) -> ConfigState {
    let loaded = plexus_api::load_paths(&[dir.to_path_buf()]);
    let state = reconcile(prev, &loaded, mesh);
    for r in &state.rejected {
        tracing::error!("config rejected: {r}");
    }
    for m in state
        .analysis
        .iter()
        .filter(|m| m.level == plexus_pilot::Level::Error)
    {
        tracing::warn!(
            "analysis: {}:{}: {} [{}] ({}) {}",
            m.path,
            m.line,
            m.level,
            m.code,
            m.resource,
            m.message
        );
    }
    tracing::info!(
        dir = %dir.display(),
        generation = state.generation,
        accepted = state.accepted.len(),
        rejected = state.rejected.len(),
        "config loaded"
    );
    state
}

async fn reload_loop(
    dir: PathBuf,
    mesh: MeshConfig,
    mut events: mpsc::UnboundedReceiver<()>,
    tx: watch::Sender<Arc<ConfigState>>,
) {
    while events.recv().await.is_some() {
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            let quiet = tokio::time::Instant::now() + QUIET;
            match tokio::time::timeout_at(quiet.min(deadline), events.recv()).await {
                Ok(Some(())) if tokio::time::Instant::now() < deadline => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        let prev = tx.borrow().clone();
        let (d, m) = (dir.clone(), mesh.clone());
        let next = match tokio::task::spawn_blocking(move || load(&d, &prev, &m)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("config reload failed: {e}");
                continue;
            }
        };
        if tx.send(Arc::new(next)).is_err() {
            return;
        }
    }
}
