//! `policies:` re-read while running. The config file is polled; a valid edit
//! replaces the policies for new connections (open ones keep theirs), and a
//! bad edit is logged and counted while the last good policies stay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use causeway_policy::Policies;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Default)]
struct Metrics {
    reloads: Family<ResultLabel, Counter>,
}

impl Metrics {
    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("policy");
        r.register(
            "reloads",
            "Re-reads of policies: from the config file (ok, error: the last good policies stay)",
            self.reloads.clone(),
        );
    }

    fn reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }
}

/// The file to follow and the config it started with.
pub struct Watched {
    pub path: PathBuf,
    pub running: Config,
}

/// Publishes the running config's policies, then every valid change to them.
pub fn spawn(
    w: Watched,
    poll: Duration,
    registry: &mut Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<watch::Receiver<Arc<Policies>>> {
    let metrics = Metrics::default();
    metrics.register(registry);
    let first = w.running.policies()?;
    let (tx, rx) = watch::channel(Arc::new(first));
    let mut last = std::fs::read(&w.path).unwrap_or_default();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let Ok(text) = std::fs::read(&w.path) else {
                continue;
            };
            if text != last {
                last = text;
                reread(&w, &tx, &metrics);
            }
        }
    });
    Ok(rx)
}

fn reread(w: &Watched, tx: &watch::Sender<Arc<Policies>>, metrics: &Metrics) {
    let loaded = Config::load(&w.path)
        .map_err(anyhow::Error::from)
        .and_then(|cfg| Ok((cfg.policies()?, cfg)));
    let (policies, cfg) = match loaded {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(path = %w.path.display(), error = %e, "config edit refused; the last good policies stay in force");
            metrics.reload("error");
            return;
        }
    };
    if !same_apart_from_policies(&cfg, &w.running) {
        tracing::warn!(
            "config changed outside policies:; only policies apply while running, restart for the rest"
        );
    }
    metrics.reload("ok");
    if **tx.borrow() != policies {
        tracing::info!(
            policies = policies.len(),
            "policies reloaded; new connections use them"
        );
        tx.send_replace(Arc::new(policies));
    }
}

fn same_apart_from_policies(a: &Config, b: &Config) -> bool {
    let strip = |c: &Config| Config {
        policies: Vec::new(),
        ..c.clone()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::config::tests::BASE;

    fn write(path: &Path, policies: &str) {
        std::fs::write(path, format!("{BASE}policies:\n{policies}\n")).unwrap();
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let t0 = std::time::Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(10), "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn count(reg: &Registry, sample: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, reg).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    #[tokio::test]
    async fn a_valid_edit_applies_and_a_bad_one_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("causeway.yaml");
        write(&path, "  - { service: shop/cart, attempts: 1 }");
        let running = Config::load(&path).unwrap();
        let mut reg = Registry::default();
        let stop = CancellationToken::new();
        let w = Watched {
            path: path.clone(),
            running,
        };
        let rx = spawn(w, Duration::from_millis(10), &mut reg, stop.clone()).unwrap();
        let cart = "shop/cart".parse().unwrap();
        let attempts = |rx: &watch::Receiver<Arc<Policies>>| {
            rx.borrow().find(&cart, 80).and_then(|p| p.spec.attempts)
        };
        assert_eq!(attempts(&rx), Some(1));

        write(&path, "  - { service: shop/cart, attempts: 2 }");
        until("the edit applies", || attempts(&rx) == Some(2)).await;
        assert_eq!(count(&reg, "policy_reloads_total{result=\"ok\"}"), 1.0);

        write(&path, "  - { service: shop/cart, attempts: 0 }");
        until("the bad edit is counted", || {
            count(&reg, "policy_reloads_total{result=\"error\"}") == 1.0
        })
        .await;
        assert_eq!(attempts(&rx), Some(2), "the last good policy stays");

        std::fs::write(&path, "cluster: [").unwrap();
        until("a broken file is counted", || {
            count(&reg, "policy_reloads_total{result=\"error\"}") == 2.0
        })
        .await;
        assert_eq!(attempts(&rx), Some(2));
        stop.cancel();
    }
}
