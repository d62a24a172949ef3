//! Reading a stream header and answering it (inbound side of the stream protocol).

use std::time::Duration;

use quinn::{RecvStream, SendStream};

use crate::gate::SetupGate;
use crate::protocol::{self, ProtoError, Request, Status, stream_code};

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("no complete header within the header timeout")]
    Timeout,
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("stream ended before a complete header: {0}")]
    Stream(#[from] quinn::ReadExactError),
}

pub async fn read_request(recv: &mut RecvStream, limit: Duration) -> Result<Request, HeaderError> {
    let read = async {
        let mut prefix = [0u8; protocol::PREFIX_LEN];
        recv.read_exact(&mut prefix).await?;
        let len = protocol::decode_prefix(prefix)?;
        let mut body = [0u8; protocol::MAX_HEADER];
        recv.read_exact(&mut body[..len]).await?;
        Ok(protocol::decode_request(&body[..len])?)
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| HeaderError::Timeout)?
}

/// Sends a status; for anything but ok, ends both directions of the stream.
pub async fn respond(
    send: &mut SendStream,
    recv: &mut RecvStream,
    gate: &SetupGate,
    status: Status,
    detail: &str,
) {
    // Ahead of other streams' bulk data: the caller is waiting on this to start.
    let _ = send.set_priority(protocol::SETUP_PRIORITY);
    let _ = gate
        .write_setup(send, &protocol::encode_response(status, detail))
        .await;
    // The splice lowers the priority after the stream's first bytes.
    if status != Status::Ok {
        let _ = send.finish();
        let _ = recv.stop(stream_code::PROTOCOL);
    }
}

/// Answers a bad header; returns the metric label. Silence and truncation get a
/// reset (there is nobody useful to answer), malformed headers a status.
pub async fn refuse(
    send: &mut SendStream,
    recv: &mut RecvStream,
    gate: &SetupGate,
    e: &HeaderError,
) -> &'static str {
    let status = match e {
        HeaderError::Proto(ProtoError::Version(_)) => Status::UnsupportedVersion,
        HeaderError::Proto(_) => Status::BadRequest,
        HeaderError::Timeout | HeaderError::Stream(_) => {
            let _ = send.reset(stream_code::PROTOCOL);
            let _ = recv.stop(stream_code::PROTOCOL);
            return "header_error";
        }
    };
    respond(send, recv, gate, status, &e.to_string()).await;
    status.as_str()
}
