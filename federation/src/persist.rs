//! Persisted state: this cluster's export epoch, every peer's last view, the
//! merged catalog and the ClusterSetIP allocations, one JSON file each.
//!
//! Files are written atomically (temp file, fsync, rename, fsync of the
//! directory) so a crash leaves either the old or the new file, never a torn
//! one; writes are debounced and only files whose content changed are written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, ClusterId, Export, VipState};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::view::SavedView;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    #[error("state file {path}: {source}; check that state_dir is writable")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt ({source}); it is ignored and will be rewritten")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// This cluster's exporter position, so a restart with state keeps its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLocal {
    pub epoch: u64,
    pub version: u64,
    pub exports: Vec<Export>,
}

/// Everything written to (and read back from) the state directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub local: Option<SavedLocal>,
    pub peers: BTreeMap<ClusterId, SavedView>,
    pub catalog: Arc<CatalogSnapshot>,
    pub vips: VipState,
}

const LOCAL: &str = "local.json";
const CATALOG: &str = "catalog.json";
const VIPS: &str = "vips.json";

fn peer_file(name: &ClusterId) -> String {
    format!("peer-{name}.json")
}

/// Reads what is there. Missing files are simply absent state; corrupt ones
/// are logged and skipped, so a damaged file never stops the process.
pub fn load(dir: &Path, peers: &[ClusterId]) -> Result<State, PersistError> {
    std::fs::create_dir_all(dir).map_err(|source| PersistError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut state = State {
        local: read(&dir.join(LOCAL)),
        vips: read(&dir.join(VIPS)).unwrap_or_default(),
        catalog: Arc::new(read(&dir.join(CATALOG)).unwrap_or_default()),
        ..State::default()
    };
    for name in peers {
        if let Some(v) = read::<SavedView>(&dir.join(peer_file(name))) {
            state.peers.insert(name.clone(), v);
        }
    }
    Ok(state)
}

fn read<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(source) => {
            let e = PersistError::Io {
                path: path.to_owned(),
                source,
            };
            tracing::error!("{e}");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|source| {
            let e = PersistError::Corrupt {
                path: path.to_owned(),
                source,
            };
            tracing::error!("{e}");
        })
        .ok()
}

/// Writes `bytes` to `path` so that readers see the old or the new file only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let (tmp, mut file) = tempfile_in(dir, path).map_err(io)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        // Never leave a half-written temp file behind (a full disk stays full).
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

fn tempfile_in(dir: &Path, path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp)?;
    Ok((tmp, file))
}

/// The files `state` is made of, by name.
fn files(state: &State) -> Vec<(String, Result<Vec<u8>, serde_json::Error>)> {
    let mut out = vec![
        (CATALOG.to_owned(), serde_json::to_vec(&*state.catalog)),
        (VIPS.to_owned(), serde_json::to_vec(&state.vips)),
    ];
    if let Some(local) = &state.local {
        out.push((LOCAL.to_owned(), serde_json::to_vec(local)));
    }
    for (name, view) in &state.peers {
        out.push((peer_file(name), serde_json::to_vec(view)));
    }
    out
}

/// First wait before writing again after a failed write; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Writes the latest state from `rx` after it settles for `debounce`, until
/// `shutdown`; then writes whatever is still pending once more. A failed
/// write is retried with backoff, without waiting for the next change.
pub async fn run(
    dir: PathBuf,
    mut rx: watch::Receiver<Arc<State>>,
    debounce: Duration,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut written: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut retry: Option<Duration> = None;
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            r = rx.changed() => r.is_err(),
            _ = sleep_or_never(retry) => false,
        };
        if !stop {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(debounce) => {}
            }
        }
        let state = rx.borrow_and_update().clone();
        let (d, m) = (dir.clone(), metrics.clone());
        let prev = std::mem::take(&mut written);
        // Serialising and fsyncing can take a while: keep it off the runtime's threads.
        let failed;
        (written, failed) =
            tokio::task::spawn_blocking(move || write_changed(&d, &state, prev, &m))
                .await
                .unwrap_or_default();
        retry = failed.then(|| retry.map_or(RETRY_MIN, |r| (r * 2).min(RETRY_MAX)));
        if stop || shutdown.is_cancelled() {
            return;
        }
    }
}

async fn sleep_or_never(after: Option<Duration>) {
    match after {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn write_changed(
    dir: &Path,
    state: &State,
    mut written: BTreeMap<String, Vec<u8>>,
    metrics: &Metrics,
) -> (BTreeMap<String, Vec<u8>>, bool) {
    let mut failed = false;
    for (name, bytes) in files(state) {
        let Ok(bytes) = bytes else {
            metrics.persist_errors.inc();
            continue;
        };
        if written.get(&name) == Some(&bytes) {
            continue;
        }
        match write_atomic(&dir.join(&name), &bytes) {
            Ok(()) => {
                metrics.persist_writes.inc();
                written.insert(name, bytes);
            }
            Err(e) => {
                metrics.persist_errors.inc();
                failed = true;
                tracing::error!("{e}; retrying");
            }
        }
    }
    (written, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let b = ClusterId::new("b").unwrap();
        let mut state = State {
            local: Some(SavedLocal {
                epoch: 9,
                version: 3,
                exports: vec![],
            }),
            ..State::default()
        };
        state
            .vips
            .0
            .insert("ns/a".parse().unwrap(), vec!["127.77.0.5".parse().unwrap()]);
        let m = Metrics::default();
        let (written, _) = write_changed(dir.path(), &state, BTreeMap::new(), &m);
        assert_eq!(m.persist_writes.get(), 3);
        // Unchanged files are not written again.
        write_changed(dir.path(), &state, written, &m);
        assert_eq!(m.persist_writes.get(), 3);
        assert_eq!(load(dir.path(), std::slice::from_ref(&b)).unwrap(), state);
        std::fs::write(dir.path().join(VIPS), b"{not json").unwrap();
        let loaded = load(dir.path(), &[b]).unwrap();
        assert!(loaded.vips.0.is_empty());
        assert_eq!(loaded.local, state.local);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    fn leftovers(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    }

    /// A write that fails (here: the target is a directory) leaves no temp
    /// file and is retried on its own, with no new change to trigger it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_is_cleaned_up_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join(CATALOG);
        std::fs::create_dir_all(blocker.join("in-the-way")).unwrap();
        let (tx, rx) = watch::channel(Arc::new(State::default()));
        let (m, stop) = (Metrics::default(), CancellationToken::new());
        let task = tokio::spawn(run(
            dir.path().to_owned(),
            rx,
            Duration::from_millis(1),
            m.clone(),
            stop.clone(),
        ));
        tx.send_replace(Arc::new(State::default()));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while m.persist_errors.get() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "no retry after a failed write"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            leftovers(dir.path()),
            0,
            "a failed write left its temp file"
        );
        std::fs::remove_dir_all(&blocker).unwrap();
        while !blocker.is_file() {
            assert!(
                std::time::Instant::now() < deadline,
                "the retry never wrote the file"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!(leftovers(dir.path()), 0);
    }
}
