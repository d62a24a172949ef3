//! One tunnelled connection as the access log and tracing see it: filled in
//! while the connection goes through the gateway, handed to
//! `Observe::finish` when it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use causeway_catalog::{ClusterId, ServiceKey};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::metrics::Direction;
use crate::protocol::Request;
use crate::sample::TraceParent;
use crate::splice::{End, Outcome};

#[derive(Debug, Clone)]
pub struct ConnRecord {
    pub start: SystemTime,
    /// When it ended; set by `Observe::finish`.
    pub end: SystemTime,
    pub duration: Duration,
    started: Instant,
    pub direction: Direction,
    /// The calling cluster and its SPIFFE ID (inbound: verified from its certificate).
    pub source_cluster: ClusterId,
    pub source_id: Arc<str>,
    /// The local client (outbound only).
    pub client: Option<SocketAddr>,
    pub service: Option<ServiceKey>,
    pub port: u16,
    /// The cluster that served it: the one chosen (outbound), this one (inbound).
    pub cluster: Option<ClusterId>,
    /// The local endpoint connected to (inbound, and outbound served locally).
    pub endpoint: Option<SocketAddr>,
    /// Bytes towards the service, and back to the caller.
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// How it ended: `ok`, a refusal's status, or how the splice ended.
    pub result: &'static str,
    /// The setup status: `ok` or the refusal (None: nobody answered).
    pub status: Option<&'static str>,
    /// Policy decisions taken for it, e.g. `split:east`, `fault:abort`, `limit:rate`.
    pub policy: Vec<String>,
    pub traceparent: Option<String>,
}

impl ConnRecord {
    fn new(direction: Direction, source_cluster: ClusterId, source_id: Arc<str>) -> Self {
        let start = SystemTime::now();
        ConnRecord {
            start,
            end: start,
            duration: Duration::ZERO,
            started: Instant::now(),
            direction,
            source_cluster,
            source_id,
            client: None,
            service: None,
            port: 0,
            cluster: None,
            endpoint: None,
            request_bytes: 0,
            response_bytes: 0,
            result: "no_cluster",
            status: None,
            policy: Vec::new(),
            traceparent: None,
        }
    }

    /// A local client's connection to `service`, from this cluster.
    pub fn outbound(local: (&ClusterId, &Arc<str>), client: SocketAddr, req: &Request) -> Self {
        let mut r = Self::new(Direction::Outbound, local.0.clone(), local.1.clone());
        r.client = Some(client);
        r.request(req);
        r
    }

    /// A stream from a verified peer; the request comes once its header is read.
    pub fn inbound(peer: &ClusterId, peer_id: &Arc<str>, local: &ClusterId) -> Self {
        let mut r = Self::new(Direction::Inbound, peer.clone(), peer_id.clone());
        r.cluster = Some(local.clone());
        r.result = "header_error";
        r
    }

    pub fn request(&mut self, req: &Request) {
        self.service = Some(req.service.clone());
        self.port = req.port;
        self.traceparent = req.traceparent.clone();
    }

    /// `cluster` refused or failed to set up the connection.
    pub fn refused(&mut self, cluster: Option<&ClusterId>, status: &'static str) {
        if let Some(c) = cluster {
            self.cluster = Some(c.clone());
        }
        self.result = status;
        self.status = Some(status);
    }

    /// `cluster` carried the connection; `out` is the splice's outcome.
    pub fn served(&mut self, cluster: &ClusterId, out: &Outcome) {
        self.cluster = Some(cluster.clone());
        // The splice counts from its TCP side: the client's (outbound) or the endpoint's.
        let (req, resp) = match self.direction {
            Direction::Outbound => (out.sent, out.received),
            Direction::Inbound => (out.received, out.sent),
        };
        self.request_bytes = req;
        self.response_bytes = resp;
        self.result = end_label(out.end);
        self.status = Some("ok");
    }

    pub(crate) fn ended(&mut self) {
        self.end = SystemTime::now();
        self.duration = self.started.elapsed();
    }

    pub fn is_ok(&self) -> bool {
        self.result == "ok"
    }

    pub fn trace(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }

