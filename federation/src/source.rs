//! The static source: exports listed in the config and/or a YAML file that is
//! polled for changes. A bad edit is logged and ignored; the last good
//! exports stay in force, so a typo never withdraws a service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::Export;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, SourceConfig, check_exports};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("export file {path}: cannot read it ({source}); check the path and its permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("export file {path}: not valid YAML for `exports: [...]`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("export file {path}: {source}")]
    Invalid {
        path: PathBuf,
        source: Box<ConfigError>,
    },
    #[error("{0}")]
    Config(Box<ConfigError>),
    #[error("source: not a static source")]
    NotStatic,
}

/// The file's shape: `exports:` followed by a list of exports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportFile {
    #[serde(default)]
    exports: Vec<Export>,
}

#[derive(Debug, Clone)]
pub struct StaticSource {
    inline: Vec<Export>,
    file: Option<PathBuf>,
    poll: Duration,
}

impl StaticSource {
    pub fn new(cfg: &SourceConfig) -> Result<Self, SourceError> {
        cfg.validate()
            .map_err(|e| SourceError::Config(Box::new(e)))?;
        let SourceConfig::Static {
            exports,
            file,
            poll_interval,
        } = cfg
        else {
            return Err(SourceError::NotStatic);
        };
        Ok(Self {
            inline: exports.clone(),
            file: file.clone(),
            poll: *poll_interval,
        })
    }

    /// The exports now: inline ones plus the file's, checked together.
    pub fn load(&self) -> Result<Vec<Export>, SourceError> {
        self.load_with_text().map(|(exports, _)| exports)
    }

    /// The exports and the file text they came from, which [`watch`](Self::watch) starts from.
    pub fn load_with_text(&self) -> Result<(Vec<Export>, Option<String>), SourceError> {
        let text = match &self.file {
            Some(path) => Some(read(path)?),
            None => None,
        };
        Ok((self.combine(text.as_deref())?, text))
    }

    fn combine(&self, file_text: Option<&str>) -> Result<Vec<Export>, SourceError> {
        let mut all = self.inline.clone();
        if let (Some(path), Some(text)) = (&self.file, file_text) {
            let parsed: ExportFile =
                serde_saphyr::from_str_with_options(text, export_file_options()).map_err(|e| {
                    SourceError::Parse {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
            all.extend(parsed.exports);
            check_exports(&all).map_err(|source| SourceError::Invalid {
                path: path.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(all)
    }

    /// Polls the file until `shutdown`, publishing every good change on `tx`.
    pub async fn watch(
        self,
        mut last_text: Option<String>,
        tx: watch::Sender<Arc<Vec<Export>>>,
        rejected: Counter,
        shutdown: CancellationToken,
    ) {
        let Some(path) = self.file.clone() else {
            // Inline exports never change; holding `tx` keeps them published.
            shutdown.cancelled().await;
            return;
        };
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let text = match read(&path) {
                Ok(t) => t,
                Err(e) => {
                    if last_text.take().is_some() {
                        tracing::error!("{e}; keeping the last good exports");
                    }
                    continue;
                }
            };
            if last_text.as_deref() == Some(text.as_str()) {
                continue;
            }
            match self.combine(Some(&text)) {
                Ok(exports) => {
                    tracing::info!(file = %path.display(), count = exports.len(), "exports reloaded");
                    tx.send_if_modified(|cur| replace_if_changed(cur, exports));
                }
                Err(e) => {
                    rejected.inc();
                    tracing::error!("{e}; keeping the last good exports");
                }
            }
            last_text = Some(text);
        }
    }
}

fn replace_if_changed(cur: &mut Arc<Vec<Export>>, next: Vec<Export>) -> bool {
    if **cur == next {
        return false;
    }
    *cur = Arc::new(next);
    true
}

fn read(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The parser's default budget (250,000 YAML nodes) caps an export file at about
/// 16,000 exports; the file is the operator's own, so allow about a million.
fn export_file_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 16_000_000;
    budget.max_events = 32_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "exports:\n  - service: demo/web\n    ports: [{name: http, port: 80}]\n    endpoints: [{addr: 127.0.0.1:8080}]\n    export_to: [b]\n";

    fn source(file: &Path) -> StaticSource {
        StaticSource::new(&SourceConfig::Static {
            exports: vec![],
            file: Some(file.to_owned()),
            poll_interval: Duration::from_millis(10),
        })
        .unwrap()
    }

    #[test]
    fn loads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let got = source(&path).load().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key.to_string(), "demo/web");
        assert!(got[0].endpoints[0].ready);
    }

    #[test]
    fn a_file_of_twenty_thousand_exports_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports.yaml");
        let mut text = String::from("exports:\n");
        for i in 0..20_000 {
            text.push_str(&format!(
                "  - {{ service: scale/s{i}, ports: [{{ name: tcp, port: 80 }}], endpoints: [{{ addr: \"127.0.0.1:8080\" }}] }}\n"
            ));
        }
        std::fs::write(&path, text).unwrap();
        assert_eq!(source(&path).load().unwrap().len(), 20_000);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports.yaml");
        let s = source(&path);
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::write(&path, GOOD.replace("port: 80", "port: 0")).unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("port 0"), "{e}");
        std::fs::write(&path, GOOD.replace("service:", "servce:")).unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("not valid YAML") && e.contains("servce"), "{e}");
        std::fs::write(&path, format!("{GOOD}{}", &GOOD[9..])).unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn the_documented_example_loads() {
        let doc = include_str!("../../docs/federation-protocol.md");
        let yaml = doc
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/federation-protocol.md has a yaml example");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports.yaml");
        std::fs::write(&path, yaml).unwrap();
        let got = source(&path).load().unwrap();
        assert_eq!(got[0].key.to_string(), "demo/echo");
    }

    #[tokio::test]
    async fn a_bad_edit_keeps_the_last_good_exports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let s = source(&path);
        let (first, text) = s.load_with_text().unwrap();
        let (tx, mut rx) = watch::channel(Arc::new(first.clone()));
        let stop = CancellationToken::new();
        let rejected = Counter::default();
        let task = tokio::spawn(s.clone().watch(text, tx, rejected.clone(), stop.clone()));
        std::fs::write(&path, "exports: [oops").unwrap();
        let edited = GOOD.replace("demo/web", "demo/api");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while rejected.get() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "bad edit never seen"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(**rx.borrow(), first);
        assert!(!rx.has_changed().unwrap());
        std::fs::write(&path, &edited).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rx.borrow()[0].key.to_string(), "demo/api");
        stop.cancel();
        task.await.unwrap();
    }
}
