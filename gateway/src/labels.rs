//! Label values shared by the gateway's metrics: which side, which way.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    /// Local clients calling services elsewhere.
    Outbound,
    /// Peer clusters calling local services.
    Inbound,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Flow {
    /// Bytes from the caller towards the service.
    Request,
    /// Bytes from the service back to the caller.
    Response,
}

impl EncodeLabelValue for Direction {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        };
        EncodeLabelValue::encode(&s, e)
    }
}

impl EncodeLabelValue for Flow {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = match self {
            Flow::Request => "request",
            Flow::Response => "response",
        };
        EncodeLabelValue::encode(&s, e)
    }
}