    pub fn direction_str(&self) -> &'static str {
        match self.direction {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    /// The access-log line, newline included.
    pub fn json_line(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(&Line::from(self)).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// How a splice ended, as the access log and spans name it.
pub fn end_label(end: End) -> &'static str {
    match end {
        End::Done => "ok",
        End::TcpReset => "reset",
        End::StreamReset(_) => "peer_reset",
        End::Idle => "idle",
        End::ConnectionLost => "connection_lost",
        End::Aborted => "aborted",
    }
}

fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

/// The JSON shape of a record (docs/observability.md lists the fields).
#[derive(Serialize)]
struct Line<'a> {
    start: String,
    end: String,
    duration_ms: f64,
    direction: &'static str,
    source_cluster: &'a str,
    source_id: &'a str,
    client: Option<SocketAddr>,
    service: Option<String>,
    port: u16,
    cluster: Option<&'a str>,
    endpoint: Option<SocketAddr>,
    request_bytes: u64,
    response_bytes: u64,
    result: &'static str,
    status: Option<&'static str>,
    policy: &'a [String],
    traceparent: Option<&'a str>,
}

impl<'a> From<&'a ConnRecord> for Line<'a> {
    fn from(r: &'a ConnRecord) -> Self {
        Line {
            start: rfc3339(r.start),
            end: rfc3339(r.end),
            // Microsecond precision: finer is noise on a connection.
            duration_ms: r.duration.as_micros() as f64 / 1e3,
            direction: r.direction_str(),
            source_cluster: r.source_cluster.as_str(),
            source_id: &r.source_id,
            client: r.client,
            service: r.service.as_ref().map(ToString::to_string),
            port: r.port,
            cluster: r.cluster.as_ref().map(ClusterId::as_str),
            endpoint: r.endpoint,
            request_bytes: r.request_bytes,
            response_bytes: r.response_bytes,
            result: r.result,
            status: r.status,
            policy: &r.policy,
            traceparent: r.traceparent.as_deref(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use causeway_catalog::Protocol;

    pub(crate) fn sample(direction: Direction) -> ConnRecord {
        let a = ClusterId::new("a").unwrap();
        let id: Arc<str> = "spiffe://a.test/gateway".into();
        let req = Request {
            service: "demo/echo".parse().unwrap(),
            port: 7000,
            protocol: Protocol::Tcp,
            target: None,
            endpoint: None,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        };
        match direction {
            Direction::Outbound => {
                ConnRecord::outbound((&a, &id), "127.0.0.1:5000".parse().unwrap(), &req)
            }
            Direction::Inbound => {
                let mut r = ConnRecord::inbound(&a, &id, &ClusterId::new("b").unwrap());
                r.request(&req);
                r
            }
        }
    }

    #[test]
    fn a_line_carries_every_field_with_bytes_by_flow() {
        let b = ClusterId::new("b").unwrap();
        let out = Outcome {
            sent: 10,
            received: 20,
            end: End::Done,
        };
        let mut r = sample(Direction::Inbound);
        r.served(&b, &out);
        r.policy.push("limit:rate".into());
        r.ended();
        let line = r.json_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["direction"], "inbound");
        assert_eq!(v["source_id"], "spiffe://a.test/gateway");
        assert_eq!(v["service"], "demo/echo");
        // Inbound, the splice's TCP side is the endpoint: it sent the response.
        assert_eq!(
            (v["request_bytes"].as_u64(), v["response_bytes"].as_u64()),
            (Some(20), Some(10))
        );
        assert_eq!(
            (v["result"].as_str(), v["status"].as_str()),
            (Some("ok"), Some("ok"))
        );
        assert_eq!(v["policy"][0], "limit:rate");
        assert!(v["start"].as_str().unwrap().ends_with('Z'), "{v}");
        assert!(v["client"].is_null());
    }

    #[test]
    fn refusals_and_cut_ends_name_themselves() {
        let mut r = sample(Direction::Outbound);
        assert_eq!(r.result, "no_cluster");
        r.refused(Some(&ClusterId::new("b").unwrap()), "forbidden");
        assert_eq!((r.result, r.status), ("forbidden", Some("forbidden")));
        assert_eq!(end_label(End::Idle), "idle");
        assert_eq!(end_label(End::StreamReset(0u32.into())), "peer_reset");
        assert_eq!(sample(Direction::Inbound).result, "header_error");
    }
}
