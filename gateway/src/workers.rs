//! Data-plane workers: one thread and current-thread runtime per core.
//!
//! quinn drives each connection on the runtime that calls `connect` or
//! `accept`, and a current-thread runtime beats work stealing for one
//! connection (docs/protocol.md). So each worker owns some peer connections,
//! an outbound listener socket per service port (`SO_REUSEPORT`), and the
//! streams and TCP connections of both, and nothing moves between cores. The
//! process's own runtime (catalog, federation, DNS, admin) is never one of them.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Handles to the workers, shared by every task.
pub struct Workers {
    handles: Vec<Handle>,
}

/// Owns the worker threads: dropping it stops them and waits for them, so the
/// sockets of a stopped gateway are closed when it returns (a restart binds the
/// same UDP port at once). Held by the `Gateway` alone, never by a worker task.
pub struct Threads {
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers (at least one).
    pub fn start(n: usize) -> std::io::Result<(Arc<Workers>, Threads)> {
        let stop = CancellationToken::new();
        let (mut handles, mut threads) = (Vec::new(), Vec::new());
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let stop = stop.clone();
            let t = std::thread::Builder::new()
                .name(format!("causeway-worker-{i}"))
                // Dropping the runtime here drops every task and socket it owns.
                .spawn(move || rt.block_on(stop.cancelled()))?;
            threads.push(t);
        }
        Ok((Arc::new(Workers { handles }), Threads { stop, threads }))
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }

    /// The worker the caller runs on, if it is one of ours.
    pub fn current(&self) -> Option<usize> {
        let id = Handle::try_current().ok()?.id();
        self.handles.iter().position(|h| h.id() == id)
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.cancel();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Workers to start when `gateway.workers` is not set: every core we may use.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_their_worker_thread_and_stop_with_the_workers() {
        let (w, threads) = Workers::start(2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..2 {
            let (tx, w2) = (tx.clone(), w.clone());
            w.handle(i).spawn(async move {
                let name = std::thread::current().name().map(str::to_owned);
                tx.send((i, name, w2.current())).unwrap();
            });
        }
        let mut got: Vec<_> = (0..2).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got[0], (0, Some("causeway-worker-0".into()), Some(0)));
        assert_eq!(got[1], (1, Some("causeway-worker-1".into()), Some(1)));
        assert_eq!(w.current(), None, "the test thread is no worker");
        drop(threads); // joins both threads
    }
}
