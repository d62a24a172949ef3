//! Wire-format answers for the UDP fast path, encoded once when the index is built.
//!
//! Each answer is a whole response without its question: the 12-byte header
//! (id, RD and CD are patched per query) and the encoded answer, authority and
//! additional sections. The bytes come from hickory's encoder, laid out the way
//! hickory-server lays out a response (the question copied raw, then the sections
//! with name compression), so a fast-path answer equals the hickory path's bytes.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::ProtoError;
use hickory_proto::op::{EmitAndCount, MessageType, Metadata, OpCode, emit_message_parts};
use hickory_proto::rr::{DNSClass, LowerName, Name, RecordSet, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use tracing::warn;

use crate::answer::{Answer, answer};
use crate::index::{Index, Node};

/// Query types the fast path answers; any other type goes to hickory. Besides the
/// types the index serves, a few common ones that can only get NODATA.
pub const FAST_TYPES: [RecordType; 13] = [
    RecordType::A,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::PTR,
    RecordType::MX,
    RecordType::TXT,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::SVCB,
    RecordType::HTTPS,
    RecordType::CAA,
    RecordType::ANY,
];

/// Longest name on the wire, the terminating root label included (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 255;

/// Every indexed name's answers, keyed by the lowercase wire-format name.
#[derive(Debug, Default)]
pub struct Wire {
    names: HashMap<Box<[u8]>, WireNode>,
    /// Zone apexes and their SOA, for NXDOMAIN answers (encoded per query: their
    /// compression pointers depend on the length of the asked name).
    apexes: HashMap<Box<[u8]>, Arc<RecordSet>>,
}

/// Shared bytes: ANY often repeats another answer, and NODATA depends only on
/// the zone and the name's length.
type Bytes = Arc<[u8]>;

#[derive(Debug)]
struct WireNode {
    /// Per query type (ANY included) that has records: header + sections.
    answers: Vec<(u16, Bytes)>,
    /// NOERROR without records, the zone's SOA in authority.
    nodata: Bytes,
}

/// What the fast path should send for one question.
pub enum Found<'a> {
    /// A prebuilt response: header template then the sections after the question.
    Answer(&'a [u8]),
    /// The name does not exist in the zone whose SOA this is.
    NxDomain(&'a RecordSet),
    /// No zone of ours holds the name: REFUSED.
    OutOfZone,
}

impl Wire {
    /// `qname`: lowercase wire-format name; `qtype` one of [`FAST_TYPES`].
    pub fn find(&self, qname: &[u8], qtype: RecordType) -> Found<'_> {
        if let Some(node) = self.names.get(qname) {
            let code = u16::from(qtype);
            let hit = node.answers.iter().find(|(t, _)| *t == code);
            return Found::Answer(hit.map_or(&node.nodata, |(_, bytes)| bytes));
        }
        match nearest_apex(&self.apexes, qname) {
            Some(soa) => Found::NxDomain(soa),
            None => Found::OutOfZone,
        }
    }
}

/// The zone hickory's `Catalog` routes `qname` to: the nearest enclosing apex.
fn nearest_apex<'a, T>(apexes: &'a HashMap<Box<[u8]>, T>, qname: &[u8]) -> Option<&'a T> {
    let mut rest = qname;
    while let Some(&len) = rest.first().filter(|l| **l != 0) {
        if let Some(found) = apexes.get(rest) {
            return Some(found);
        }
        rest = rest.get(1 + usize::from(len)..)?;
    }
    None
}

/// Encodes every answer of `index`; a name that fails to encode is left to hickory.
pub fn build(index: &Index) -> Wire {
    let apexes: HashMap<Box<[u8]>, Arc<RecordSet>> = index
        .nodes()
        .filter_map(|(name, node)| Some((to_wire(name), node.get(RecordType::SOA)?.clone())))
        .collect();
    let mut names = HashMap::with_capacity(index.name_count());
    let mut nodatas: HashMap<(*const RecordSet, usize), Bytes> = HashMap::new();
    for (name, node) in index.nodes() {
        let key = to_wire(name);
        let Some(soa) = nearest_apex(&apexes, &key) else {
            continue;
        };
        let answers = node_answers(index, name, node, &key);
        let nodata = match nodatas.get(&(Arc::as_ptr(soa), key.len())) {
            Some(bytes) => Ok(bytes.clone()),
            None => encode(&key, None, Some(soa), &[]).inspect(|bytes| {
                nodatas.insert((Arc::as_ptr(soa), key.len()), bytes.clone());
            }),
        };
        match (answers, nodata) {
            (Ok(answers), Ok(nodata)) => {
                names.insert(key, WireNode { answers, nodata });
            }
            (Err(error), _) | (_, Err(error)) => {
                warn!(%name, %error, "dns: no fast-path answer for this name; hickory answers it");
            }
        }
    }
    names.shrink_to_fit();
    Wire { names, apexes }
}

