//! Sampling ratios and the W3C traceparent both observers key on.
//!
//! Keyed on the trace id, a decision is the same on every gateway with the
//! same ratio: both sides of a connection keep it, or neither does.

use serde::{Deserialize, Serialize};

use crate::config_check::ConfigError;

/// A ratio 0..=1 from the config. Compared by bits so configs stay `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ratio(pub f64);

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Ratio {}

impl Default for Ratio {
    fn default() -> Self {
        Ratio(1.0)
    }
}

impl Ratio {
    pub fn check(self, key: &'static str) -> Result<(), ConfigError> {
        if (0.0..=1.0).contains(&self.0) {
            return Ok(());
        }
        Err(ConfigError::Value {
            key,
            value: self.0.to_string(),
            valid: "use a ratio from 0 (none) to 1 (all), e.g. 0.1",
        })
    }

    /// Whether to keep the item whose (uniformly random) key is `key`.
    pub fn keeps(self, key: u64) -> bool {
        if self.0 >= 1.0 {
            return true;
        }
        // The top 53 bits as a fraction in [0, 1): exact in an f64.
        ((key >> 11) as f64) / ((1u64 << 53) as f64) < self.0
    }
}

/// The ids in a W3C traceparent `00-<trace-id>-<parent-id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses version 00; None for anything else or all-zero ids (invalid per W3C).
    pub fn parse(s: &str) -> Option<TraceParent> {
        let mut parts = s.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
        if parts.next().is_some() || version != "00" || !hex(trace, 32) || !hex(parent, 16) {
            return None;
        }
        let tp = TraceParent {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            parent_id: u64::from_str_radix(parent, 16).ok()?,
            sampled: hex(flags, 2) && u8::from_str_radix(flags, 16).ok()? & 1 == 1,
        };
        (tp.trace_id != 0 && tp.parent_id != 0).then_some(tp)
    }

    /// The sampling key: the trace id's random low half.
    pub fn key(&self) -> u64 {
        self.trace_id as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_traceparents_only() {
        let tp = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let tp = tp.expect("valid");
        assert_eq!(tp.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(tp.parent_id, 0xb7ad6b7169203331);
        assert!(tp.sampled);
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ratios_keep_their_share_and_the_ends_are_exact() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let kept = |r: f64| keys.iter().filter(|k| Ratio(r).keeps(**k)).count();
        assert_eq!(kept(0.0), 0);
        assert_eq!(kept(1.0), keys.len());
        let quarter = kept(0.25);
        assert!((2_300..2_700).contains(&quarter), "{quarter}");
        assert!(Ratio(0.5).check("x").is_ok());
        let msg = Ratio(1.5)
            .check("access_log.sample")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("access_log.sample is 1.5"), "{msg}");
        assert!(Ratio(f64::NAN).check("x").is_err());
    }
}
