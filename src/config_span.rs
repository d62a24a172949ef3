//! Config checks that span sections: bounded durations and listeners that
//! would collide.

use std::net::SocketAddr;

use super::{Config, ConfigError, MAX_DURATION};

impl Config {
    /// Every duration the data plane adds to an `Instant` is bounded, so a
    /// typo such as `idle: 99999999999h` is refused instead of overflowing.
    pub(super) fn validate_durations(&self) -> Result<(), ConfigError> {
        let (t, c, e) = (
            &self.gateway.timeouts,
            &self.gateway.connections,
            &self.gateway.ejection,
        );
        let all = [
            ("gateway.timeouts.connect", t.connect),
            ("gateway.timeouts.handshake", t.handshake),
            ("gateway.timeouts.header", t.header),
            ("gateway.timeouts.status", t.status),
            ("gateway.timeouts.idle", t.idle),
            ("gateway.connections.keep_alive", c.keep_alive),
            ("gateway.connections.liveness", c.liveness),
            ("gateway.connections.idle_timeout", c.idle_timeout),
            ("gateway.connections.backoff_initial", c.backoff_initial),
            ("gateway.connections.backoff_max", c.backoff_max),
            ("gateway.ejection.base_time", e.base_time),
            ("gateway.ejection.max_time", e.max_time),
            ("gateway.drain_deadline", self.gateway.drain_deadline),
        ];
        causeway_catalog::check_range(all, ..=MAX_DURATION).map_err(|e| ConfigError::TooLong {
            key: e.key,
            value: e.value,
            max: MAX_DURATION,
        })
    }

    pub(super) fn validate_listeners(&self) -> Result<(), ConfigError> {
        let mut tcp = vec![
            ("admin.listen", self.admin.listen),
            ("federation.listen", self.federation.listen),
            ("dns.listen", self.dns.listen),
        ];
        if let Some(w) = self.federation.watch_listen {
            tcp.push(("federation.watch_listen", w));
        }
        if let Some(m) = self.admin.metrics_listen {
            tcp.push(("admin.metrics_listen", m));
        }
        let fallback = &self.gateway.fallback;
        if fallback.enabled {
            let at = fallback.listen.unwrap_or(self.gateway.listen);
            tcp.push(("gateway.fallback.listen", at));
        }
        if let Some(link) = &self.link {
            tcp.push(("link.listen", link.listen));
        }
        let udp = [
            ("dns.listen", self.dns.listen),
            ("gateway.listen", self.gateway.listen),
        ];
        find_conflict(&tcp, "tcp")?;
        find_conflict(&udp, "udp")
    }
}

fn find_conflict(
    socks: &[(&'static str, SocketAddr)],
    proto: &'static str,
) -> Result<(), ConfigError> {
    for (i, (a, x)) in socks.iter().enumerate() {
        for (b, y) in &socks[..i] {
            let same_ip = x.ip() == y.ip() || x.ip().is_unspecified() || y.ip().is_unspecified();
            if x.port() != 0 && x.port() == y.port() && x.is_ipv4() == y.is_ipv4() && same_ip {
                return Err(ConfigError::ListenConflict {
                    a: b,
                    b: a,
                    addr: *x,
                    proto,
                });
            }
        }
    }
    Ok(())
}
