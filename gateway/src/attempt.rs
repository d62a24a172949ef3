//! Opening an outbound stream: header out, status back, within a timeout.

use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use quinn::{
    Connection, ConnectionError, ReadError, ReadExactError, RecvStream, SendStream, WriteError,
};

use crate::gate::SetupGate;
use crate::protocol::{self, ProtoError, Request, Status};

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
        }
    }
    pub fn counts_as_failure(&self) -> bool {
        match self {
            AttemptError::Status(s, _) => s.counts_as_failure(),
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
    Open = 0,
    Header = 1,
    Status = 2,
}

impl From<u8> for Phase {
    fn from(v: u8) -> Self {
        match v {
            0 => Phase::Open,
            1 => Phase::Header,
            _ => Phase::Status,
        }
    }
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

/// Opens a stream, sends the header and waits for the status.
pub async fn attempt(
    limit: Duration,
    conn: &Connection,
    gate: &SetupGate,
    req: &Request,
) -> Result<(SendStream, RecvStream), AttemptError> {
    let header = protocol::encode_request(req)?;
    // Read after the timeout drops the exchange; atomic only because the task is Send.
    let phase = AtomicU8::new(Phase::Open as u8);
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        phase.store(Phase::Header as u8, Relaxed);
        tracing::trace!(stream = %send.id(), "stream opened");
        // The header goes out ahead of other streams' bulk data, then this stream
        // takes its fair turn like the rest.
        let _ = send.set_priority(protocol::SETUP_PRIORITY);
        gate.write_setup(&mut send, &header).await?;
        phase.store(Phase::Status as u8, Relaxed);
        let mut head = [0u8; 3];
        recv.read_exact(&mut head).await?;
        let (status, n) = protocol::decode_response_head(head)?;
        let mut detail = [0u8; 255];
        recv.read_exact(&mut detail[..n]).await?;
        if status != Status::Ok {
            let detail = String::from_utf8_lossy(&detail[..n]).into_owned();
            return Err(AttemptError::Status(status, detail));
        }
        let _ = send.set_priority(0);
        Ok((send, recv))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| AttemptError::Timeout(Phase::from(phase.load(Relaxed))))?
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
