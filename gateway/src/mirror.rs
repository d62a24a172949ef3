//! Mirroring: a copy of the client's bytes goes to a second cluster and its
//! replies are read and dropped. The primary never waits for the mirror: the
//! copy is queued up to a byte bound, and past it the mirror is cut off (a gap
//! would corrupt its copy anyway) and the rest is counted as dropped.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use causeway_catalog::ClusterId;
use causeway_policy::Mirror;
use prometheus_client::metrics::counter::Counter;
use quinn::{RecvStream, SendStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::attempt::attempt;
use crate::pool::{Caps, StreamSlot};
use crate::protocol::{Request, stream_code};
use crate::shared::Shared;

/// How long a mirror may take to catch up once the primary has ended.
const LINGER: Duration = Duration::from_secs(5);

/// The primary's side: hands copies over without ever waiting.
pub struct Tee {
    tx: mpsc::UnboundedSender<Bytes>,
    state: Arc<State>,
    dropped: Counter,
}

struct State {
    queued: AtomicUsize,
    limit: usize,
    cut: AtomicBool,
    /// The primary has ended; the mirror has `LINGER` to finish.
    done: CancellationToken,
}

impl Tee {
    pub fn offer(&self, data: &Bytes) {
        let n = data.len();
        let s = &self.state;
        let over = s.queued.fetch_add(n, Ordering::AcqRel) + n > s.limit;
        if s.cut.load(Ordering::Acquire) || over || self.tx.send(data.clone()).is_err() {
            s.cut.store(true, Ordering::Release);
            self.dropped.inc_by(n as u64);
        }
    }

    /// The primary ended; a primary cut short cuts its mirror too.
    pub fn close(self, clean: bool) {
        if !clean {
            self.state.cut.store(true, Ordering::Release);
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.state.done.cancel();
    }
}

/// Starts mirroring `req` to `m.cluster`; the copy runs as its own task. A
/// mirror with no usable connection now costs a lookup: no task, no copy.
pub fn start(shared: &Arc<Shared>, m: &Mirror, req: &Request) -> Option<Tee> {
    let service = req.service.to_string();
    let pm = &shared.policy_metrics;
    let Some(picked) = pick(shared, &m.cluster) else {
        pm.mirror_stream(&service, m.cluster.as_str(), "unavailable");
        return None;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(State {
        queued: AtomicUsize::new(0),
        limit: m.buffer_bytes as usize,
        cut: AtomicBool::new(false),
        done: CancellationToken::new(),
    });
    let dropped = pm.mirror_bytes(&service, m.cluster.as_str(), "dropped");
    let mut req = req.clone();
    req.target = Some(m.cluster.clone());
    let task = run(shared.clone(), picked, req, rx, state.clone());
    shared.streams.spawn(task);
    Some(Tee { tx, state, dropped })
}

/// A connection to the mirror cluster with room for a stream, if there is one.
fn pick(shared: &Shared, cluster: &ClusterId) -> Option<(StreamSlot, quinn::Connection)> {
    if *cluster == shared.local.name {
        tracing::warn!(%cluster, "a mirror must be another cluster; not mirroring");
        return None;
    }
    let l = &shared.cfg.limits;
    let caps = Caps {
        per_connection: l.max_streams_per_connection as usize,
        per_peer: l.max_streams_per_peer as usize,
    };
    shared.pool.pick(cluster, shared.workers.current(), &caps)
}

async fn run(
    shared: Arc<Shared>,
    picked: (StreamSlot, quinn::Connection),
    req: Request,
    rx: mpsc::UnboundedReceiver<Bytes>,
    state: Arc<State>,
) {
    let Some(cluster) = req.target.clone() else {
        return;
    };
    let service = req.service.to_string();
    let pm = &shared.policy_metrics;
    let sent = pm.mirror_bytes(&service, cluster.as_str(), "sent");
    let deadline = async {
        state.done.cancelled().await;
        tokio::time::sleep(LINGER).await;
    };
    let result = tokio::select! {
        r = copy(&shared, picked, &req, rx, &state, &sent) => r,
        () = deadline => "cut",
        () = shared.hard.cancelled() => "cut",
    };
    // Whatever is still queued or comes later is dropped and counted by the tee.
    state.cut.store(true, Ordering::Release);
    tracing::debug!(%cluster, result, "mirror done");
    pm.mirror_stream(&service, cluster.as_str(), result);
}

async fn copy(
    shared: &Shared,
    (slot, conn): (StreamSlot, quinn::Connection),
    req: &Request,
    rx: mpsc::UnboundedReceiver<Bytes>,
    state: &State,
    sent: &Counter,
) -> &'static str {
    match attempt(shared.cfg.timeouts.status, &conn, slot.gate(), req).await {
        Ok((send, recv)) => pump(send, recv, rx, state, sent).await,
        Err(e) => {
            tracing::debug!(error = %e, "mirror stream refused");
            "refused"
        }
    }
}

/// Writes the copies out and reads the replies away until the primary ends,
/// then waits for the far side to end too: dropping the stream earlier would
/// stop it, and the mirror's server would see a reset instead of the end.
async fn pump(
    mut send: SendStream,
    mut recv: RecvStream,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    state: &State,
    sent: &Counter,
) -> &'static str {
    let mut drain = pin!(discard(&mut recv));
    let (clean, drained) = {
        let mut forward = pin!(forward(&mut send, &mut rx, state, sent));
        tokio::select! {
            clean = &mut forward => (clean, false),
            () = &mut drain => (forward.await, true),
        }
    };
    if !clean {
        let _ = send.reset(stream_code::ABORTED);
        return "cut";
    }
    let _ = send.finish();
    if !drained {
        drain.await;
    }
    "ok"
}

/// Reads and drops whatever the mirror answers, until it ends its side.
async fn discard(recv: &mut RecvStream) {
    while let Ok(Some(_)) = recv.read_chunk(64 << 10, false).await {}
}

/// Copies queued chunks to the mirror until the primary ends; false if cut off.
async fn forward(
    send: &mut SendStream,
    rx: &mut mpsc::UnboundedReceiver<Bytes>,
    state: &State,
    sent: &Counter,
) -> bool {
    while let Some(chunk) = rx.recv().await {
        let n = chunk.len();
        if state.cut.load(Ordering::Acquire) || send.write_chunk(chunk).await.is_err() {
            return false;
        }
        state.queued.fetch_sub(n, Ordering::AcqRel);
        sent.inc_by(n as u64);
    }
    !state.cut.load(Ordering::Acquire)
}
