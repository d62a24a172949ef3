//! What can be wrong with a policy, and where.

/// A policy refused, naming where it sits (`policies[2]`, or the object) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct PolicyError {
    pub at: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("service {value:?} is not {expected}: {why}")]
    Service {
        value: String,
        expected: &'static str,
        why: String,
    },
    #[error("a second policy for {service}{port}; merge the two")]
    Duplicate { service: String, port: String },
    #[error("{field}: {value} is not a percentage (0 to 100)")]
    Percent { field: &'static str, value: f64 },
    #[error("split: every weight is 0; give at least one cluster a weight above 0")]
    SplitAllZero,
    #[error("{field}: {value} is out of range; valid: {valid}")]
    Range {
        field: String,
        value: String,
        valid: &'static str,
    },
    #[error("{field}: cluster {cluster} is listed twice")]
    Repeated {
        field: &'static str,
        cluster: String,
    },
}
