//! Lets stream headers and statuses ahead of bulk data for connection credit.
//!
//! All streams of a peer connection share QUIC's connection-level credit. With a
//! thousand bulk streams writing, quinn hands freed credit to bulk writers and a
//! new stream's header could wait past the status timeout (measured: 24-52 of
//! 1,008 new streams per run, even when re-polling the write every 20 ms). So
//! while any header or status is waiting, bulk writes on that connection stand
//! back: they withdraw a pending write (quinn writes are cancel-safe) and wait.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use quinn::{SendStream, WriteError};
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct SetupGate {
    waiting: AtomicUsize,
    /// Woken when the first setup write starts waiting.
    closed: Notify,
    /// Woken when the last waiting setup write is done.
    opened: Notify,
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

    /// Writes some of `buf` as bulk data, standing back while setup writes wait.
    pub async fn write_bulk(&self, send: &mut SendStream, buf: &[u8]) -> Result<usize, WriteError> {
        loop {
            let mut opened = pin!(self.opened.notified());
            opened.as_mut().enable();
            if self.waiting.load(Ordering::Acquire) > 0 {
                opened.await;
                continue;
            }
            let mut closed = pin!(self.closed.notified());
            closed.as_mut().enable();
            if self.waiting.load(Ordering::Acquire) > 0 {
                continue;
            }
            tokio::select! {
                biased;
                r = send.write(buf) => return r,
                () = closed => {} // withdraw: nothing of a cancelled write was sent
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
        let waiter = tokio::spawn(async move {
            let mut opened = pin!(g.opened.notified());
            opened.as_mut().enable();
            if g.waiting.load(Ordering::Acquire) > 0 {
                opened.await;
            }
        });
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
