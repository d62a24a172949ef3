//! A tiny HTTP/1.1 client for the admin endpoints (`dev up`, `causeway status`)
//! and the tests' WebDriver sessions.

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
    request(addr, "GET", path, None, limit).await
}

/// `METHOD path` with an optional JSON body and `Connection: close`: (status, body).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
    limit: Duration,
) -> Result<(u16, String), HttpError> {
    match tokio::time::timeout(limit, exchange(addr, method, path, json)).await {
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

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> Result<(u16, String), HttpError> {
    let io = |source| HttpError::Io {
        addr,
        path: path.to_owned(),
        source,
    };
    let mut s = TcpStream::connect(addr).await.map_err(io)?;
    let body = json.map_or(String::new(), |b| {
        let len = b.len();
        format!("Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n{b}")
    });
    let end = if json.is_some() { "" } else { "\r\n" };
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{end}{body}");
    s.write_all(req.as_bytes()).await.map_err(io)?;
    let raw = read_response(s).await.map_err(io)?;
    parse(&raw).ok_or_else(|| HttpError::Malformed {
        addr,
        path: path.to_owned(),
    })
}

/// Reads until the server closes or, for servers that keep the connection
/// open anyway (chromedriver), until `Content-Length` bytes of body arrived.
async fn read_response(s: TcpStream) -> std::io::Result<Vec<u8>> {
    let (mut s, mut raw, mut buf) = (s.take(MAX_RESPONSE), Vec::new(), [0u8; 16384]);
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
        if complete(&raw) {
            return Ok(raw);
        }
    }
}

/// Whether `raw` holds a whole response with a `Content-Length`.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let len = head.lines().find_map(|l| {
        let v = l.strip_prefix("content-length:")?;
        v.trim().parse::<usize>().ok()
    });
    len.is_some_and(|len| raw.len() >= end + 4 + len)
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
    use super::{complete, parse};

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

    #[test]
    fn a_response_is_complete_at_its_content_length() {
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length:3\r\n\r\nok\n"));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok\n"
        ));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n"
        ));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Le"));
    }
}
