//! What to answer for one question: the pure core of the server.
//!
//! The hickory `Catalog` has already routed the question to one of our zones
//! (anything else got REFUSED there); this decides records versus NXDOMAIN
//! versus NODATA, and handles the query types an MCS authority must not serve.

use std::sync::Arc;

use hickory_proto::rr::{DNSClass, LowerName, RecordSet, RecordType};

use crate::index::Index;

#[derive(Debug, Clone)]
pub enum Answer {
    /// One RRset for the answer section, plus RRsets for the additional section.
    Records {
        answer: Arc<RecordSet>,
        additionals: Vec<Arc<RecordSet>>,
    },
    /// The name exists without the asked type (NOERROR, empty answer, SOA in authority).
    NoData,
    /// The name does not exist (NXDOMAIN, SOA in authority).
    NxDomain,
    /// Zone transfers and classes other than IN are not served.
    Refused,
}

pub fn answer(index: &Index, name: &LowerName, qtype: RecordType, qclass: DNSClass) -> Answer {
    if qclass != DNSClass::IN || matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Answer::Refused;
    }
    let Some(node) = index.node(name) else {
        return Answer::NxDomain;
    };
    let set = match qtype {
        // RFC 8482 4.1: answer ANY with a single RRset of the name; the index orders
        // each node's RRsets so the choice is stable (SOA, A, AAAA, SRV, PTR, TXT).
        RecordType::ANY => node.rrsets.first(),
        other => node.get(other),
    };
    match set {
        Some(answer) => Answer::Records {
            answer: answer.clone(),
            additionals: match qtype {
                RecordType::SRV => node.additionals.clone(),
                _ => Vec::new(),
            },
        },
        None => Answer::NoData,
    }
}

#[cfg(test)]
#[path = "answer_fixtures.rs"]
pub(crate) mod fixtures;
#[cfg(test)]
#[path = "answer_headless_tests.rs"]
mod headless_tests;
#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
