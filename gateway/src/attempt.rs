//! Opening an outbound stream: header out, status back, within a timeout.

use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use quinn::{
    Connection, ConnectionError, ReadError, ReadExactError, RecvStream, SendStream, WriteError,
};

use causeway_catalog::ClusterId;

use crate::gate::SetupGate;
use crate::metrics::Direction;
use crate::pool::{Caps, StreamSlot};
use crate::protocol::{self, ProtoError, Request, Status};
use crate::shared::Shared;

/// A stream opened through a peer cluster, and the slot it holds.
pub(crate) struct Opened {
    pub slot: StreamSlot,
    pub conn: Connection,
    pub send: SendStream,
    pub recv: RecvStream,
}

/// One attempt through `cluster` (TCP connection or UDP flow): a stream on
/// its least-loaded connection, given up as soon as that connection turns
/// silent (no byte has reached the client yet, so the next cluster may take
/// it). Counts the outcome in the stream metric and the cluster's ejection
/// state. None when no connection could take a stream (nothing counted).
pub(crate) async fn attempt_on(
    shared: &Shared,
    cluster: &ClusterId,
    req: &Request,
    limit: Duration,
) -> Option<Result<Opened, AttemptError>> {
    let l = &shared.cfg.limits;
    let caps = Caps {
        per_connection: l.max_streams_per_connection as usize,
        per_peer: l.max_streams_per_peer as usize,
    };
    let (slot, conn) = shared.pool.pick(cluster, shared.workers.current(), &caps)?;
    let tried = tokio::select! {
        r = attempt(limit, &conn, slot.gate(), req) => r,
        () = slot.silent(&shared.pool) => Err(AttemptError::Silent),
    };
    let label = tried.as_ref().map_or_else(|e| e.status_label(), |_| "ok");
    shared
        .metrics
        .stream(cluster.as_str(), Direction::Outbound, label);
    Some(match tried {
        Ok((send, recv)) => {
            shared.pool.success(shared, cluster);
            Ok(Opened {
                slot,
                conn,
                send,
                recv,
            })
        }
        Err(e) => {
            if e.counts_as_failure() {
                shared.pool.failure(shared, cluster);
            }
            Err(e)
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("far side answered {0:?}: {1}")]
    Status(Status, String),
    #[error("no status within gateway.timeouts.status ({0})")]
    Timeout(Phase),
    #[error("opening a stream failed: {0}")]
    Open(#[from] ConnectionError),
    #[error("sending the header failed: {0}")]
    Write(#[from] WriteError),
    #[error("reading the status failed: {0}")]
    Read(#[from] ReadExactError),
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("the peer connection went silent before the far side answered")]
    Silent,
}

impl AttemptError {
    pub fn status_label(&self) -> &'static str {
        match self {
            AttemptError::Status(s, _) => s.as_str(),
            AttemptError::Timeout(_) => "timeout",
            _ if self.peer_draining() => "draining",
            AttemptError::Open(_) | AttemptError::Write(_) | AttemptError::Read(_) => {
                "stream_error"
            }
            AttemptError::Proto(_) => "protocol_error",
            AttemptError::Silent => "peer_silent",
        }
    }
    pub fn counts_as_failure(&self) -> bool {
        match self {
            AttemptError::Status(s, _) => s.counts_as_failure(),
            // The connection is out of the running already.
            AttemptError::Silent => false,
            _ => !self.peer_draining(),
        }
    }

    /// The peer closed the connection with "draining, go elsewhere": not its failure.
    fn peer_draining(&self) -> bool {
        let conn = match self {
            AttemptError::Open(e) => Some(e),
            AttemptError::Write(WriteError::ConnectionLost(e)) => Some(e),
            AttemptError::Read(ReadExactError::ReadError(ReadError::ConnectionLost(e))) => Some(e),
            _ => None,
        };
        matches!(conn, Some(ConnectionError::ApplicationClosed(c)) if c.error_code == protocol::CLOSE_DRAINING)
    }
}

/// Where an attempt was when its time ran out: tells flow-control stalls
/// (opening, sending) from a far side that never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Open,
    Header,
    Status,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Open => "still opening the stream",
            Phase::Header => "header not yet handed to QUIC",
            Phase::Status => "header sent, no answer",
        })
    }
}

/// Runs one phase of an attempt against the attempt's deadline.
async fn within<T, E>(
    deadline: Instant,
    phase: Phase,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, AttemptError>
where
    AttemptError: From<E>,
{
    match timeout_at(deadline, step).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(AttemptError::Timeout(phase)),
    }
}

/// Opens a stream, sends the header and waits for the status, all within `limit`.
pub async fn attempt(
    limit: Duration,
    conn: &Connection,
    gate: &SetupGate,
    req: &Request,
) -> Result<(SendStream, RecvStream), AttemptError> {
    let header = protocol::encode_request(req)?;
    let deadline = Instant::now() + limit;
    let (mut send, mut recv) = within(deadline, Phase::Open, conn.open_bi()).await?;
    tracing::trace!(stream = %send.id(), "stream opened");
    // The header goes out ahead of other streams' bulk data (and so do the
    // stream's first bytes: the splice lowers the priority after them).
    let _ = send.set_priority(protocol::SETUP_PRIORITY);
    within(
        deadline,
        Phase::Header,
        gate.write_setup(&mut send, &header),
    )
    .await?;
    let status = async {
        let mut head = [0u8; 3];
        recv.read_exact(&mut head).await?;
        let (status, n) = protocol::decode_response_head(head)?;
        let mut detail = [0u8; 255];
        recv.read_exact(&mut detail[..n]).await?;
        Ok::<_, AttemptError>((status, String::from_utf8_lossy(&detail[..n]).into_owned()))
    };
    let (status, detail) = within(deadline, Phase::Status, status).await?;
    if status != Status::Ok {
        return Err(AttemptError::Status(status, detail));
    }
    Ok((send, recv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::{ApplicationClose, VarInt};

    fn closed(code: VarInt) -> ConnectionError {
        ConnectionError::ApplicationClosed(ApplicationClose {
            error_code: code,
            reason: Default::default(),
        })
    }

    #[test]
    fn draining_close_is_not_a_failure_but_other_losses_are() {
        let draining = AttemptError::Open(closed(protocol::CLOSE_DRAINING));
        assert!(!draining.counts_as_failure());
        assert_eq!(draining.status_label(), "draining");
        let read = AttemptError::Read(ReadExactError::ReadError(ReadError::ConnectionLost(
            closed(protocol::CLOSE_DRAINING),
        )));
        assert!(!read.counts_as_failure());
        let lost = AttemptError::Open(ConnectionError::TimedOut);
        assert!(lost.counts_as_failure());
        assert_eq!(lost.status_label(), "stream_error");
        assert!(AttemptError::Timeout(Phase::Status).counts_as_failure());
    }

    #[test]
    fn only_endpoint_failures_count_among_statuses() {
        for (status, counts) in [
            (Status::ConnectFailed, true),
            (Status::NoReadyEndpoint, true),
            (Status::Forbidden, false),
            (Status::UnknownService, false),
            (Status::Overloaded, false),
            (Status::Draining, false),
        ] {
            let e = AttemptError::Status(status, String::new());
            assert_eq!(e.counts_as_failure(), counts, "{status:?}");
            assert_eq!(e.status_label(), status.as_str());
        }
    }
}
