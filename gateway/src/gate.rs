//! Shares one QUIC connection's credit fairly among its streams' writes.
//!
//! All streams of a peer connection share QUIC's connection-level credit. With
//! hundreds of bulk streams writing, quinn hands freed credit to whichever
//! blocked writer it wakes first, and some writers waited seconds: new streams'
//! headers hit the 3 s status timeout (24-52 of 1,008 per benchmark run) and
//! small writes of interactive connections stalled behind bulk ones. So:
//! - while a header or status waits, bulk writes on that connection stand back
//!   (they withdraw a pending write; quinn writes are cancel-safe);
//! - bulk writes take turns: at most `BULK_WRITERS` wait inside quinn at once,
//!   admitted first come first served, each for at most `TURN` before it goes to
//!   the back of the line. A stream blocked by its own flow control (a slow
//!   reader) therefore cannot hold a turn for long.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use quinn::{SendStream, WriteError};
use tokio::sync::{Notify, Semaphore};

/// Bulk writes waiting inside quinn at once, per connection.
const BULK_WRITERS: usize = 4;
/// Longest a bulk write keeps its turn while blocked.
const TURN: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct SetupGate {
    waiting: AtomicUsize,
    /// Woken when the first setup write starts waiting.
    closed: Notify,
    /// Woken when the last waiting setup write is done.
    opened: Notify,
    /// Turns for bulk writes (tokio's semaphore is fair: first come, first served).
    turns: Semaphore,
}

impl Default for SetupGate {
    fn default() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            closed: Notify::new(),
            opened: Notify::new(),
            turns: Semaphore::new(BULK_WRITERS),
        }
    }
}

/// Held while a header or status is being written.
pub struct Setup<'a>(&'a SetupGate);

impl Drop for Setup<'_> {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.opened.notify_waiters();
        }
    }
}

impl SetupGate {
    /// Marks a setup write as waiting until the guard drops.
    pub fn setup(&self) -> Setup<'_> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            self.closed.notify_waiters();
        }
        Setup(self)
    }

    /// Writes a setup message (header or status) ahead of bulk writes.
    pub async fn write_setup(&self, send: &mut SendStream, buf: &[u8]) -> Result<(), WriteError> {
        let _setup = self.setup();
        send.write_all(buf).await
    }

    /// Resolves once no setup write is waiting.
    async fn no_setup_waiting(&self) {
        loop {
            let mut opened = pin!(self.opened.notified());
            opened.as_mut().enable();
            if self.waiting.load(Ordering::Acquire) == 0 {
                return;
            }
            opened.await;
        }
    }

    /// Writes some of `buf` as bulk data, in turn with other bulk writes and
    /// standing back while setup writes wait.
    pub async fn write_bulk(&self, send: &mut SendStream, buf: &[u8]) -> Result<usize, WriteError> {
        loop {
            self.no_setup_waiting().await;
            let Ok(_turn) = self.turns.acquire().await else {
                return send.write(buf).await; // never closed; write without turns
            };
            let mut closed = pin!(self.closed.notified());
            closed.as_mut().enable();
            if self.waiting.load(Ordering::Acquire) > 0 {
                continue;
            }
            // Withdrawing is safe: nothing of a cancelled write was sent.
            tokio::select! {
                biased;
                r = send.write(buf) => return r,
                () = closed => {}
                () = tokio::time::sleep(TURN) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn the_gate_closes_while_setups_wait_and_reopens_after_the_last() {
        let gate = Arc::new(SetupGate::default());
        let a = gate.setup();
        let b = gate.setup();
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.no_setup_waiting().await });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one setup still waits");
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("reopened after the last setup")
            .unwrap();
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
    }
}
