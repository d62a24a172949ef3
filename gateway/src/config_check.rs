//! Validation of the `gateway` config section: ranges and combinations serde cannot check.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;

/// Stalled streams a connection receive window must hold before it blocks others.
const MIN_STREAMS_PER_WINDOW: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("gateway.advertise: {0} is unspecified or port 0; list addresses peers can dial")]
    BadAdvertise(SocketAddr),
    #[error(
        "gateway.advertise is empty and gateway.listen {0} is unspecified; list addresses peers can dial in gateway.advertise"
    )]
    NoAdvertise(SocketAddr),
    #[error("gateway.{key} is {value:?}; {valid}")]
    Duration {
        key: &'static str,
        value: Duration,
        valid: &'static str,
    },
    #[error("gateway.{key} is {value}; {valid}")]
    Number {
        key: &'static str,
        value: u64,
        valid: &'static str,
    },
    #[error(
        "gateway.locality.failover.{service}: cluster {cluster} is listed twice; list each cluster once, in order of preference"
    )]
    DuplicateFailover { service: String, cluster: String },
    #[error("gateway.{key} is {value}; {valid}")]
    Value {
        key: &'static str,
        value: String,
        valid: &'static str,
    },
}

pub(crate) fn positive(key: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::Duration {
            key,
            value,
            valid: "use a duration above zero, e.g. 1s",
        });
    }
    Ok(())
}

