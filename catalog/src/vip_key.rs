//! `VipKey`: what holds a local address, written as text in persisted state
//! and in Kubernetes annotations.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::names::{ClusterId, NameError, ServiceKey, check_label};

/// What holds a local address: a ClusterSetIP service, or one endpoint of a
/// headless import in another cluster (where the gateway listens for it).
/// Written `ns/name` and `ns/name/cluster/hostname`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VipKey {
    Service(ServiceKey),
    Endpoint {
        service: ServiceKey,
        cluster: ClusterId,
        hostname: String,
    },
}

impl VipKey {
    pub fn service(&self) -> &ServiceKey {
        match self {
            VipKey::Service(s) | VipKey::Endpoint { service: s, .. } => s,
        }
    }
}

impl fmt::Display for VipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VipKey::Service(s) => write!(f, "{s}"),
            VipKey::Endpoint {
                service,
                cluster,
                hostname,
            } => write!(f, "{service}/{cluster}/{hostname}"),
        }
    }
}

impl FromStr for VipKey {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = s.splitn(4, '/').collect();
        match parts[..] {
            [_, _] => Ok(VipKey::Service(s.parse()?)),
            [ns, name, cluster, hostname] => {
                check_label("endpoint hostname", hostname, false)?;
                Ok(VipKey::Endpoint {
                    service: ServiceKey::new(ns, name)?,
                    cluster: ClusterId::new(cluster)?,
                    hostname: hostname.to_owned(),
                })
            }
            _ => Err(NameError::NoSlash {
                value: s.to_owned(),
            }),
        }
    }
}

impl TryFrom<String> for VipKey {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<VipKey> for String {
    fn from(k: VipKey) -> String {
        k.to_string()
    }
}

impl From<ServiceKey> for VipKey {
    fn from(k: ServiceKey) -> Self {
        VipKey::Service(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vip::VipState;

    fn key(s: &str) -> VipKey {
        s.parse().unwrap()
    }

    #[test]
    fn keys_round_trip_as_text() {
        for k in ["ns/web", "ns/db/west/db-0"] {
            assert_eq!(key(k).to_string(), k);
        }
        assert!(matches!(key("ns/db/west/db-0"), VipKey::Endpoint { .. }));
        assert!("ns/db/west/Bad_Host".parse::<VipKey>().is_err());
        assert!("ns/db/west".parse::<VipKey>().is_err());
        let old: VipState = serde_json::from_str(r#"{"ns/web":["10.96.0.130"]}"#).unwrap();
        assert_eq!(old.0.keys().next(), Some(&key("ns/web")));
    }
}
