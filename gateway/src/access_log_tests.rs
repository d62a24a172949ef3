use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::metrics::Direction;
use crate::record::tests::sample;

const LIMIT: Duration = Duration::from_secs(10);

/// A sink whose every write waits for a permit: a disk that stalls on demand.
struct Gated {
    entered: Sender<()>,
    permits: Receiver<()>,
    flushed: Sender<()>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Sink for Gated {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let _ = self.entered.send(());
        self.permits
            .recv_timeout(LIMIT)
            .map_err(|_| io::Error::other("no permit"))?;
        self.out.lock().unwrap().extend_from_slice(line);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        let _ = self.flushed.send(());
        Ok(())
    }
}

struct Harness {
    log: Arc<AccessLog>,
    metrics: ObserveMetrics,
    entered: Receiver<()>,
    permits: Sender<()>,
    flushed: Receiver<()>,
    out: Arc<Mutex<Vec<u8>>>,
}

fn gated(queue: usize) -> Harness {
    let (entered_tx, entered) = mpsc::channel();
    let (permits, permits_rx) = mpsc::channel();
    let (flushed_tx, flushed) = mpsc::channel();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Gated {
        entered: entered_tx,
        permits: permits_rx,
        flushed: flushed_tx,
        out: out.clone(),
    };
    let metrics = ObserveMetrics::default();
    let log = AccessLog::spawn(Box::new(sink), queue, Ratio(1.0), &metrics).unwrap();
    Harness {
        log: Arc::new(log),
        metrics,
        entered,
        permits,
        flushed,
        out,
    }
}

fn record(port: u16) -> Arc<ConnRecord> {
    let mut r = sample(Direction::Outbound);
    r.port = port;
    Arc::new(r)
}

#[test]
fn a_stalled_writer_drops_lines_and_never_blocks_the_pusher() {
    let h = gated(2);
    h.log.push(record(1));
    // The writer holds line 1 inside a write that cannot finish: the disk is stuck.
    h.entered.recv_timeout(LIMIT).unwrap();
    let (done_tx, done) = mpsc::channel();
    let log = h.log.clone();
    std::thread::spawn(move || {
        for port in 2..=6 {
            log.push(record(port));
        }
        let _ = done_tx.send(());
    });
    done.recv_timeout(LIMIT)
        .expect("pushing returned while the writer was stuck");
    // Two lines fit in the queue; the other three were dropped and counted.
    assert_eq!(h.metrics.log_dropped("queue_full").get(), 3);
    assert_eq!(h.metrics.log_lines.get(), 0);
    for _ in 0..3 {
        h.permits.send(()).unwrap();
    }
    h.flushed.recv_timeout(LIMIT).unwrap();
    let out = String::from_utf8(h.out.lock().unwrap().clone()).unwrap();
    let ports: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["port"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ports, [1, 2, 3], "the queued lines, in order:\n{out}");
    assert_eq!(h.metrics.log_lines.get(), 3);
}

#[test]
fn errors_are_always_logged_and_successes_at_the_ratio() {
    let metrics = ObserveMetrics::default();
    let (tx, _rx) = sync_channel(1);
    let log = |ratio| AccessLog {
        tx: tx.clone(),
        sample: Ratio(ratio),
        full: metrics.log_dropped("queue_full"),
    };
    let mut refused = sample(Direction::Outbound);
    refused.refused(None, "forbidden");
    let mut ok = sample(Direction::Outbound);
    ok.result = "ok";
    assert!(log(0.0).wants(&refused));
    assert!(!log(0.0).wants(&ok));
    assert!(log(1.0).wants(&ok));
    // Keyed on the trace id: a share of traces, the same choice on both gateways.
    let kept = (0..2000u128)
        .filter(|i| {
            let t = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1;
            ok.traceparent = Some(format!("00-{t:032x}-00f067aa0ba902b7-01"));
            let first = log(0.3).wants(&ok);
            assert_eq!(first, log(0.3).wants(&ok), "same trace, same decision");
            first
        })
        .count();
    assert!((500..700).contains(&kept), "{kept} of 2000 kept at 0.3");
}

#[test]
fn config_errors_name_the_key_and_value() {
    let mut c = AccessLogConfig::default();
    c.validate().unwrap();
    c.max_bytes = 100;
    let msg = c.validate().unwrap_err().to_string();
    assert!(
        msg.contains("access_log.max_bytes is 100") && msg.contains("4096"),
        "{msg}"
    );
    c.max_bytes = 0;
    c.sample = Ratio(-0.1);
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("access_log.sample is -0.1"), "{msg}");
    c.sample = Ratio(1.0);
    c.path = Some(PathBuf::new());
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("access_log.path")
    );
}

#[test]
fn the_section_parses_as_the_chart_renders_it() {
    // The chart writes the values as JSON flow maps; a whole-number ratio must do.
    let c: AccessLogConfig = serde_saphyr::from_str(r#"{"path":"-","sample":1,"keep":2}"#).unwrap();
    c.validate().unwrap();
    assert_eq!((c.sample, c.keep), (Ratio(1.0), 2));
    assert!(serde_saphyr::from_str::<AccessLogConfig>("{pth: x}").is_err());
}
