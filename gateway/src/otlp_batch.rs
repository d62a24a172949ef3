//! The export thread's loop: gather a batch, export it within a timeout, count.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout, timeout_at};

use crate::metrics::Direction;
use crate::observe::ObserveMetrics;
use crate::otlp_config::TracingConfig;
use crate::record::ConnRecord;

pub enum Msg {
    Span(Arc<ConnRecord>),
    Flush(oneshot::Sender<()>),
}

pub struct Batcher<E> {
    exporter: E,
    rx: mpsc::Receiver<Msg>,
    scope: InstrumentationScope,
    max_batch: usize,
    delay: Duration,
    timeout: Duration,
    exported: Counter,
    failed: Counter,
    /// Warn once per run of failed exports, not per batch.
    failing: bool,
}

impl<E: SpanExporter> Batcher<E> {
    pub fn new(
        exporter: E,
        rx: mpsc::Receiver<Msg>,
        cfg: &TracingConfig,
        m: &ObserveMetrics,
    ) -> Self {
        Batcher {
            exporter,
            rx,
            scope: InstrumentationScope::builder("causeway-gateway").build(),
            max_batch: cfg.max_batch as usize,
            delay: cfg.batch_delay,
            timeout: cfg.export_timeout,
            exported: m.spans_exported.clone(),
            failed: m.spans_dropped("export_failed"),
            failing: false,
        }
    }

    /// Runs until every `Spans` handle is gone.
    pub async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let (batch, ack) = self.gather(first).await;
            self.export(batch).await;
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        }
        let _ = self.exporter.shutdown();
    }

    /// Up to `max_batch` spans, waiting at most `delay` for them; a flush ends it early.
    async fn gather(&mut self, first: Msg) -> (Vec<SpanData>, Option<oneshot::Sender<()>>) {
        let deadline = Instant::now() + self.delay;
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Span(r) => batch.push(span_data(&r, &self.scope, &mut rand::rng())),
                Msg::Flush(ack) => return (batch, Some(ack)),
            }
            if batch.len() >= self.max_batch {
                break;
            }
            next = timeout_at(deadline, self.rx.recv()).await.ok().flatten();
        }
        (batch, None)
    }

    async fn export(&mut self, batch: Vec<SpanData>) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        let error = match timeout(self.timeout, self.exporter.export(batch)).await {
            Ok(Ok(())) => {
                self.exported.inc_by(n);
                self.failing = false;
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within gateway.tracing.export_timeout".to_owned(),
        };
        self.failed.inc_by(n);
        if !self.failing {
            tracing::warn!(%error, spans = n, "exporting connection spans failed; dropping them until the collector answers (check gateway.tracing.otlp_endpoint)");
            self.failing = true;
        }
    }
}

fn nonzero(rng: &mut impl Rng) -> u64 {
    rng.random::<u64>() | 1
}

/// The span of one connection. Outbound, its ids are the traceparent's (the
/// header carried our span id as its parent-id); inbound, a child of that.
pub fn span_data(r: &ConnRecord, scope: &InstrumentationScope, rng: &mut impl Rng) -> SpanData {
    let tp = r.trace();
    let trace_id = tp.map_or_else(|| rng.random::<u128>() | 1, |t| t.trace_id);
    let (span_id, parent, kind) = match (r.direction, tp) {
        (Direction::Outbound, Some(t)) => (t.parent_id, SpanId::INVALID, SpanKind::Client),
        (Direction::Outbound, None) => (nonzero(rng), SpanId::INVALID, SpanKind::Client),
        (Direction::Inbound, t) => {
            let parent = t.map_or(SpanId::INVALID, |t| SpanId::from(t.parent_id));
            (nonzero(rng), parent, SpanKind::Server)
        }
    };
    let context = SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    SpanData {
        span_context: context,
        parent_span_id: parent,
        parent_span_is_remote: parent != SpanId::INVALID,
        span_kind: kind,
        name: Cow::Borrowed(r.direction_str()),
        start_time: r.start,
        end_time: r.end,
        attributes: attributes(r),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: if r.is_ok() {
            Status::Ok
        } else {
            Status::error(r.result)
        },
        instrumentation_scope: scope.clone(),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn attributes(r: &ConnRecord) -> Vec<KeyValue> {
    let peer = match r.direction {
        Direction::Outbound => r.cluster.as_ref(),
        Direction::Inbound => Some(&r.source_cluster),
    };
    let service = r
        .service
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut a = vec![
        KeyValue::new("causeway.service", service),
        KeyValue::new("causeway.port", i64::from(r.port)),
        KeyValue::new("causeway.request_bytes", count(r.request_bytes)),
        KeyValue::new("causeway.response_bytes", count(r.response_bytes)),
        KeyValue::new("causeway.result", r.result),
        KeyValue::new("causeway.source_id", r.source_id.to_string()),
    ];
    let optional = [
        ("causeway.peer_cluster", peer.map(ToString::to_string)),
        ("causeway.status", r.status.map(str::to_owned)),
        ("causeway.endpoint", r.endpoint.map(|e| e.to_string())),
        ("client.address", r.client.map(|c| c.to_string())),
        (
            "causeway.policy",
            (!r.policy.is_empty()).then(|| r.policy.join(",")),
        ),
    ];
    a.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| Some(KeyValue::new(k, v?))),
    );
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::splice::{End, Outcome};
    use causeway_catalog::ClusterId;

    #[test]
    fn the_inbound_span_is_the_outbound_spans_child() {
        let scope = InstrumentationScope::builder("t").build();
        let out = sample(Direction::Outbound);
        let mut inb = sample(Direction::Inbound);
        let b = ClusterId::new("b").unwrap();
        inb.served(
            &b,
            &Outcome {
                sent: 3,
                received: 5,
                end: End::Done,
            },
        );
        let o = span_data(&out, &scope, &mut rand::rng());
        let i = span_data(&inb, &scope, &mut rand::rng());
        assert_eq!(o.span_context.trace_id(), i.span_context.trace_id());
        assert_eq!(
            format!("{:032x}", o.span_context.trace_id()),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(o.span_context.span_id(), SpanId::from(0xb7ad6b7169203331));
        assert_eq!(o.parent_span_id, SpanId::INVALID);
        assert_eq!(i.parent_span_id, o.span_context.span_id());
        assert_ne!(i.span_context.span_id(), o.span_context.span_id());
        assert_eq!(
            (o.span_kind.clone(), i.span_kind.clone()),
            (SpanKind::Client, SpanKind::Server)
        );
        assert!(
            matches!(o.status, Status::Error { .. }),
            "no cluster took it"
        );
        assert_eq!(i.status, Status::Ok);
        let attr = |s: &SpanData, k: &str| {
            s.attributes
                .iter()
                .find(|a| a.key.as_str() == k)
                .map(|a| a.value.to_string())
        };
        assert_eq!(attr(&i, "causeway.request_bytes").as_deref(), Some("5"));
        assert_eq!(attr(&i, "causeway.peer_cluster").as_deref(), Some("a"));
        assert_eq!(
            attr(&o, "client.address").as_deref(),
            Some("127.0.0.1:5000")
        );
    }
}
