//! Identity names: trust domains, workloads and SPIFFE IDs.
//!
//! A SPIFFE ID (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>)
//! is `spiffe://<trust-domain>/<path>`. causeway gives each cluster its own
//! trust domain and names three workloads in it: `/gateway`, `/federation`
//! and `/dns` (the DNS server, which follows the federation's catalog feed).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const SCHEME: &str = "spiffe://";

/// A malformed trust domain, workload or SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error(
        "trust domain {value:?} is not valid: {reason} (use a lowercase DNS name such as east.demo.causeway)"
    )]
    TrustDomain { value: String, reason: &'static str },
    #[error("unknown workload {value:?}; expected \"gateway\", \"federation\" or \"dns\"")]
    Workload { value: String },
    #[error("SPIFFE ID {value:?} is not valid: {reason}")]
    SpiffeId { value: String, reason: &'static str },
}

/// A cluster's trust domain, e.g. `east.demo.causeway`: a lowercase DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustDomain(String);

impl TrustDomain {
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        match dns_name_problem(&value) {
            None => Ok(Self(value)),
            Some(reason) => Err(IdError::TrustDomain { value, reason }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself (`spiffe://<td>`), as a CA carries it.
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}", self.0)
    }
}

/// Why `name` is not a lowercase DNS name, if it is not one.
fn dns_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters");
    }
    name.split('.').find_map(label_problem)
}

fn label_problem(label: &str) -> Option<&'static str> {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Some("it has an empty label (two dots in a row, or a leading or trailing dot)");
    };
    if bytes.len() > 63 {
        return Some("a label is longer than 63 characters");
    }
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    if !bytes.iter().all(allowed) {
        return Some("only lowercase letters, digits, '-' and '.' are allowed");
    }
    if *first == b'-' || *last == b'-' {
        return Some("a label starts or ends with '-'");
    }
    None
}

impl TryFrom<String> for TrustDomain {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl From<TrustDomain> for String {
    fn from(td: TrustDomain) -> String {
        td.0
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The causeway components that hold certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Gateway,
    Federation,
    Dns,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Gateway, Workload::Federation, Workload::Dns];

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Gateway => "gateway",
            Workload::Federation => "federation",
            Workload::Dns => "dns",
        }
    }
}

