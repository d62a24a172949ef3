//! What `causeway doctor` found: one [`Check`] per layer and target, shown as
//! ✓/✗ lines for people or as a JSON array for scripts (schema in
//! docs/operations.md).

use std::fmt::Write as _;

use serde::Serialize;

/// The layers, in the order they are checked; each depends on the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Config,
    Certificates,
    Federation,
    Lease,
    Gateway,
    Mtu,
    Service,
    Dns,
    Connection,
}

impl Layer {
    pub const ALL: [Layer; 9] = [
        Layer::Config,
        Layer::Certificates,
        Layer::Federation,
        Layer::Lease,
        Layer::Gateway,
        Layer::Mtu,
        Layer::Service,
        Layer::Dns,
        Layer::Connection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Config => "config",
            Layer::Certificates => "certificates",
            Layer::Federation => "federation",
            Layer::Lease => "lease",
            Layer::Gateway => "gateway",
            Layer::Mtu => "mtu",
            Layer::Service => "service",
            Layer::Dns => "dns",
            Layer::Connection => "connection",
        }
    }
}

/// Why a check failed and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub cause: String,
    pub fix: String,
}

impl Problem {
    pub fn new(cause: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            fix: fix.into(),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The cluster checked (`cluster.name`); `None` when its config did not load.
    pub cluster: Option<String>,
    pub layer: Layer,
    /// What was checked: a peer, an address, a certificate, a service.
    pub target: String,
    pub ok: bool,
    /// What was seen.
    pub detail: String,
    /// Set when `ok` is false: why it is broken.
    pub cause: Option<String>,
    /// Set when `ok` is false: what to do.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(layer: Layer, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            cluster: None,
            layer,
            target: target.into(),
            ok: true,
            detail: detail.into(),
            cause: None,
            fix: None,
        }
    }

    pub fn fail(
        layer: Layer,
        target: impl Into<String>,
        detail: impl Into<String>,
        p: Problem,
    ) -> Self {
        Self {
            ok: false,
            cause: Some(p.cause),
            fix: Some(p.fix),
            ..Self::pass(layer, target, detail)
        }
    }

    /// A pass or a failure, from a check's result.
    pub fn from_result(
        layer: Layer,
        target: impl Into<String>,
        r: Result<String, (String, Problem)>,
    ) -> Self {
        match r {
            Ok(detail) => Self::pass(layer, target, detail),
            Err((detail, p)) => Self::fail(layer, target, detail, p),
        }
    }
}

/// The ✓/✗ lines, the stop note, for one cluster's checks.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = if c.ok { '✓' } else { '✗' };
        let _ = writeln!(
            out,
            "{mark} {:<12} {}: {}",
            c.layer.as_str(),
            c.target,
            c.detail
        );
        if let (Some(cause), Some(fix)) = (&c.cause, &c.fix) {
            let _ = writeln!(out, "    cause: {cause}");
            let _ = writeln!(out, "    fix:   {fix}");
        }
    }
    if let Some(broken) = checks.iter().find(|c| !c.ok).map(|c| c.layer) {
        let rest: Vec<&str> = Layer::ALL
            .iter()
            .filter(|l| **l > broken)
            .map(|l| l.as_str())
            .collect();
        if !rest.is_empty() {
            let _ = writeln!(
                out,
                "stopped at {}: not checked: {} (they depend on it)",
                broken.as_str(),
                rest.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_marks_causes_and_the_stop() {
        let checks = vec![
            Check::pass(Layer::Config, "a.yaml", "cluster alpha"),
            Check::fail(
                Layer::Federation,
                "bravo",
                "TLS handshake failed",
                Problem::new("wrong CA", "replace the bundle"),
            ),
        ];
        let text = render(&checks);
        assert!(
            text.contains("✓ config       a.yaml: cluster alpha"),
            "{text}"
        );
        assert!(text.contains("✗ federation   bravo: TLS handshake failed"));
        assert!(text.contains("    cause: wrong CA\n    fix:   replace the bundle"));
        assert!(text.contains("stopped at federation: not checked: lease, gateway, mtu"));
        assert!(!render(&checks[..1]).contains("stopped"));
    }

    #[test]
    fn json_has_the_documented_fields() {
        let c = Check::fail(Layer::Mtu, "t", "d", Problem::new("c", "f"));
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(v["layer"], "mtu");
        for key in ["cluster", "layer", "target", "ok", "detail", "cause", "fix"] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["ok"], false);
    }
}
