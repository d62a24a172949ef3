//! Connection spans exported over OTLP gRPC (`gateway.tracing`).
//!
//! The data plane pushes finished records into a bounded queue; a thread of
//! its own, with a runtime of its own (never a data-plane worker, never the
//! caller's), batches them and exports each batch within a timeout. A full
//! queue or a failed export drops spans and counts them: a collector that is
//! down or slow never holds up traffic.

use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::ClusterInfo;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter as _;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use crate::observe::{ObserveError, ObserveMetrics, sampling_key};
use crate::otlp_batch::{Batcher, Msg};
use crate::otlp_config::TracingConfig;
use crate::record::ConnRecord;
use crate::sample::Ratio;

/// The data plane's handle: decides, then pushes without waiting.
pub struct Spans {
    tx: mpsc::Sender<Msg>,
    sample: Ratio,
    full: Counter,
}

impl Spans {
    /// Builds the exporter and starts its thread; None when no endpoint is configured.
    pub fn start(
        cfg: &TracingConfig,
        local: &ClusterInfo,
        m: &ObserveMetrics,
    ) -> Result<Option<Self>, ObserveError> {
        let Some(endpoint) = &cfg.otlp_endpoint else {
            return Ok(None);
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ObserveError::Thread)?;
        // tonic's channel starts its background task on the runtime it is built in.
        let exporter = {
            let _ctx = rt.enter();
            exporter(endpoint, cfg, local)?
        };
        let (tx, rx) = mpsc::channel(cfg.queue as usize);
        let batcher = Batcher::new(exporter, rx, cfg, m);
        std::thread::Builder::new()
            .name("causeway-otlp".into())
            .spawn(move || rt.block_on(batcher.run()))
            .map_err(ObserveError::Thread)?;
        tracing::info!(%endpoint, sample = cfg.sample.0, "exporting connection spans over OTLP");
        Ok(Some(Spans {
            tx,
            sample: cfg.sample,
            full: m.spans_dropped("queue_full"),
        }))
    }

    /// At the sampling ratio, keyed on the trace id (so both gateways agree),
    /// and never for a trace its caller marked as not sampled.
    pub fn wants(&self, r: &ConnRecord) -> bool {
        r.trace().is_none_or(|t| t.sampled) && self.sample.keeps(sampling_key(r))
    }

    /// Never waits: a full queue drops the span.
    pub fn push(&self, r: Arc<ConnRecord>) {
        if self.tx.try_send(Msg::Span(r)).is_err() {
            self.full.inc();
        }
    }

    /// Waits (up to `limit`) until what was pushed so far has been exported or dropped.
    pub async fn flush(&self, limit: Duration) {
        let (ack, done) = oneshot::channel();
        if self.tx.try_send(Msg::Flush(ack)).is_ok() {
            let _ = tokio::time::timeout(limit, done).await;
        }
    }
}

fn exporter(
    endpoint: &str,
    cfg: &TracingConfig,
    local: &ClusterInfo,
) -> Result<opentelemetry_otlp::SpanExporter, ObserveError> {
    let mut e = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(cfg.export_timeout)
        // One try per batch: a retry would only hold the queue back longer.
        .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
        .build()
        .map_err(ObserveError::Exporter)?;
    let resource = Resource::builder_empty()
        .with_service_name(cfg.service_name.clone())
        .with_attribute(KeyValue::new("causeway.cluster", local.name.to_string()))
        .build();
    e.set_resource(&resource);
    Ok(e)
}
