//! Validated names: cluster ids and service keys follow Kubernetes naming rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that breaks the DNS label rules used by Kubernetes and MCS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} is {len} characters long; at most 63 are allowed")]
    TooLong {
        what: &'static str,
        value: String,
        len: usize,
    },
    #[error(
        "{what} {value:?} is not a valid DNS label: use lowercase letters, digits and '-', starting with {start} and ending with a letter or digit"
    )]
    Invalid {
        what: &'static str,
        value: String,
        start: &'static str,
    },
    #[error("service key {value:?} must be written as namespace/name")]
    NoSlash { value: String },
}

/// Checks an RFC 1123 label (`letter_first` makes it RFC 1035, as Service names are).
pub(crate) fn check_label(
    what: &'static str,
    value: &str,
    letter_first: bool,
) -> Result<(), NameError> {
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err(NameError::Empty { what });
    };
    if bytes.len() > 63 {
        return Err(NameError::TooLong {
            what,
            value: value.to_owned(),
            len: bytes.len(),
        });
    }
    let body_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let first_ok = first.is_ascii_lowercase() || (!letter_first && first.is_ascii_digit());
    let last_ok = last.is_ascii_lowercase() || last.is_ascii_digit();
    if body_ok && first_ok && last_ok {
        return Ok(());
    }
    let start = if letter_first {
        "a letter"
    } else {
        "a letter or digit"
    };
    Err(NameError::Invalid {
        what,
        value: value.to_owned(),
        start,
    })
}

/// A cluster's name: a DNS label, unique within the clusterset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterId(String);

impl ClusterId {
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        check_label("cluster name", &name, false)?;
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClusterId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl From<ClusterId> for String {
    fn from(c: ClusterId) -> String {
        c.0
    }
}

impl FromStr for ClusterId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A service's identity across the clusterset: the same namespace/name in
/// every cluster is the same service (MCS namespace sameness).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceKey {
    namespace: String,
    name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Result<Self, NameError> {
        let (namespace, name) = (namespace.into(), name.into());
        check_label("namespace", &namespace, false)?;
        check_label("service name", &name, true)?;
        Ok(Self { namespace, name })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for ServiceKey {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let (ns, name) = s.split_once('/').ok_or_else(|| NameError::NoSlash {
            value: s.to_owned(),
        })?;
        Self::new(ns, name)
    }
}

impl TryFrom<String> for ServiceKey {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<ServiceKey> for String {
    fn from(k: ServiceKey) -> String {
        k.to_string()
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids() {
        for good in ["east", "a", "us-east-1", "1a", &"x".repeat(63)] {
            assert!(ClusterId::new(good).is_ok(), "{good}");
        }
        for bad in ["", "East", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(ClusterId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_keys() {
        let k: ServiceKey = "demo/echo".parse().unwrap();
        assert_eq!((k.namespace(), k.name()), ("demo", "echo"));
        assert_eq!(k.to_string(), "demo/echo");
        // Service names are RFC 1035 labels: a leading digit is refused.
        assert!("demo/1echo".parse::<ServiceKey>().is_err());
        assert!("1demo/echo".parse::<ServiceKey>().is_ok());
        let err = "echo".parse::<ServiceKey>().unwrap_err();
        assert!(err.to_string().contains("namespace/name"), "{err}");
        let err = "demo/Echo".parse::<ServiceKey>().unwrap_err();
        assert!(err.to_string().contains("\"Echo\""), "{err}");
    }

    #[test]
    fn serde_validates() {
        let bad: Result<ClusterId, _> = serde_json::from_str("\"Bad_Name\"");
        assert!(bad.is_err());
        let k: ServiceKey = serde_json::from_str("\"ns/svc\"").unwrap();
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"ns/svc\"");
    }
}
