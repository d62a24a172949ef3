//! The access log: one JSON line per tunnelled connection (`gateway.access_log`).
//!
//! Off the hot path: the data plane only pushes the finished record into a
//! bounded queue; a thread of its own formats and writes it. A full queue
//! drops the line (counted), so a slow disk never holds up traffic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::config_check::ConfigError;
use crate::observe::{ObserveError, ObserveMetrics, sampling_key};
use crate::record::ConnRecord;
use crate::rotate::{Rotating, Sink, Stdout};
use crate::sample::Ratio;

/// Messages the writer takes between flushes: a bound on a flush's delay.
const BATCH: usize = 1024;

/// `gateway.access_log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// `-` for standard output, or a file; unset: no access log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A file past this size is rotated; 0: never.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`file.1` the newest).
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Share of successful connections logged; errors and refusals always are.
    #[serde(default)]
    pub sample: Ratio,
    /// Lines waiting for the writer; past this they are dropped (and counted).
    #[serde(default = "default_queue")]
    pub queue: u32,
}

fn default_max_bytes() -> u64 {
    100 << 20
}
fn default_keep() -> u32 {
    5
}
fn default_queue() -> u32 {
    8192
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            path: None,
            max_bytes: default_max_bytes(),
            keep: default_keep(),
            sample: Ratio::default(),
            queue: default_queue(),
        }
    }
}

impl AccessLogConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(ConfigError::Value {
                key: "access_log.path",
                value: "\"\"".into(),
                valid: "use - for standard output, or a file path; leave it out to turn the access log off",
            });
        }
        self.sample.check("access_log.sample")?;
        let number = |key, value: u64, valid| Err(ConfigError::Number { key, value, valid });
        if self.max_bytes != 0 && self.max_bytes < 4096 {
            return number(
                "access_log.max_bytes",
                self.max_bytes,
                "use 0 (never rotate) or at least 4096",
            );
        }
        if self.keep > 1000 {
            return number("access_log.keep", self.keep.into(), "use 0 to 1000");
        }
        if self.queue == 0 || self.queue > 1_000_000 {
            return number("access_log.queue", self.queue.into(), "use 1 to 1000000");
        }
        Ok(())
    }
}

enum Msg {
    Line(Arc<ConnRecord>),
    Flush(oneshot::Sender<()>),
}

/// The data plane's handle: decides, then pushes without waiting.
pub struct AccessLog {
    tx: SyncSender<Msg>,
    sample: Ratio,
    full: Counter,
}

impl AccessLog {
    /// Opens the sink and starts the writer; None when no path is configured.
    pub fn start(cfg: &AccessLogConfig, m: &ObserveMetrics) -> Result<Option<Self>, ObserveError> {
        let Some(path) = &cfg.path else {
            return Ok(None);
        };
        let sink: Box<dyn Sink> = if path == Path::new("-") {
            Box::new(Stdout)
        } else {
            let open = Rotating::open(path.clone(), cfg.max_bytes, cfg.keep);
            Box::new(open.map_err(|e| ObserveError::Open(path.clone(), e))?)
        };
        Self::spawn(sink, cfg.queue as usize, cfg.sample, m).map(Some)
    }

    fn spawn(
        sink: Box<dyn Sink>,
        queue: usize,
        sample: Ratio,
        m: &ObserveMetrics,
    ) -> Result<Self, ObserveError> {
        let (tx, rx) = sync_channel(queue);
        let writer = Writer {
            sink,
            written: m.log_lines.clone(),
            failed: m.log_dropped("write_error"),
            failing: false,
        };
        std::thread::Builder::new()
            .name("causeway-access-log".into())
            .spawn(move || writer.run(rx))
            .map_err(ObserveError::Thread)?;
        Ok(AccessLog {
            tx,
            sample,
            full: m.log_dropped("queue_full"),
        })
    }

    /// Errors and refusals always; successes at the sampling ratio.
    pub fn wants(&self, r: &ConnRecord) -> bool {
        !r.is_ok() || self.sample.keeps(sampling_key(r))
    }

    /// Never waits: a full queue drops the line.
    pub fn push(&self, r: Arc<ConnRecord>) {
        if self.tx.try_send(Msg::Line(r)).is_err() {
            self.full.inc();
        }
    }

    /// Waits (up to `limit`) until what was pushed so far is written out.
    pub async fn flush(&self, limit: Duration) {
        let (ack, done) = oneshot::channel();
        if self.tx.try_send(Msg::Flush(ack)).is_ok() {
            let _ = tokio::time::timeout(limit, done).await;
        }
    }
}

/// The writer thread's state; it ends when every `AccessLog` handle is gone.
struct Writer {
    sink: Box<dyn Sink>,
    written: Counter,
    failed: Counter,
    /// Warn once per run of failed writes, not per line.
    failing: bool,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            self.take(msg);
            for msg in rx.try_iter().take(BATCH) {
                self.take(msg);
            }
            self.flush();
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Line(r) => self.write(&r),
            Msg::Flush(ack) => {
                self.flush();
                let _ = ack.send(());
            }
        }
    }

    fn write(&mut self, r: &ConnRecord) {
        match self.sink.write_line(&r.json_line()) {
            Ok(()) => {
                self.written.inc();
                self.failing = false;
            }
            Err(e) => {
                self.failed.inc();
                if !self.failing {
                    tracing::warn!(error = %e, "writing the access log failed; dropping lines until it works again (check gateway.access_log.path and the disk)");
                    self.failing = true;
                }
            }
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.sink.flush() {
            tracing::warn!(error = %e, "flushing the access log failed");
        }
    }
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
