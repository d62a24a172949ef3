//! The `causeway/1` stream protocol: pure encoding and decoding (see docs/protocol.md).
//!
//! Request, sent by the caller when it opens a stream:
//! `version u8 | length u16 BE | body` with body
//! `str8 namespace | str8 name | port u16 | protocol u8 | str8 target | str8 traceparent`.
//! Response: `version u8 | status u8 | str8 detail`. `str8` is a u8 length then UTF-8.

use causeway_catalog::{ClusterId, Protocol, ServiceKey};
use quinn::VarInt;

pub const VERSION: u8 = 1;
/// The whole request (prefix included) is at most 4 KiB.
pub const MAX_HEADER: usize = 4096;
pub const PREFIX_LEN: usize = 3;
pub const ALPN: &[u8] = b"causeway/1";
/// quinn send priority of stream headers, statuses and the first
/// `EAGER_BYTES` of each direction (bulk data is 0).
pub const SETUP_PRIORITY: i32 = 1;
/// The first bytes of each direction of a stream go ahead of other streams'
/// bulk data, like its header: short exchanges (requests, replies, handshakes
/// of the protocol inside) never queue behind a bulk transfer.
pub const EAGER_BYTES: u64 = 64 << 10;

/// Stream reset / stop codes (QUIC application error codes on streams).
pub mod stream_code {
    use quinn::VarInt;
    /// The TCP connection on the other side was reset.
    pub const TCP_RESET: VarInt = VarInt::from_u32(1);
    /// No bytes either way for `timeouts.idle`.
    pub const IDLE: VarInt = VarInt::from_u32(2);
    /// The header was malformed, too large or too slow.
    pub const PROTOCOL: VarInt = VarInt::from_u32(3);
    /// The gateway stopped carrying the stream before it ended (shutting down).
    pub const ABORTED: VarInt = VarInt::from_u32(4);
}

/// Connection close code meaning "I am draining, go elsewhere"; not a failure.
pub const CLOSE_DRAINING: VarInt = VarInt::from_u32(0x10);
/// Connection close: a new connection to the same peer took this one's place.
pub const CLOSE_REPLACED: VarInt = VarInt::from_u32(0x12);

/// What the far side answers before any byte flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    UnknownService = 1,
    Forbidden = 2,
    NoReadyEndpoint = 3,
    ConnectFailed = 4,
    Overloaded = 5,
    Draining = 6,
    BadRequest = 7,
    UnsupportedVersion = 8,
    Limited = 9,
}

