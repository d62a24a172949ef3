//! A tiny HTTP/1.1 GET for the admin endpoints (`dev up` and `causeway status`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Admin responses are small; anything larger is refused.
const MAX_RESPONSE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("GET http://{addr}{path}: {source}")]
    Io {
        addr: SocketAddr,
        path: String,
        source: std::io::Error,
    },
    #[error("GET http://{addr}{path}: no answer within {limit:?}")]
    Timeout {
        addr: SocketAddr,
        path: String,
        limit: Duration,
    },
    #[error("GET http://{addr}{path}: not an HTTP response")]
    Malformed { addr: SocketAddr, path: String },
    #[error("GET http://{addr}{path}: status {status}: {body}")]
    Status {
        addr: SocketAddr,
        path: String,
        status: u16,
        body: String,
    },
    #[error("GET http://{addr}{path}: bad JSON: {source}")]
    Json {
        addr: SocketAddr,
        path: String,
        source: serde_json::Error,
    },
}

/// `GET path` with `Connection: close`: (status, body).
pub async fn get(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), HttpError> {
    match tokio::time::timeout(limit, exchange(addr, path)).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout {
            addr,
            path: path.to_owned(),
            limit,
        }),
    }
}

/// `GET path`, expecting 200 and a JSON body.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<T, HttpError> {
    let (status, body) = get(addr, path, limit).await?;
    if status != 200 {
        let body = body.trim().chars().take(200).collect();
        let path = path.to_owned();
        return Err(HttpError::Status {
            addr,
            path,
            status,
            body,
        });
    }
    serde_json::from_str(&body).map_err(|source| HttpError::Json {
        addr,
        path: path.to_owned(),
        source,
    })
}

async fn exchange(addr: SocketAddr, path: &str) -> Result<(u16, String), HttpError> {
    let io = |source| HttpError::Io {
        addr,
        path: path.to_owned(),
        source,
    };
    let mut s = TcpStream::connect(addr).await.map_err(io)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .await
        .map_err(io)?;
    parse(&raw).ok_or_else(|| HttpError::Malformed {
        addr,
        path: path.to_owned(),
    })
}

/// Status and body of a `Connection: close` response (no chunked bodies from axum here
/// unless streaming; both forms are handled).
fn parse(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(after.get(..n)?);
        rest = after.get(n..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
        assert_eq!(parse(plain), Some((200, "ok\n".into())));
        let chunked =
            b"HTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(chunked), Some((503, "abcde".into())));
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(parse(b"HTTP/1.1 2\r\n\r\n"), None);
    }
}
