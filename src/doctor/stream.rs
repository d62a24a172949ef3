//! One `causeway/1` stream on a peer gateway connection: send a header, read
//! the far side's status (docs/protocol.md), then end the stream.

use causeway_catalog::{ClusterId, Protocol, ServiceKey};
use causeway_gateway::protocol::{Request, Response, Status, decode_response_head, encode_request};

use super::STEP;

#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    #[error("cannot encode the header: {0}")]
    Encode(causeway_gateway::protocol::ProtoError),
    #[error("the connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("sending the header failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("reading the status failed: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("the far side answered with a malformed status: {0}")]
    Decode(causeway_gateway::protocol::ProtoError),
    #[error("no status within {STEP:?}")]
    Timeout,
}

/// Asks `conn`'s gateway for `service` port `port` on `target`; returns its answer.
pub(super) async fn ask(
    conn: &quinn::Connection,
    service: &ServiceKey,
    port: u16,
    target: &ClusterId,
) -> Result<Response, StreamError> {
    let req = Request {
        service: service.clone(),
        port,
        protocol: Protocol::Tcp,
        target: Some(target.clone()),
        endpoint: None,
        traceparent: None,
    };
    let bytes = encode_request(&req).map_err(StreamError::Encode)?;
    match tokio::time::timeout(STEP, exchange(conn, &bytes)).await {
        Ok(r) => r,
        Err(_) => Err(StreamError::Timeout),
    }
}

async fn exchange(conn: &quinn::Connection, header: &[u8]) -> Result<Response, StreamError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(header).await?;
    let mut head = [0u8; 3];
    recv.read_exact(&mut head).await?;
    let (status, len) = decode_response_head(head).map_err(StreamError::Decode)?;
    let mut detail = vec![0u8; len];
    recv.read_exact(&mut detail).await?;
    // Done: no bytes follow from us; the far side closes its endpoint connection.
    let _ = send.finish();
    let _ = recv.stop(0u32.into());
    Ok(Response {
        status,
        detail: String::from_utf8_lossy(&detail).into_owned(),
    })
}

/// The status as the docs name it, with its detail.
pub(super) fn describe(r: &Response) -> String {
    if r.detail.is_empty() {
        r.status.as_str().to_owned()
    } else {
        format!("{} ({})", r.status.as_str(), r.detail)
    }
}

/// Whether the answer proves the far side authenticated us and speaks `causeway/1`.
pub(super) fn answered(r: &Response) -> bool {
    !matches!(r.status, Status::BadRequest | Status::UnsupportedVersion)
}
