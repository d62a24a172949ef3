//! Copies bytes between a TCP connection and a QUIC stream, both ways at once.
//!
//! Both directions run as two futures polled by one task (no spawn, no channel).
//! TCP → QUIC: a read into a `BytesMut` allocated when data arrives (nothing
//! is held by an idle connection), frozen and handed to quinn as is, with no
//! copy. The first `EAGER_BYTES` go ahead of other streams' bulk data, so
//! short exchanges never queue behind a transfer; the rest takes turns. QUIC → TCP: quinn's received chunks (one per packet) go out in one
//! vectored write, again with no copy.
//! TCP EOF becomes stream FIN and FIN becomes a TCP write shutdown, so half-closed
//! connections keep working. A TCP reset becomes a stream reset and back; a
//! lost QUIC connection or an idle timeout resets the TCP connection, so a
//! transfer cut short never looks complete.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::io::{ErrorKind, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use quinn::{ReadError, RecvStream, SendStream, VarInt, WriteError};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::gate::SetupGate;
use crate::limits::{Pace, Way};
use crate::mirror::Tee;
use crate::protocol::{EAGER_BYTES, stream_code};

/// Why a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both directions finished (FIN both ways).
    Done,
    /// The local TCP peer reset; the stream was reset with `TCP_RESET`.
    TcpReset,
    /// The far side reset or stopped the stream with this code; the TCP peer got a reset.
    StreamReset(VarInt),
    /// No bytes either way for the idle timeout.
    Idle,
    /// The QUIC connection went away.
    ConnectionLost,
    /// The splice was dropped before it ended (its task aborted).
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes TCP → stream.
    pub sent: u64,
    /// Bytes stream → TCP.
    pub received: u64,
    pub end: End,
}

/// Per-direction byte counters (metrics), bumped once per chunk; `load`
/// also counts bytes sent, for choosing among a peer's connections.
pub struct Counters<'a> {
    pub sent: &'a Counter,
    pub received: &'a Counter,
    pub load: Option<&'a AtomicU64>,
    /// Mirroring: gets a copy of every chunk read from TCP.
    pub tee: Option<&'a Tee>,
    /// A bandwidth limit, and the counter of bytes that had to wait for it.
    pub pace: Option<(&'a Pace, &'a Counter)>,
}

impl Counters<'_> {
    async fn pace(&self, way: Way, n: usize) {
        if let Some((pace, waited)) = self.pace
            && !pace.wait(way, n).await.is_zero()
        {
            waited.inc_by(n as u64);
        }
    }
}

/// First TCP read size; doubles while reads fill the buffer, up to the
/// configured chunk, so small exchanges allocate little.
const FIRST_READ: usize = 16 << 10;
/// Bytes a direction moves before it lets the other tasks of its worker run:
/// quinn's reads and writes do not count against tokio's task budget, so a
/// bulk stream would otherwise move megabytes per poll while new connections
/// on the same worker wait.
const YIELD_EVERY: u64 = 256 << 10;
/// Longest a finished stream waits for the peer to acknowledge its end.
const FIN_ACK_WAIT: Duration = Duration::from_secs(2);
/// QUIC chunks (about a packet each) per vectored TCP write.
const CHUNKS: usize = 32;