impl Status {
    pub fn from_u8(b: u8) -> Option<Status> {
        use Status::*;
        [
            Ok,
            UnknownService,
            Forbidden,
            NoReadyEndpoint,
            ConnectFailed,
            Overloaded,
            Draining,
            BadRequest,
            UnsupportedVersion,
            Limited,
        ]
        .into_iter()
        .find(|s| *s as u8 == b)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::UnknownService => "unknown_service",
            Status::Forbidden => "forbidden",
            Status::NoReadyEndpoint => "no_ready_endpoint",
            Status::ConnectFailed => "connect_failed",
            Status::Overloaded => "overloaded",
            Status::Draining => "draining",
            Status::BadRequest => "bad_request",
            Status::UnsupportedVersion => "unsupported_version",
            Status::Limited => "limited",
        }
    }

    /// Whether the caller should count this answer against the cluster (outlier ejection).
    /// Policy answers (forbidden, unknown service) and back-pressure (overloaded, draining)
    /// are not the cluster failing.
    pub fn counts_as_failure(self) -> bool {
        matches!(self, Status::NoReadyEndpoint | Status::ConnectFailed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub service: ServiceKey,
    pub port: u16,
    pub protocol: Protocol,
    pub target: Option<ClusterId>,
    /// One endpoint of a headless service, by hostname: written in the
    /// header's target as `<cluster>/<hostname>`.
    pub endpoint: Option<String>,
    /// W3C trace context, passed through unparsed (bounded by the header size).
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    #[error("unsupported protocol version {0}; this gateway speaks version {VERSION}")]
    Version(u8),
    #[error("header length {0} is outside 1..={max}", max = MAX_HEADER - PREFIX_LEN)]
    Length(usize),
    #[error("header truncated while reading {0}")]
    Truncated(&'static str),
    #[error("header field {0} is not valid UTF-8")]
    Utf8(&'static str),
    #[error("header names an invalid service or cluster: {0}")]
    Name(#[from] causeway_catalog::NameError),
    #[error("header protocol byte {0} is unknown (0 = tcp, 1 = udp, 2 = sctp)")]
    Protocol(u8),
    #[error("header has {0} bytes after its last field")]
    Trailing(usize),
    #[error("header field {0} is longer than 255 bytes")]
    FieldTooLong(&'static str),
    #[error("response status {0} is unknown")]
    Status(u8),
}

/// Checks the 3-byte prefix; returns the body length to read next.
pub fn decode_prefix(p: [u8; PREFIX_LEN]) -> Result<usize, ProtoError> {
    if p[0] != VERSION {
        return Err(ProtoError::Version(p[0]));
    }
    let len = usize::from(u16::from_be_bytes([p[1], p[2]]));
    if len == 0 || len > MAX_HEADER - PREFIX_LEN {
        return Err(ProtoError::Length(len));
    }
    Ok(len)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtoError> {
        if self.0.len() < n {
            return Err(ProtoError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, ProtoError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, ProtoError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn str8(&mut self, what: &'static str) -> Result<&'a str, ProtoError> {
        let n = usize::from(self.u8(what)?);
        std::str::from_utf8(self.take(n, what)?).map_err(|_| ProtoError::Utf8(what))
    }
}

/// Decodes a request body (after the prefix).
pub fn decode_request(body: &[u8]) -> Result<Request, ProtoError> {
    let mut c = Cursor(body);
    let namespace = c.str8("namespace")?;
    let name = c.str8("name")?;
    let port = c.u16("port")?;
    let protocol = match c.u8("protocol")? {
        0 => Protocol::Tcp,
        1 => Protocol::Udp,
        2 => Protocol::Sctp,
        other => return Err(ProtoError::Protocol(other)),
    };
    let target = c.str8("target")?;
    let traceparent = c.str8("traceparent")?;
    if !c.0.is_empty() {
        return Err(ProtoError::Trailing(c.0.len()));
    }
    // `cluster/host` names one headless endpoint; a host needs its cluster.
    let (target, endpoint) = match target.split_once('/') {
        Some((cluster, host)) => (
            Some(ClusterId::new(cluster)?),
            Some(ClusterId::new(host)?.to_string()),
        ),
        None if target.is_empty() => (None, None),
        None => (Some(ClusterId::new(target)?), None),
    };
    Ok(Request {
        service: ServiceKey::new(namespace, name)?,
        port,
        protocol,
        target,
        endpoint,
        traceparent: (!traceparent.is_empty()).then(|| traceparent.to_owned()),
    })
}

fn put_str8(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), ProtoError> {
    let n = u8::try_from(s.len()).map_err(|_| ProtoError::FieldTooLong(what))?;
    out.push(n);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Encodes a whole request, prefix included.
pub fn encode_request(r: &Request) -> Result<Vec<u8>, ProtoError> {
    let mut out = vec![VERSION, 0, 0];
    put_str8(&mut out, r.service.namespace(), "namespace")?;
    put_str8(&mut out, r.service.name(), "name")?;
    out.extend_from_slice(&r.port.to_be_bytes());
    out.push(match r.protocol {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    });
    let target = match (&r.target, &r.endpoint) {
        (Some(c), Some(host)) => format!("{c}/{host}"),
        (Some(c), None) => c.to_string(),
        (None, _) => String::new(),
    };
    put_str8(&mut out, &target, "target")?;
    put_str8(
        &mut out,
        r.traceparent.as_deref().unwrap_or(""),
        "traceparent",
    )?;
    // Every field is bounded, so the body always fits in u16 and MAX_HEADER.
    let len = u16::try_from(out.len() - PREFIX_LEN).map_err(|_| ProtoError::Length(out.len()))?;
    out[1..3].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Encodes a response; the detail is cut to 255 bytes on a character boundary.
pub fn encode_response(status: Status, detail: &str) -> Vec<u8> {
    let mut end = detail.len().min(255);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(3 + end);
    out.extend_from_slice(&[VERSION, status as u8, end as u8]);
    out.extend_from_slice(&detail.as_bytes()[..end]);
    out
}

/// Decodes the fixed part of a response: `(status, detail length)`.
pub fn decode_response_head(head: [u8; 3]) -> Result<(Status, usize), ProtoError> {
    if head[0] != VERSION {
        return Err(ProtoError::Version(head[0]));
    }
    let status = Status::from_u8(head[1]).ok_or(ProtoError::Status(head[1]))?;
    Ok((status, usize::from(head[2])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req() -> Request {
        Request {
            service: "demo/echo".parse().unwrap(),
            port: 8080,
            protocol: Protocol::Tcp,
            target: Some(ClusterId::new("west").unwrap()),
            endpoint: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        }
    }

    #[test]
    fn a_headless_endpoint_travels_in_the_target() {
        let mut r = req();
        r.endpoint = Some("db-0".into());
        let bytes = encode_request(&r).unwrap();
        assert!(
            bytes
                .windows(10)
                .any(|w| w == b"west/db-0\x00" || w.starts_with(b"west/db-0"))
        );
        let back = decode_request(&bytes[PREFIX_LEN..]).unwrap();
        assert_eq!(back, r);
        let mut bad = r.clone();
        bad.endpoint = Some("a.b".into());
        let bytes = encode_request(&bad).unwrap();
        assert!(matches!(
            decode_request(&bytes[PREFIX_LEN..]),
            Err(ProtoError::Name(_))
        ));
    }

    #[test]
    fn an_endpoint_without_its_cluster_is_refused() {
        // Found by fuzz/stream_header: `/db-0` decoded to a request that
        // re-encoded without its endpoint.
        let mut body = encode_request(&req()).unwrap()[PREFIX_LEN..].to_vec();
        let at = body.windows(4).position(|w| w == b"west").unwrap();
        body.splice(at - 1..at + 4, *b"\x05/db-0");
        assert!(matches!(decode_request(&body), Err(ProtoError::Name(_))));
    }

    #[test]
    fn request_round_trips() {
        let bytes = encode_request(&req()).unwrap();
        let len = decode_prefix(bytes[..3].try_into().unwrap()).unwrap();
        assert_eq!(len, bytes.len() - 3);
        assert_eq!(decode_request(&bytes[3..]).unwrap(), req());
    }

    #[test]
    fn refuses_unknown_version_and_bad_lengths() {
        assert_eq!(decode_prefix([2, 0, 5]), Err(ProtoError::Version(2)));
        assert_eq!(decode_prefix([1, 0, 0]), Err(ProtoError::Length(0)));
        assert_eq!(decode_prefix([1, 0x10, 0]), Err(ProtoError::Length(4096)));
        assert_eq!(decode_prefix([1, 0x0f, 0xfd]), Ok(4093));
    }

    #[test]
    fn response_round_trips_and_cuts_detail() {
        let long = "é".repeat(200);
        let bytes = encode_response(Status::Forbidden, &long);
        let (s, n) = decode_response_head(bytes[..3].try_into().unwrap()).unwrap();
        assert_eq!((s, n), (Status::Forbidden, 254));
        assert!(std::str::from_utf8(&bytes[3..]).is_ok());
        assert_eq!(
            decode_response_head([1, 99, 0]),
            Err(ProtoError::Status(99))
        );
    }

    #[test]
    fn every_status_has_a_code_and_name() {
        for b in 0..=255u8 {
            if let Some(s) = Status::from_u8(b) {
                assert_eq!(s as u8, b);
                assert!(!s.as_str().is_empty());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_request(&body);
        }

        #[test]
        fn truncations_are_errors(cut in 0usize..200) {
            let bytes = encode_request(&req()).unwrap();
            let body = &bytes[3..];
            let cut = cut % body.len();
            prop_assert!(decode_request(&body[..cut]).is_err());
        }
    }
}
