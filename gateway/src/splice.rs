//! Copies bytes between a TCP connection and a QUIC stream, both ways at once.
//!
//! Both directions run as two futures polled by one task (no spawn, no channel):
//! each chunk is one read and one write with no hand-off between tasks.
//! Hot path allocations: none of ours; each stream allocates one buffer per
//! direction when it starts. QUIC→TCP copies quinn's per-packet chunks into its
//! buffer so each TCP write carries many packets' worth (measured: fewer syscalls
//! beat the saved copy, see docs/protocol.md).
//! TCP EOF becomes stream FIN and FIN becomes a TCP write shutdown, so half-closed
//! connections keep working; a TCP reset becomes a stream reset and back.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use quinn::{ReadError, RecvStream, SendStream, VarInt, WriteError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::Instant;

use crate::gate::SetupGate;
use crate::protocol::stream_code;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes TCP → stream.
    pub sent: u64,
    /// Bytes stream → TCP.
    pub received: u64,
    pub end: End,
}

/// Per-direction byte counters (metrics), bumped once per chunk.
pub struct Counters<'a> {
    pub sent: &'a Counter,
    pub received: &'a Counter,
}

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
    tcp: &mut TcpStream,
    send: &mut SendStream,
    recv: &mut RecvStream,
    buffer: usize,
    idle: Duration,
    counters: Counters<'_>,
    gate: &SetupGate,
) -> Outcome {
    let act = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (mut sent, mut received) = (0u64, 0u64);
    let end = {
        let (mut r, mut w) = tcp.split();
        // One allocation per stream for both directions.
        let mut bufs = vec![0u8; buffer * 2];
        let (up_buf, down_buf) = bufs.split_at_mut(buffer);
        let up = pin!(tcp_to_stream(
            &mut r,
            send,
            gate,
            up_buf,
            &act,
            counters.sent,
            &mut sent
        ));
        let down = pin!(stream_to_tcp(
            recv,
            &mut w,
            down_buf,
            &act,
            counters.received,
            &mut received
        ));
        both(up, down, idle_watch(&act, idle)).await
    };
    finish(tcp, send, recv, end);
    Outcome {
        sent,
        received,
        end,
    }
}

/// Runs both directions to completion; the first failure (or idleness) wins.
async fn both(
    mut up: std::pin::Pin<&mut impl Future<Output = Result<(), End>>>,
    mut down: std::pin::Pin<&mut impl Future<Output = Result<(), End>>>,
    idle: impl Future<Output = ()>,
) -> End {
    let mut idle = pin!(idle);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let res = tokio::select! {
            r = &mut up, if !up_done => { up_done = true; r }
            r = &mut down, if !down_done => { down_done = true; r }
            () = &mut idle => Err(End::Idle),
        };
        if let Err(end) = res {
            return end;
        }
    }
    End::Done
}

/// Tells the other sides how the splice ended.
fn finish(tcp: &TcpStream, send: &mut SendStream, recv: &mut RecvStream, end: End) {
    let code = match end {
        End::Done | End::ConnectionLost => return,
        End::TcpReset => stream_code::TCP_RESET,
        End::Idle => stream_code::IDLE,
        End::StreamReset(code) => {
            // Carry the reset to the TCP peer: a zero linger makes close send RST.
            let _ = tcp.set_zero_linger();
            code
        }
    };
    // Errors here mean the stream is already closed that way, which is fine.
    let _ = send.reset(code);
    let _ = recv.stop(code);
}

async fn tcp_to_stream(
    r: &mut ReadHalf<'_>,
    send: &mut SendStream,
    gate: &SetupGate,
    buf: &mut [u8],
    act: &Activity,
    counter: &Counter,
    total: &mut u64,
) -> Result<(), End> {
    loop {
        let n = match r.read(buf).await {
            Ok(0) => {
                let _ = send.finish();
                return Ok(());
            }
            Ok(n) => n,
            Err(_) => return Err(End::TcpReset),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let w = gate.write_bulk(send, chunk).await.map_err(write_end)?;
            chunk = chunk.get(w..).unwrap_or_default();
        }
        *total += n as u64;
        counter.inc_by(n as u64);
        act.touch();
    }
}

async fn stream_to_tcp(
    recv: &mut RecvStream,
    w: &mut WriteHalf<'_>,
    buf: &mut [u8],
    act: &Activity,
    counter: &Counter,
    total: &mut u64,
) -> Result<(), End> {
    loop {
        // `read` gathers every chunk already received (one per QUIC packet, ~1.2 KB)
        // into the buffer, so a TCP write carries up to a buffer's worth, not a packet's.
        match recv.read(buf).await {
            Ok(Some(n)) => {
                w.write_all(&buf[..n]).await.map_err(|_| End::TcpReset)?;
                *total += n as u64;
                counter.inc_by(n as u64);
                act.touch();
            }
            Ok(None) => {
                // FIN: half-close the TCP side; the other direction may continue.
                let _ = w.shutdown().await;
                return Ok(());
            }
            Err(ReadError::Reset(code)) => return Err(End::StreamReset(code)),
            Err(_) => return Err(End::ConnectionLost),
        }
    }
}

fn write_end(e: WriteError) -> End {
    match e {
        WriteError::Stopped(code) => End::StreamReset(code),
        _ => End::ConnectionLost,
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
