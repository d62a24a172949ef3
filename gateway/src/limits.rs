//! Exporter side: what each verified source cluster may use of a service here.
//! State lives per (policy, port, source cluster) and is replaced when that
//! source's limits change; connections already admitted keep what they hold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_catalog::{ClusterId, ServiceKey};
use causeway_policy::{LimitSet, ServicePolicy, Shaper, TokenBucket};

use crate::pool::lock;

/// Bytes a shaped direction may send at once after a quiet spell, as sending time.
const SHAPER_SLACK: Duration = Duration::from_millis(20);

type Key = (ServiceKey, Option<u16>, ClusterId);

#[derive(Default)]
pub struct LimitTable(Mutex<HashMap<Key, Arc<SourceState>>>);

/// One source cluster's share of one policy's limits.
pub struct SourceState {
    set: LimitSet,
    bucket: Option<Mutex<TokenBucket>>,
    active: AtomicUsize,
    pace: Option<Pace>,
}

/// Bytes-per-second shapers, one per direction.
pub struct Pace {
    up: Mutex<Shaper>,
    down: Mutex<Shaper>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `connections_per_second` (the bucket is empty).
    Rate,
    /// Over `max_connections`.
    Concurrency,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Rate => "rate",
            Refusal::Concurrency => "concurrency",
        }
    }
}

/// An admitted connection's hold on its source's limits.
pub struct Grant {
    state: Arc<SourceState>,
}

impl LimitTable {
    /// Admits one connection from `source` under `policy`'s limits, or says why not.
    pub fn admit(
        &self,
        policy: &ServicePolicy,
        source: &ClusterId,
    ) -> Result<Option<Grant>, Refusal> {
        let Some(limits) = &policy.spec.limits else {
            return Ok(None);
        };
        let set = limits.for_source(source);
        if set.is_empty() {
            return Ok(None);
        }
        let key = (policy.key.clone(), policy.spec.port, source.clone());
        let state = {
            let mut map = lock(&self.0);
            let entry = map.entry(key).or_insert_with(|| SourceState::new(set));
            if entry.set != set {
                *entry = SourceState::new(set);
            }
            entry.clone()
        };
        state.enter().map(|()| Some(Grant { state }))
    }
}

impl SourceState {
    fn new(set: LimitSet) -> Arc<SourceState> {
        let now = Instant::now();
        let bucket = set
            .connections_per_second
            .zip(set.burst_or_default())
            .map(|(rate, burst)| Mutex::new(TokenBucket::new(rate, burst, now)));
        let pace = set.bytes_per_second.map(|b| Pace {
            up: Mutex::new(Shaper::new(b, SHAPER_SLACK, now)),
            down: Mutex::new(Shaper::new(b, SHAPER_SLACK, now)),
        });
        Arc::new(SourceState {
            set,
            bucket,
            active: AtomicUsize::new(0),
            pace,
        })
    }

    /// Concurrency first (counted, then checked, so racing entries cannot
    /// overrun), then a token: a refused connection spends no token.
    fn enter(&self) -> Result<(), Refusal> {
        let max = self.set.max_connections.map_or(usize::MAX, |m| m as usize);
        if self.active.fetch_add(1, Ordering::AcqRel) >= max {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Concurrency);
        }
        let admitted = self
            .bucket
            .as_ref()
            .is_none_or(|b| lock(b).try_take(Instant::now()));
        if !admitted {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Rate);
        }
        Ok(())
    }
}

impl Grant {
    /// The shapers this connection's bytes go through, if its source has a bandwidth limit.
    pub fn pace(&self) -> Option<&Pace> {
        self.state.pace.as_ref()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.state.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which way bytes go through a shaped connection.
#[derive(Debug, Clone, Copy)]
pub enum Way {
    /// From the TCP side into the stream.
    Up,
    /// From the stream out to TCP.
    Down,
}

impl Pace {
    /// Waits for `bytes`' turn on the line; returns how long it waited.
    pub async fn wait(&self, way: Way, bytes: usize) -> Duration {
        let shaper = match way {
            Way::Up => &self.up,
            Way::Down => &self.down,
        };
        let wait = lock(shaper).reserve(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_policy::{Limits, PolicySpec};

    fn policy(set: LimitSet) -> ServicePolicy {
        ServicePolicy {
            key: "shop/cart".parse().unwrap(),
            spec: PolicySpec {
                service: "shop/cart".into(),
                limits: Some(Limits {
                    each_source: set,
                    ..Limits::default()
                }),
                ..PolicySpec::default()
            },
        }
    }

    fn id(s: &str) -> ClusterId {
        ClusterId::new(s).unwrap()
    }

    #[test]
    fn concurrency_is_per_source_and_released_on_drop() {
        let t = LimitTable::default();
        let p = policy(LimitSet {
            max_connections: Some(2),
            ..LimitSet::default()
        });
        let held: Vec<_> = (0..2).map(|_| t.admit(&p, &id("west")).unwrap()).collect();
        assert_eq!(t.admit(&p, &id("west")).err(), Some(Refusal::Concurrency));
        assert!(t.admit(&p, &id("north")).is_ok(), "north has its own count");
        drop(held);
        assert!(t.admit(&p, &id("west")).is_ok());
    }

    #[test]
    fn the_bucket_refuses_past_its_burst_and_a_changed_limit_starts_afresh() {
        let t = LimitTable::default();
        let p = policy(LimitSet {
            connections_per_second: Some(0.001),
            burst: Some(3),
            ..LimitSet::default()
        });
        let ok = (0..10).filter(|_| t.admit(&p, &id("west")).is_ok()).count();
        assert_eq!(ok, 3);
        let p2 = policy(LimitSet {
            connections_per_second: Some(0.001),
            burst: Some(5),
            ..LimitSet::default()
        });
        let ok = (0..10)
            .filter(|_| t.admit(&p2, &id("west")).is_ok())
            .count();
        assert_eq!(ok, 5);
    }

    #[test]
    fn no_limits_no_state() {
        let t = LimitTable::default();
        let p = policy(LimitSet::default());
        assert!(t.admit(&p, &id("west")).unwrap().is_none());
        assert!(lock(&t.0).is_empty());
    }
}