pub(crate) fn within(key: &'static str, value: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if value < lo || value > hi {
        let valid = match (lo, hi) {
            (1, 100) => "use 1 to 100",
            (1, 64) => "use 1 to 64",
            (1, 1024) => "use 1 to 1024",
            (1, 1_000_000) => "use 1 to 1000000",
            (1, 1_073_741_824) => "use 1 to 1073741824",
            (1200, 65527) => "use 1200 (QUIC's minimum) to 65527 (the largest UDP payload)",
            (1200, _) => "use 1200 (1200 bytes, one QUIC packet) to 1073741824 (1 GiB)",
            (1024, _) => "use 1024 (1 KiB) to 16777216 (16 MiB)",
            (1, 65535) => "use 1 to 65535",
            (1, _) => "use at least 1, with port_base + port_count at most 65536",
            _ => "use a value in the documented range",
        };
        return Err(ConfigError::Number { key, value, valid });
    }
    Ok(())
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_addresses()?;
        self.check_timeouts()?;
        self.check_limits()?;
        self.check_failover()?;
        self.fallback.check()?;
        self.access_log.validate()?;
        self.tracing.validate()?;
        self.udp.validate()?;
        self.check_kubernetes()
    }

    fn check_kubernetes(&self) -> Result<(), ConfigError> {
        let Some(k) = &self.kubernetes else {
            return Ok(());
        };
        within("kubernetes.port_base", k.port_base.into(), 1, 65535)?;
        let room = 65536 - u64::from(k.port_base);
        within("kubernetes.port_count", k.port_count.into(), 1, room)
    }

    fn check_addresses(&self) -> Result<(), ConfigError> {
        if let Some(a) = self
            .advertise
            .iter()
            .find(|a| a.ip().is_unspecified() || a.port() == 0)
        {
            return Err(ConfigError::BadAdvertise(*a));
        }
        if self.advertise.is_empty() && self.listen.ip().is_unspecified() {
            return Err(ConfigError::NoAdvertise(self.listen));
        }
        Ok(())
    }

    fn check_timeouts(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        positive("timeouts.connect", t.connect)?;
        positive("timeouts.handshake", t.handshake)?;
        positive("timeouts.header", t.header)?;
        positive("timeouts.idle", t.idle)?;
        positive("drain_deadline", self.drain_deadline)?;
        if t.status <= t.connect {
            return Err(ConfigError::Duration {
                key: "timeouts.status",
                value: t.status,
                valid: "use a duration longer than timeouts.connect: the far side connects before it answers",
            });
        }
        let p = &self.connections;
        positive("connections.backoff_initial", p.backoff_initial)?;
        if p.keep_alive.is_zero() || p.keep_alive >= p.liveness {
            return Err(ConfigError::Duration {
                key: "connections.keep_alive",
                value: p.keep_alive,
                valid: "use a duration above zero and below connections.liveness (about half of it)",
            });
        }
        if p.idle_timeout <= p.liveness || p.idle_timeout > Duration::from_secs(3600) {
            return Err(ConfigError::Duration {
                key: "connections.idle_timeout",
                value: p.idle_timeout,
                valid: "use a duration longer than connections.liveness and at most 1h (15s to 30s is typical)",
            });
        }
        if p.backoff_max < p.backoff_initial {
            return Err(ConfigError::Duration {
                key: "connections.backoff_max",
                value: p.backoff_max,
                valid: "use a duration no shorter than connections.backoff_initial",
            });
        }
        let e = &self.ejection;
        positive("ejection.base_time", e.base_time)?;
        if e.max_time < e.base_time {
            return Err(ConfigError::Duration {
                key: "ejection.max_time",
                value: e.max_time,
                valid: "use a duration no shorter than ejection.base_time",
            });
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        within("workers", self.workers.map_or(1, u64::from), 1, 1024)?;
        let per_peer = self.connections.per_peer.map_or(1, u64::from);
        within("connections.per_peer", per_peer, 1, 64)?;
        within(
            "limits.max_streams_per_connection",
            l.max_streams_per_connection.into(),
            1,
            1_000_000,
        )?;
        within(
            "limits.max_streams_per_peer",
            l.max_streams_per_peer.into(),
            1,
            1_000_000,
        )?;
        within(
            "limits.max_streams_per_service",
            l.max_streams_per_service.into(),
            1,
            1_000_000,
        )?;
        within("limits.max_attempts", l.max_attempts.into(), 1, 100)?;
        within(
            "limits.max_connections_per_peer",
            l.max_connections_per_peer.into(),
            1,
            1024,
        )?;
        within(
            "ejection.consecutive_failures",
            self.ejection.consecutive_failures.into(),
            1,
            100,
        )?;
        let t = &self.transport;
        let gib = 1 << 30;
        within(
            "transport.stream_receive_window",
            t.stream_receive_window.into(),
            1200,
            gib,
        )?;
        within(
            "transport.receive_window",
            t.receive_window.into(),
            1200,
            gib,
        )?;
        if t.receive_window / MIN_STREAMS_PER_WINDOW < t.stream_receive_window {
            return Err(ConfigError::Number {
                key: "transport.receive_window",
                value: t.receive_window.into(),
                valid: "use at least 8 x transport.stream_receive_window: each stalled tunnelled connection holds up to a stream window of it, and a full window stalls every new connection to that peer",
            });
        }
        within("transport.send_window", t.send_window.into(), 1200, gib)?;
        within(
            "transport.max_udp_payload",
            t.max_udp_payload.into(),
            1200,
            65527,
        )?;
        if t.ack_every > 0 {
            within("transport.ack_every", t.ack_every.into(), 1, 100)?;
        }
        within(
            "transport.udp_socket_buffer",
            t.udp_socket_buffer.into(),
            1,
            gib,
        )?;
        within(
            "transport.splice_buffer",
            t.splice_buffer.into(),
            1024,
            16 << 20,
        )
    }

    fn check_failover(&self) -> Result<(), ConfigError> {
        for (service, list) in &self.locality.failover {
            for (i, c) in list.iter().enumerate() {
                if list[..i].contains(c) {
                    return Err(ConfigError::DuplicateFailover {
                        service: service.to_string(),
                        cluster: c.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Data-plane worker threads.
    pub fn worker_count(&self) -> usize {
        self.workers
            .map_or_else(crate::workers::default_count, usize::from)
    }

    /// QUIC connections per peer gateway address.
    pub fn connections_per_peer(&self) -> usize {
        self.connections
            .per_peer
            .map_or_else(|| self.worker_count().min(4), usize::from)
    }

    /// The addresses peers should dial.
    pub fn advertised(&self) -> Vec<SocketAddr> {
        if self.advertise.is_empty() {
            vec![self.listen]
        } else {
            self.advertise.clone()
        }
    }
}

#[cfg(test)]
#[path = "config_check_tests.rs"]
mod tests;
