//! `gateway.tracing`: where connection spans go, and how many.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config_check::ConfigError;
use crate::sample::Ratio;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// An OTLP gRPC collector, `http://host:4317`; unset: no spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Share of traces exported, keyed on the trace id.
    #[serde(default)]
    pub sample: Ratio,
    /// The resource's `service.name`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Spans waiting for export; past this they are dropped (and counted).
    #[serde(default = "default_queue")]
    pub queue: u32,
    /// Most spans in one export call.
    #[serde(default = "default_max_batch")]
    pub max_batch: u32,
    /// Longest a span waits for its batch to fill.
    #[serde(default = "d1s", with = "humantime_serde")]
    pub batch_delay: Duration,
    /// An export not answered within this is given up (its spans dropped).
    #[serde(default = "d5s", with = "humantime_serde")]
    pub export_timeout: Duration,
}

fn default_service_name() -> String {
    "causeway-gateway".into()
}
fn default_queue() -> u32 {
    4096
}
fn default_max_batch() -> u32 {
    512
}
fn d1s() -> Duration {
    Duration::from_secs(1)
}
fn d5s() -> Duration {
    Duration::from_secs(5)
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            sample: Ratio::default(),
            service_name: default_service_name(),
            queue: default_queue(),
            max_batch: default_max_batch(),
            batch_delay: d1s(),
            export_timeout: d5s(),
        }
    }
}

/// Whether `s` is `http://<host>:<port>[/]`; the reason if not.
fn endpoint_problem(s: &str) -> Option<&'static str> {
    let Some(rest) = s.strip_prefix("http://") else {
        return Some(
            "use http://<host>:<port> (OTLP gRPC, usually port 4317); for TLS run an OpenTelemetry Collector beside the gateway and point this at it",
        );
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let good = rest.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    (!good).then_some("use http://<host>:<port>, e.g. http://otel-collector:4317")
}

impl TracingConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(e) = &self.otlp_endpoint
            && let Some(valid) = endpoint_problem(e)
        {
            let value = e.clone();
            return Err(ConfigError::Value {
                key: "tracing.otlp_endpoint",
                value,
                valid,
            });
        }
        self.sample.check("tracing.sample")?;
        if self.service_name.trim().is_empty() {
            let (key, value) = ("tracing.service_name", String::new());
            let valid = "name the service spans are reported under, e.g. causeway-gateway";
            return Err(ConfigError::Value { key, value, valid });
        }
        self.check_bounds()
    }

    fn check_bounds(&self) -> Result<(), ConfigError> {
        let number = |key, value: u32, valid| {
            Err(ConfigError::Number {
                key,
                value: value.into(),
                valid,
            })
        };
        if !(1..=1_000_000).contains(&self.queue) {
            return number("tracing.queue", self.queue, "use 1 to 1000000");
        }
        if !(1..=self.queue).contains(&self.max_batch) {
            return number(
                "tracing.max_batch",
                self.max_batch,
                "use 1 to tracing.queue",
            );
        }
        for (key, value) in [
            ("tracing.batch_delay", self.batch_delay),
            ("tracing.export_timeout", self.export_timeout),
        ] {
            if value.is_zero() || value > Duration::from_secs(60) {
                let valid = "use a duration above zero and at most 60s";
                return Err(ConfigError::Duration { key, value, valid });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_plain_http_host_and_port() {
        for good in [
            "http://127.0.0.1:4317",
            "http://collector:4317/",
            "http://[::1]:4317",
        ] {
            assert_eq!(endpoint_problem(good), None, "{good}");
        }
        for bad in [
            "https://c:4317",
            "c:4317",
            "http://c",
            "http://:4317",
            "http://c:0",
            "http://c:4317/v1",
        ] {
            assert!(endpoint_problem(bad).is_some(), "{bad}");
        }
        let c = TracingConfig {
            otlp_endpoint: Some("grpc://c:4317".into()),
            ..TracingConfig::default()
        };
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("tracing.otlp_endpoint is grpc://c:4317") && msg.contains("http://"),
            "{msg}"
        );
    }

    #[test]
    fn bounds_and_ratio_are_checked() {
        TracingConfig::default().validate().unwrap();
        let mut c = TracingConfig {
            max_batch: 10_000,
            queue: 100,
            ..TracingConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("tracing.max_batch is 10000")
        );
        c.max_batch = 10;
        c.export_timeout = Duration::ZERO;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("tracing.export_timeout")
        );
        c.export_timeout = Duration::from_secs(1);
        c.sample = Ratio(2.0);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("tracing.sample is 2")
        );
    }
}
