//! Leader election on a `coordination.k8s.io/v1` Lease. The decision is pure
//! ([`decide`]); [`LeaderLease::try_lead`] reads the Lease and writes it with
//! resourceVersion-checked create/replace, so two replicas racing for it
//! cannot both win: the loser gets a 409 Conflict and stays a follower.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

use super::desired::labels;
use super::{KubeError, api_err};

/// What to do with the Lease as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    Acquire,
    /// Another replica holds a live Lease.
    Follow,
}

pub fn decide(me: &str, lease: Option<&LeaseSpec>, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) => {
            let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            match renewed {
                Some(t) if t + SignedDuration::from_secs(secs) > now => Decision::Follow,
                _ => Decision::Acquire,
            }
        }
    }
}

/// The spec to write for `decision`, given the current spec.
pub fn next_spec(
    me: &str,
    cur: Option<&LeaseSpec>,
    decision: Decision,
    now: Timestamp,
    duration: Duration,
) -> LeaseSpec {
    let mut spec = cur.cloned().unwrap_or_default();
    if decision != Decision::Renew {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions =
            Some(spec.lease_transitions.unwrap_or(0) + i32::from(cur.is_some()));
    }
    spec.holder_identity = Some(me.to_owned());
    spec.lease_duration_seconds =
        Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1));
    spec.renew_time = Some(MicroTime(now));
    spec
}

pub struct LeaderLease {
    pub api: Api<Lease>,
    pub name: String,
    pub me: String,
    pub duration: Duration,
}

/// How long a leader stopping may spend handing the Lease back.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

impl LeaderLease {
    /// Hands the Lease back (holder cleared) if we still hold it, so another
    /// replica takes over at its next round instead of after `lease_duration`.
    pub async fn release(&self) {
        let attempt = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else {
                return Ok(());
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.me.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.renew_time = None;
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        };
        match tokio::time::timeout(RELEASE_TIMEOUT, attempt).await {
            Ok(Ok(())) => tracing::info!(identity = %self.me, "released the Lease"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release the Lease; it expires by itself")
            }
            Err(_) => tracing::warn!("releasing the Lease timed out; it expires by itself"),
        }
    }

    /// One election round: true while this replica holds the Lease.
    pub async fn try_lead(&self) -> Result<bool, KubeError> {
        let what = || format!("Lease {}", self.name);
        let cur = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(api_err(what()))?;
        let now = Timestamp::now();
        let decision = decide(&self.me, cur.as_ref().and_then(|l| l.spec.as_ref()), now);
        if decision == Decision::Follow {
            return Ok(false);
        }
        let spec = next_spec(
            &self.me,
            cur.as_ref().and_then(|l| l.spec.as_ref()),
            decision,
            now,
            self.duration,
        );
        let result = match cur {
            None => {
                let meta = ObjectMeta {
                    name: Some(self.name.clone()),
                    labels: Some(labels(&[])),
                    ..ObjectMeta::default()
                };
                self.api
                    .create(
                        &PostParams::default(),
                        &Lease {
                            metadata: meta,
                            spec: Some(spec),
                        },
                    )
                    .await
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(api_err(what())(e)),
        }
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod request_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn held(by: &str, renewed: Timestamp, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn acquire_renew_follow_and_expire() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = |s| t0 + SignedDuration::from_secs(s);
        assert_eq!(decide("a", None, t0), Decision::Create);
        assert_eq!(
            decide("a", Some(&held("a", t0, 15)), later(100)),
            Decision::Renew
        );
        assert_eq!(
            decide("b", Some(&held("a", t0, 15)), later(14)),
            Decision::Follow
        );
        assert_eq!(
            decide("b", Some(&held("a", t0, 15)), later(15)),
            Decision::Acquire
        );
        assert_eq!(
            decide("b", Some(&LeaseSpec::default()), t0),
            Decision::Acquire
        );
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_does_not() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let first = next_spec("a", None, Decision::Create, t0, Duration::from_secs(15));
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.lease_duration_seconds, Some(15));
        let renewed = next_spec(
            "a",
            Some(&first),
            Decision::Renew,
            t0 + SignedDuration::from_secs(5),
            Duration::from_secs(15),
        );
        assert_eq!(
            (renewed.lease_transitions, renewed.acquire_time.clone()),
            (Some(0), first.acquire_time.clone())
        );
        let taken = next_spec(
            "b",
            Some(&renewed),
            Decision::Acquire,
            t0 + SignedDuration::from_secs(30),
            Duration::from_secs(15),
        );
        assert_eq!(
            (taken.holder_identity.as_deref(), taken.lease_transitions),
            (Some("b"), Some(1))
        );
    }
}