/// One answer per RRset of the node, and one for ANY.
fn node_answers(
    index: &Index,
    name: &LowerName,
    node: &Node,
    key: &[u8],
) -> Result<Vec<(u16, Bytes)>, ProtoError> {
    let mut out = Vec::with_capacity(node.rrsets.len() + 1);
    for set in &node.rrsets {
        let t = set.record_type();
        out.push((u16::from(t), encode_answer(index, name, key, t)?));
    }
    // ANY gets the first RRset (answer.rs): the same bytes, unless that type's
    // answer carries more sections (SRV additionals, NS beside SOA).
    if let Some((first, bytes)) = out.first() {
        let any = match RecordType::from(*first) {
            RecordType::SRV | RecordType::SOA => encode_answer(index, name, key, RecordType::ANY)?,
            _ => bytes.clone(),
        };
        out.push((u16::from(RecordType::ANY), any));
    }
    Ok(out)
}

/// As hickory's `Catalog` answers: the RRset, SRV targets in additional, and the
/// apex NS in authority for an SOA query.
fn encode_answer(
    index: &Index,
    name: &LowerName,
    key: &[u8],
    qtype: RecordType,
) -> Result<Bytes, ProtoError> {
    let Answer::Records {
        answer: set,
        additionals,
    } = answer(index, name, qtype, DNSClass::IN)
    else {
        return Err(ProtoError::Message("an indexed RRset has no answer"));
    };
    let ns = match qtype {
        RecordType::SOA => index.node(name).and_then(|n| n.get(RecordType::NS)),
        _ => None,
    };
    encode(key, Some(&set), ns.map(|s| &**s), &additionals)
}

/// Header + sections of an authoritative NOERROR response to `qname`, encoded
/// as hickory-server does with the question in place, which is then cut out.
fn encode(
    qname: &[u8],
    answer: Option<&RecordSet>,
    authority: Option<&RecordSet>,
    additionals: &[Arc<RecordSet>],
) -> Result<Bytes, ProtoError> {
    let mut meta = Metadata::new(0, MessageType::Response, OpCode::Query);
    meta.authoritative = true;
    let mut question = qname.to_vec();
    question.extend_from_slice(&[0, 1, 0, 1]);
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    emit_message_parts(
        &meta,
        &mut RawQuestion(&question),
        &mut answer.into_iter().flat_map(|s| s.records_without_rrsigs()),
        &mut authority
            .into_iter()
            .flat_map(|s| s.records_without_rrsigs()),
        &mut additionals.iter().flat_map(|s| s.records_without_rrsigs()),
        None,
        None,
        &mut encoder,
    )?;
    let mut out = Vec::with_capacity(buf.len() - question.len());
    out.extend_from_slice(buf.get(..12).unwrap_or_default());
    out.extend_from_slice(buf.get(12 + question.len()..).unwrap_or_default());
    Ok(out.into())
}

/// The question as hickory-server emits it: the request's bytes, registered as
/// one compression candidate (which no later name can match).
pub struct RawQuestion<'a>(pub &'a [u8]);

impl EmitAndCount for RawQuestion<'_> {
    fn emit(&mut self, encoder: &mut BinEncoder<'_>) -> Result<usize, ProtoError> {
        let start = encoder.offset();
        encoder.emit_vec(self.0)?;
        encoder.store_label_pointer(start, start + self.0.len());
        Ok(1)
    }
}

/// Uncompressed wire format of a (lowercase) name.
fn to_wire(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(MAX_NAME);
    for label in name.iter() {
        out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(label);
    }
    out.push(0);
    out.into_boxed_slice()
}
