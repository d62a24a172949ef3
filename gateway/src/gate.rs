//! Shares one QUIC connection's credit fairly among its streams' writes.
//!
//! All streams of a peer connection share QUIC's connection-level credit, and
//! quinn wakes every credit-blocked writer at once, last blocked first: with
//! hundreds of bulk streams, some writers waited seconds, new streams' headers
//! hit the status timeout and small interactive writes stalled. So:
//! - while a header or status waits, bulk writes on that connection stand back
//!   (they withdraw a pending write; quinn writes are cancel-safe);
//! - bulk writes take turns: at most `BULK_WRITERS` wait inside quinn at once,
//!   admitted first come first served, each for at most `TURN`;
//! - a write still blocked when its turn ends is most likely blocked by its own
//!   stream's flow control (a backend that does not read): it leaves the line
//!   and waits for credit of its own by writing a single byte, then queues
//!   again. So stuck streams never hold turns that healthy streams need.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use bytes::{Buf, Bytes};
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

    /// Writes all of `data` ahead of bulk writes, like a header (a stream's
    /// first bytes).
    pub async fn write_eager(
        &self,
        send: &mut SendStream,
        data: &mut Bytes,
    ) -> Result<(), WriteError> {
        let _setup = self.setup();
        while !data.is_empty() {
            write_some(send, data).await?;
        }
        Ok(())
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

    /// Writes some of `data` as bulk data (taking what was written off its
    /// front, without a copy), in turn with other bulk writes and standing back
    /// while setup writes wait. Returns the bytes written.
    pub async fn write_bulk(
        &self,
        send: &mut SendStream,
        data: &mut Bytes,
    ) -> Result<usize, WriteError> {
        loop {
            self.no_setup_waiting().await;
            let Ok(turn) = self.turns.acquire().await else {
                return write_some(send, data).await; // never closed; write without turns
            };
            let mut closed = pin!(self.closed.notified());
            closed.as_mut().enable();
            if self.waiting.load(Ordering::Acquire) > 0 {
                continue;
            }
            // Withdrawing is safe: nothing of a cancelled write was sent.
            tokio::select! {
                biased;
                r = write_some(send, data) => return r,
                () = closed.as_mut() => continue,
                () = tokio::time::sleep(TURN) => {}
            }
            drop(turn);
            // Blocked for a whole turn: wait for credit outside the line.
            let mut one = data.slice(..1.min(data.len()));
            tokio::select! {
                biased;
                r = write_some(send, &mut one) => {
                    let n = r?;
                    data.advance(n);
                    return Ok(n);
                }
                () = closed => {}
            }
        }
    }
}

/// One write of as much of `data` as QUIC takes now; cancel-safe.
async fn write_some(send: &mut SendStream, data: &mut Bytes) -> Result<usize, WriteError> {
    let w = send.write_chunks(std::slice::from_mut(data)).await?;
    Ok(w.bytes)
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