/// Time of the last byte either way, as milliseconds since the splice began.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Splices until both directions end, one fails, or the idle timeout passes.
pub async fn splice(
    tcp: &TcpStream,
    send: SendStream,
    recv: RecvStream,
    chunk: usize,
    idle: Duration,
    counters: Counters<'_>,
    gate: &SetupGate,
) -> Outcome {
    let act = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let mut s = Unfinished {
        tcp,
        send,
        recv,
        ended: false,
    };
    let (mut sent, mut received) = (0u64, 0u64);
    // Not tied to `send`: the up direction holds it.
    let stopped = s.send.stopped();
    let end = {
        let up = pin!(tcp_to_stream(
            tcp,
            &mut s.send,
            gate,
            chunk,
            &act,
            &counters,
            &mut sent
        ));
        let down = pin!(stream_to_tcp(
            &mut s.recv,
            tcp,
            &act,
            &counters,
            &mut received
        ));
        // Ends the splice even while both directions are blocked (a reader
        // that stopped): idleness, a TCP reset, or the far side giving up.
        let stop = async {
            tokio::select! {
                () = idle_watch(&act, idle) => End::Idle,
                () = tcp_error(tcp) => End::TcpReset,
                code = stopped_by_peer(stopped) => End::StreamReset(code),
            }
        };
        both(up, down, stop).await
    };
    if end == End::Done {
        // Stay until the peer has our FIN: a connection closed right after
        // (a drain ending) would otherwise lose it, and the far client would
        // see a reset instead of a complete transfer.
        let _ = tokio::time::timeout(FIN_ACK_WAIT, s.send.stopped()).await;
    }
    finish(tcp, &mut s.send, &mut s.recv, end);
    s.ended = true;
    Outcome {
        sent,
        received,
        end,
    }
}

/// A splice in progress. If it is dropped before it ends on its own (its task
/// aborted, its runtime shut down), both sides are reset: quinn finishes a
/// dropped stream and a dropped socket closes with FIN, and either would make
/// a transfer cut short look complete.
struct Unfinished<'a> {
    tcp: &'a TcpStream,
    send: SendStream,
    recv: RecvStream,
    ended: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.ended {
            finish(self.tcp, &mut self.send, &mut self.recv, End::Aborted);
        }
    }
}

/// Runs both directions to completion; the first failure (or `stop`) wins.
async fn both(
    mut up: std::pin::Pin<&mut impl Future<Output = Result<(), End>>>,
    mut down: std::pin::Pin<&mut impl Future<Output = Result<(), End>>>,
    stop: impl Future<Output = End>,
) -> End {
    let mut stop = pin!(stop);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let res = tokio::select! {
            r = &mut up, if !up_done => { up_done = true; r }
            r = &mut down, if !down_done => { down_done = true; r }
            end = &mut stop => Err(end),
        };
        if let Err(end) = res {
            return end;
        }
    }
    End::Done
}

/// Tells the other sides how the splice ended.
fn finish(tcp: &TcpStream, send: &mut SendStream, recv: &mut RecvStream, end: End) {
    if !matches!(end, End::Done | End::TcpReset) {
        // Cut short: a zero linger makes the close send RST, never a clean FIN.
        let _ = tcp.set_zero_linger();
    }
    let code = match end {
        End::Done | End::ConnectionLost => return,
        End::TcpReset => stream_code::TCP_RESET,
        End::Idle => stream_code::IDLE,
        End::StreamReset(code) => code,
        End::Aborted => stream_code::ABORTED,
    };
    // Errors here mean the stream is already closed that way, which is fine.
    let _ = send.reset(code);
    let _ = recv.stop(code);
}

