//! What the gateway reports about each connection once it ends: the access
//! log and OTLP spans. The data plane calls `finish`; both run on threads of
//! their own and drop (and count) what they cannot keep up with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::ClusterInfo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::otlp::Spans;
use crate::record::ConnRecord;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    #[error(
        "gateway.access_log.path: cannot open {0}: {1} (check the directory exists and is writable, or use - for standard output)"
    )]
    Open(PathBuf, #[source] std::io::Error),
    #[error("cannot start an observability thread (access log or span export): {0}")]
    Thread(#[source] std::io::Error),
    #[error("gateway.tracing.otlp_endpoint: cannot build the OTLP exporter: {0}")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Counters of lines and spans (documented in docs/metrics.md).
#[derive(Debug, Clone, Default)]
pub struct ObserveMetrics {
    pub log_lines: Counter,
    pub log_dropped: Family<ReasonLabel, Counter>,
    pub spans_exported: Counter,
    pub spans_dropped: Family<ReasonLabel, Counter>,
}

impl ObserveMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("gateway");
        r.register(
            "access_log_lines",
            "Access-log lines written",
            self.log_lines.clone(),
        );
        r.register(
            "access_log_dropped",
            "Access-log lines dropped, by reason (queue_full: the writer fell behind; write_error)",
            self.log_dropped.clone(),
        );
        r.register(
            "spans_exported",
            "Connection spans the OTLP collector accepted",
            self.spans_exported.clone(),
        );
        r.register(
            "spans_dropped",
            "Connection spans dropped, by reason (queue_full; export_failed: collector down, slow or refusing)",
            self.spans_dropped.clone(),
        );
    }

    pub fn log_dropped(&self, reason: &'static str) -> Counter {
        self.log_dropped
            .get_or_create_owned(&ReasonLabel { reason })
    }

    pub fn spans_dropped(&self, reason: &'static str) -> Counter {
        self.spans_dropped
            .get_or_create_owned(&ReasonLabel { reason })
    }
}

pub struct Observe {
    log: Option<AccessLog>,
    spans: Option<Spans>,
    /// Our own SPIFFE ID: the source of outbound connections.
    pub local_id: Arc<str>,
}

impl Observe {
    /// Starts the configured observers (none by default) and registers their metrics.
    pub fn start(
        cfg: &Config,
        local: &ClusterInfo,
        registry: &mut Registry,
    ) -> Result<Self, ObserveError> {
        let metrics = ObserveMetrics::default();
        metrics.register(registry);
        Ok(Observe {
            log: AccessLog::start(&cfg.access_log, &metrics)?,
            spans: Spans::start(&cfg.tracing, local, &metrics)?,
            local_id: format!("spiffe://{}/gateway", local.trust_domain).into(),
        })
    }

    /// Hands the ended connection to whichever observer wants it; never waits.
    pub fn finish(&self, mut rec: ConnRecord) {
        let log = self.log.as_ref().filter(|l| l.wants(&rec));
        let spans = self.spans.as_ref().filter(|s| s.wants(&rec));
        if log.is_none() && spans.is_none() {
            return;
        }
        rec.ended();
        let rec = Arc::new(rec);
        if let Some(s) = spans {
            s.push(rec.clone());
        }
        if let Some(l) = log {
            l.push(rec);
        }
    }

    /// Writes out and exports what is queued, each within `limit` (at drain).
    pub async fn flush(&self, limit: Duration) {
        if let Some(l) = &self.log {
            l.flush(limit).await;
        }
        if let Some(s) = &self.spans {
            s.flush(limit).await;
        }
    }
}

/// What sampling decisions key on: the trace id, so both gateways of a
/// connection decide alike; a random key for a stream without one.
pub fn sampling_key(r: &ConnRecord) -> u64 {
    r.trace().map_or_else(rand::random, |t| t.key())
}