impl FromStr for Workload {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| IdError::Workload {
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SPIFFE ID naming a workload: `spiffe://<trust-domain>/<path>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    /// Always starts with '/', never ends with one.
    path: String,
}

impl SpiffeId {
    /// The ID causeway gives `workload` in `trust_domain`.
    pub fn new(trust_domain: TrustDomain, workload: Workload) -> Self {
        let path = format!("/{workload}");
        Self { trust_domain, path }
    }

    /// Parses a workload SPIFFE ID; the path must not be empty.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let bad = |reason| IdError::SpiffeId {
            value: value.to_owned(),
            reason,
        };
        let rest = value
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it must start with spiffe://"))?;
        let (td, path) = rest
            .find('/')
            .map_or((rest, ""), |slash| rest.split_at(slash));
        if let Some(reason) = dns_name_problem(td) {
            return Err(bad(reason));
        }
        if let Some(reason) = path_problem(path) {
            return Err(bad(reason));
        }
        let trust_domain = TrustDomain(td.to_owned());
        let path = path.to_owned();
        Ok(Self { trust_domain, path })
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, starting with '/', e.g. `/gateway`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The causeway workload this ID names, if it names one.
    pub fn workload(&self) -> Option<Workload> {
        self.path.strip_prefix('/')?.parse().ok()
    }
}

/// Why `path` is not a valid SPIFFE workload path, if it is not one.
fn path_problem(path: &str) -> Option<&'static str> {
    let Some(segments) = path.strip_prefix('/') else {
        return Some("it has no workload path (expected spiffe://<trust-domain>/<workload>)");
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    for segment in segments.split('/') {
        if segment.is_empty() {
            return Some("its path has an empty segment or a trailing '/'");
        }
        if segment == "." || segment == ".." {
            return Some("its path has a '.' or '..' segment");
        }
        if !segment.chars().all(allowed) {
            return Some("its path may only hold letters, digits, '.', '-', '_' and '/'");
        }
    }
    None
}

impl TryFrom<String> for SpiffeId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<SpiffeId> for String {
    fn from(id: SpiffeId) -> String {
        id.to_string()
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}{}", self.trust_domain, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_domains() {
        for good in ["east.demo.causeway", "a", "x-1.y", "1.2.3", &"a".repeat(63)] {
            let td = TrustDomain::new(good).unwrap();
            assert_eq!(td.to_string(), good);
        }
        let bad = [
            ("", "empty"),
            ("East.demo", "lowercase"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a.", "empty label"),
            ("-a.b", "'-'"),
            ("a_b", "lowercase"),
            ("a/b", "lowercase"),
            ("spiffe://a", "lowercase"),
        ];
        for (value, reason) in bad {
            let err = TrustDomain::new(value).unwrap_err().to_string();
            assert!(err.contains(reason), "{value}: {err}");
            assert!(err.contains(&format!("{value:?}")), "{err}");
        }
        assert!(TrustDomain::new("a".repeat(64)).is_err());
        assert!(TrustDomain::new(["a"; 128].join(".")).is_err());
    }

    #[test]
    fn trust_domain_serde() {
        let td: TrustDomain = serde_json::from_str("\"west.demo\"").unwrap();
        assert_eq!(serde_json::to_string(&td).unwrap(), "\"west.demo\"");
        assert!(serde_json::from_str::<TrustDomain>("\"West\"").is_err());
    }

    #[test]
    fn workloads() {
        for w in Workload::ALL {
            assert_eq!(w.as_str().parse::<Workload>().unwrap(), w);
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(json, format!("\"{}\"", w.as_str()));
        }
        let err = "Gateway".parse::<Workload>().unwrap_err().to_string();
        assert!(
            err.contains("\"gateway\", \"federation\" or \"dns\""),
            "{err}"
        );
    }

    #[test]
    fn spiffe_ids_parse() {
        let id = SpiffeId::parse("spiffe://east.demo.causeway/gateway").unwrap();
        assert_eq!(id.trust_domain().as_str(), "east.demo.causeway");
        assert_eq!(id.path(), "/gateway");
        assert_eq!(id.workload(), Some(Workload::Gateway));
        assert_eq!(id.to_string(), "spiffe://east.demo.causeway/gateway");

        let other = SpiffeId::parse("spiffe://td/ns/default/sa/x_y.z-1").unwrap();
        assert_eq!(other.path(), "/ns/default/sa/x_y.z-1");
        assert_eq!(other.workload(), None);

        let td = TrustDomain::new("west.demo").unwrap();
        let made = SpiffeId::new(td, Workload::Federation);
        assert_eq!(made.to_string(), "spiffe://west.demo/federation");
        assert_eq!(made, "spiffe://west.demo/federation".parse().unwrap());
    }

    #[test]
    fn spiffe_ids_rejected() {
        let bad = [
            ("https://east/gateway", "spiffe://"),
            ("spiffe://east", "no workload path"),
            ("spiffe://east/", "empty segment"),
            ("spiffe://east/gateway/", "empty segment"),
            ("spiffe://east//gateway", "empty segment"),
            ("spiffe://east/../gateway", "'..'"),
            ("spiffe://east/a b", "letters, digits"),
            ("spiffe://East/gateway", "lowercase"),
            ("spiffe:///gateway", "empty"),
            ("spiffe://user@east/gateway", "lowercase"),
            ("spiffe://east:443/gateway", "lowercase"),
            ("spiffe://east/gateway?x=1", "letters, digits"),
        ];
        for (value, reason) in bad {
            let err = SpiffeId::parse(value).unwrap_err().to_string();
            assert!(err.contains(reason), "{value}: {err}");
        }
        assert!(serde_json::from_str::<SpiffeId>("\"spiffe://a\"").is_err());
    }
}