async fn tcp_to_stream(
    tcp: &TcpStream,
    send: &mut SendStream,
    gate: &SetupGate,
    chunk: usize,
    act: &Activity,
    counters: &Counters<'_>,
    total: &mut u64,
) -> Result<(), End> {
    let mut size = FIRST_READ.min(chunk);
    loop {
        tcp.readable().await.map_err(|_| End::TcpReset)?;
        let mut buf = BytesMut::with_capacity(size);
        let n = match tcp.try_read_buf(&mut buf) {
            Ok(0) => {
                let _ = send.finish();
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => return Err(End::TcpReset),
        };
        if n == size {
            size = (size * 2).min(chunk);
        }
        let mut data = buf.freeze();
        if let Some(tee) = counters.tee {
            tee.offer(&data);
        }
        counters.pace(Way::Up, n).await;
        if *total < EAGER_BYTES {
            gate.write_eager(send, &mut data).await.map_err(write_end)?;
            if *total + n as u64 >= EAGER_BYTES {
                let _ = send.set_priority(0); // from now on, bulk like the rest
            }
        }
        while !data.is_empty() {
            gate.write_bulk(send, &mut data).await.map_err(write_end)?;
        }
        *total += n as u64;
        counters.sent.inc_by(n as u64);
        if let Some(load) = counters.load {
            load.fetch_add(n as u64, Ordering::Relaxed);
        }
        act.touch();
        fair_share(total, n).await;
    }
}

/// Yields to the worker's other tasks each time `total` (just grown by `n`)
/// crosses a multiple of `YIELD_EVERY`.
async fn fair_share(total: &u64, n: usize) {
    if (*total - n as u64) / YIELD_EVERY != *total / YIELD_EVERY {
        tokio::task::yield_now().await;
    }
}

async fn stream_to_tcp(
    recv: &mut RecvStream,
    tcp: &TcpStream,
    act: &Activity,
    counters: &Counters<'_>,
    total: &mut u64,
) -> Result<(), End> {
    let mut chunks: [Bytes; CHUNKS] = Default::default();
    loop {
        match recv.read_chunks(&mut chunks).await {
            Ok(Some(k)) => {
                let size = chunks[..k].iter().map(Bytes::len).sum();
                counters.pace(Way::Down, size).await;
                let n = write_all_vectored(tcp, &mut chunks[..k]).await?;
                *total += n as u64;
                counters.received.inc_by(n as u64);
                act.touch();
                fair_share(total, n).await;
            }
            Ok(None) => {
                // FIN: half-close the TCP side; the other direction may continue.
                let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
            Err(ReadError::Reset(code)) => return Err(End::StreamReset(code)),
            Err(_) => return Err(End::ConnectionLost),
        }
    }
}

/// Writes every chunk to `tcp`, several per system call; empties them.
async fn write_all_vectored(tcp: &TcpStream, chunks: &mut [Bytes]) -> Result<usize, End> {
    let total = chunks.iter().map(Bytes::len).sum();
    let mut first = 0;
    while first < chunks.len() {
        let mut slices = [IoSlice::new(&[]); CHUNKS];
        let live = &chunks[first..];
        for (slot, c) in slices.iter_mut().zip(live) {
            *slot = IoSlice::new(c);
        }
        tcp.writable().await.map_err(|_| End::TcpReset)?;
        let mut n = match tcp.try_write_vectored(&slices[..live.len()]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => return Err(End::TcpReset),
        };
        while n > 0 {
            let c = &mut chunks[first];
            let k = n.min(c.len());
            c.advance(k);
            n -= k;
            if c.is_empty() {
                first += 1;
            }
        }
        while chunks.get(first).is_some_and(Bytes::is_empty) {
            first += 1;
        }
    }
    Ok(total)
}

fn write_end(e: WriteError) -> End {
    match e {
        WriteError::Stopped(code) => End::StreamReset(code),
        _ => End::ConnectionLost,
    }
}

/// Resolves when the TCP connection fails (a reset from its peer), even while
/// neither direction touches it: a client that gives up on a stream stuck
/// behind its own flow control must free it, and what the far side buffered.
async fn tcp_error(tcp: &TcpStream) {
    while let Ok(ready) = tcp.ready(Interest::ERROR).await {
        if ready.is_error() {
            return;
        }
    }
}

/// Resolves with the code when the far side stops our stream (STOP_SENDING);
/// never when it merely acknowledged our FIN.
async fn stopped_by_peer(
    stopped: impl Future<Output = Result<Option<VarInt>, quinn::StoppedError>>,
) -> VarInt {
    match stopped.await {
        Ok(Some(code)) => code,
        _ => std::future::pending().await,
    }
}

/// Resolves once nothing has moved for `idle`.
async fn idle_watch(act: &Activity, idle: Duration) {
    loop {
        let deadline = act.last() + idle;
        tokio::time::sleep_until(deadline).await;
        if act.last() + idle <= Instant::now() {
            return;
        }
    }
}
