//! The link endpoint's messages (docs/protocol.md, "Link endpoint"): after
//! TLS, the server sends a [`Hello`]; the client sends one [`Request`]; the
//! server answers with one [`Response`]. Each is a 4-byte big-endian length,
//! then that many bytes of JSON, at most [`MAX_FRAME`].

use causeway_catalog::ClusterId;
use causeway_identity::TrustDomain;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const ALPN: &[u8] = b"causeway-link/1";
pub const MAX_FRAME: usize = 256 * 1024;

/// What the server says first: who it is and its CA bundle (PEM), so a
/// redeemer can check the bundle against the token's pin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub cluster: ClusterId,
    pub trust_domain: TrustDomain,
    pub ca_bundle: String,
}

/// One side of a link: what the other side needs to trust and reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub cluster: ClusterId,
    pub trust_domain: TrustDomain,
    /// host:port of its federation listener.
    pub federation: String,
    /// host:port of its link endpoint.
    pub link: String,
    pub ca_bundle: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Without a client certificate: the token proves the right to link.
    Redeem {
        id: String,
        secret: String,
        card: Card,
    },
    /// With the peer's federation certificate: forget me.
    Unlink,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Linked { card: Card },
    Done,
    Refused { reason: String },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("message of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

pub async fn send<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), WireError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(WireError::TooLarge(body.len()));
    }
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

pub async fn recv<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> Result<T, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_unread() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        send(&mut a, &Request::Unlink).await.unwrap();
        assert!(matches!(recv(&mut b).await.unwrap(), Request::Unlink));
        a.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let r: Result<Request, _> = recv(&mut b).await;
        assert!(matches!(r, Err(WireError::TooLarge(_))));
    }
}
