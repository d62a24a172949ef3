//! Every policy in force, validated and indexed by service and port.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{ClusterId, ServiceKey};

use crate::error::{PolicyError, Problem};
use crate::spec::{LimitSet, PolicySpec};

/// One validated policy and the service it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePolicy {
    pub key: ServiceKey,
    pub spec: PolicySpec,
}

/// The policies in force; `find` prefers a port's own policy to the service's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policies {
    map: BTreeMap<(ServiceKey, Option<u16>), Arc<ServicePolicy>>,
}

/// Longest delay, timeout or fault a policy may name.
const MAX_WAIT: Duration = Duration::from_secs(300);

impl Policies {
    /// From causeway.yaml's `policies:`, where `service` is `namespace/name`.
    pub fn from_config(specs: &[PolicySpec]) -> Result<Policies, PolicyError> {
        let mut set = Policies::default();
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("policies[{i}]");
            let key = spec
                .service
                .parse::<ServiceKey>()
                .map_err(|e| PolicyError {
                    at: at.clone(),
                    problem: Problem::Service {
                        value: spec.service.clone(),
                        expected: "namespace/name",
                        why: e.to_string(),
                    },
                })?;
            set.insert(&at, key, spec.clone())?;
        }
        Ok(set)
    }

    /// Adds one policy after validating it; `at` names it in errors.
    pub fn insert(
        &mut self,
        at: &str,
        key: ServiceKey,
        spec: PolicySpec,
    ) -> Result<(), PolicyError> {
        let fail = |problem| PolicyError {
            at: at.to_owned(),
            problem,
        };
        validate(&spec).map_err(fail)?;
        let slot = (key.clone(), spec.port);
        if self.map.contains_key(&slot) {
            let port = spec.port.map(|p| format!(" port {p}")).unwrap_or_default();
            return Err(fail(Problem::Duplicate {
                service: key.to_string(),
                port,
            }));
        }
        self.map.insert(slot, Arc::new(ServicePolicy { key, spec }));
        Ok(())
    }

    /// The policy for a connection to `key` on `port`, if any.
    pub fn find(&self, key: &ServiceKey, port: u16) -> Option<&Arc<ServicePolicy>> {
        if self.map.is_empty() {
            return None; // the common case costs no key clone
        }
        self.map
            .get(&(key.clone(), Some(port)))
            .or_else(|| self.map.get(&(key.clone(), None)))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ServicePolicy>> {
        self.map.values()
    }
}

fn validate(spec: &PolicySpec) -> Result<(), Problem> {
    if spec.port == Some(0) {
        return Err(range("port", 0, "1 to 65535"));
    }
    if !spec.split.is_empty() && spec.split.values().all(|w| *w == 0) {
        return Err(Problem::SplitAllZero);
    }
    if let Some(f) = &spec.fault {
        percent("fault.delay_percent", f.delay_percent)?;
        percent("fault.abort_percent", f.abort_percent)?;
        wait("fault.delay", f.delay)?;
    }
    if let Some(m) = &spec.mirror {
        percent("mirror.percent", m.percent)?;
        if !(4096..=64 << 20).contains(&m.buffer_bytes) {
            return Err(range(
                "mirror.buffer_bytes",
                m.buffer_bytes,
                "4096 to 67108864",
            ));
        }
    }
    wait("connect_timeout", spec.connect_timeout)?;
    if spec.connect_timeout == Some(Duration::ZERO) {
        return Err(range("connect_timeout", "0s", "above 0 and at most 5m"));
    }
    if let Some(a) = spec.attempts.filter(|a| !(1..=10).contains(a)) {
        return Err(range("attempts", a, "1 to 10"));
    }
    unique("failover", &spec.failover)?;
    if let Some(l) = &spec.limits {
        limit_set("limits.each_source", &l.each_source)?;
        for (c, set) in &l.sources {
            limit_set(&format!("limits.sources.{c}"), set)?;
        }
    }
    Ok(())
}

fn limit_set(at: &str, l: &LimitSet) -> Result<(), Problem> {
    if let Some(r) = l
        .connections_per_second
        .filter(|r| !(r.is_finite() && *r > 0.0))
    {
        return Err(range(&format!("{at}.connections_per_second"), r, "above 0"));
    }
    if l.burst == Some(0) {
        return Err(range(&format!("{at}.burst"), 0, "at least 1"));
    }
    if l.max_connections == Some(0) {
        return Err(range(&format!("{at}.max_connections"), 0, "at least 1"));
    }
    if let Some(b) = l.bytes_per_second.filter(|b| *b < 1024) {
        return Err(range(&format!("{at}.bytes_per_second"), b, "at least 1024"));
    }
    Ok(())
}

fn percent(field: &'static str, value: f64) -> Result<(), Problem> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(Problem::Percent { field, value })
    }
}

fn wait(field: &str, d: Option<Duration>) -> Result<(), Problem> {
    match d.filter(|d| *d > MAX_WAIT) {
        Some(d) => Err(range(field, format!("{}s", d.as_secs()), "at most 5m")),
        None => Ok(()),
    }
}

fn unique(field: &'static str, list: &[ClusterId]) -> Result<(), Problem> {
    let mut seen = BTreeSet::new();
    match list.iter().find(|c| !seen.insert(*c)) {
        Some(c) => Err(Problem::Repeated {
            field,
            cluster: c.to_string(),
        }),
        None => Ok(()),
    }
}

fn range(field: &str, value: impl ToString, valid: &'static str) -> Problem {
    Problem::Range {
        field: field.to_owned(),
        value: value.to_string(),
        valid,
    }
}

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;
