//! The UDP fast path: a plain query in, its response out, from the wire index.
//!
//! Only the common shape is taken: a QUERY with one IN question of a
//! [`FAST_TYPES`] type, a name of letters, digits, '-' and '_' without
//! compression, and at most an EDNS(0) OPT record with no options and no flags.
//! Everything else, and any answer that would need truncation, returns `None`
//! and is left to hickory, so its behaviour stays hickory's.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RecordSet, RecordType};
use hickory_proto::serialize::binary::BinEncoder;

use crate::wire::{FAST_TYPES, Found, MAX_NAME, RawQuestion, Wire};

const HEADER: usize = 12;
/// UDP size limit without EDNS (RFC 1035 4.2.1); also the floor for EDNS sizes (RFC 6891 6.2.5).
const MIN_PAYLOAD: u16 = 512;
const QR: u8 = 0x80;
const AA: u8 = 0x04;
const RD: u8 = 0x01;
const CD: u8 = 0x10;

/// One parsed query, borrowing the request.
struct Query<'a> {
    /// Request id and flags (bytes 0..4 of the header).
    head: [u8; 4],
    /// Name, type and class as asked: echoed byte for byte.
    question: &'a [u8],
    qtype: RecordType,
    /// The client's UDP size when the request carries EDNS.
    edns: Option<u16>,
}

impl Query<'_> {
    fn limit(&self) -> usize {
        usize::from(self.edns.map_or(MIN_PAYLOAD, |p| p.max(MIN_PAYLOAD)))
    }
}

/// Writes the response to `req` into `out` and returns its rcode, or `None`
/// when hickory must answer.
pub fn respond(wire: &Wire, req: &[u8], out: &mut Vec<u8>) -> Option<ResponseCode> {
    let mut key = [0u8; MAX_NAME];
    let (q, key_len) = parse(req, &mut key)?;
    let qname = key.get(..key_len)?;
    let rcode = match wire.find(qname, q.qtype) {
        Found::Answer(template) => prebuilt(&q, template, out)?,
        Found::NxDomain(soa) => nxdomain(&q, soa, out)?,
        Found::OutOfZone => refused(&q, out),
    };
    (out.len() <= q.limit()).then_some(rcode)
}

fn parse<'a>(req: &'a [u8], key: &mut [u8; MAX_NAME]) -> Option<(Query<'a>, usize)> {
    let h = req.get(..HEADER)?;
    // QR clear, opcode QUERY; one question, no answers or authorities, at most an OPT.
    let plain = h[2] & 0xf8 == 0 && h[4..10] == [0, 1, 0, 0, 0, 0] && h[10] == 0 && h[11] <= 1;
    if !plain {
        return None;
    }
    let key_len = read_name(req.get(HEADER..)?, key)?;
    let end = HEADER + key_len + 4;
    let question = req.get(HEADER..end)?;
    let t = question.get(key_len..)?;
    let qtype = RecordType::from(u16::from_be_bytes([t[0], t[1]]));
    if t[2..] != [0, 1] || !FAST_TYPES.contains(&qtype) {
        return None;
    }
    let edns = match h[11] {
        0 if req.len() == end => None,
        1 => Some(read_opt(req.get(end..)?)?),
        _ => return None,
    };
    let head = [h[0], h[1], h[2], h[3]];
    let q = Query {
        head,
        question,
        qtype,
        edns,
    };
    Some((q, key_len))
}

/// Copies the name at the start of `bytes` into `key`, lowercased; returns its length.
fn read_name(bytes: &[u8], key: &mut [u8; MAX_NAME]) -> Option<usize> {
    let mut i = 0;
    loop {
        let len = usize::from(*bytes.get(i)?);
        let slot = key.get_mut(i)?;
        *slot = bytes[i];
        if len == 0 {
            return Some(i + 1);
        }
        // Longer is a compression pointer or reserved; both go to hickory.
        if len > 63 {
            return None;
        }
        let label = bytes.get(i + 1..i + 1 + len)?;
        // `get_mut` also bounds the name: the root label must still fit after it.
        let dst = key.get_mut(i + 1..i + 1 + len + 1)?;
        for (d, b) in dst.iter_mut().zip(label) {
            if !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
                return None;
            }
            *d = b.to_ascii_lowercase();
        }
        i += 1 + len;
    }
}

/// An OPT record that is all the rest of the packet: root owner, version 0, no
/// flags, no extended rcode, no options. Returns the advertised UDP size.
fn read_opt(rest: &[u8]) -> Option<u16> {
    match rest {
        [0, 0, 41, hi, lo, 0, 0, 0, 0, 0, 0] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// The response header: the request's id, RD and CD, with our flags and counts.
fn header(q: &Query<'_>, flags: [u8; 2], counts: [u8; 8]) -> [u8; HEADER] {
    let [id0, id1, f2, f3] = q.head;
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&[id0, id1, flags[0] | (f2 & RD), flags[1] | (f3 & CD)]);
    h[4..].copy_from_slice(&counts);
    h
}

/// Adds the response OPT (hickory's: the client's size, at least 512) and counts it.
fn finish_edns(q: &Query<'_>, out: &mut Vec<u8>) {
    let Some(size) = q.edns else { return };
    let [hi, lo] = size.max(MIN_PAYLOAD).to_be_bytes();
    out.extend_from_slice(&[0, 0, 41, hi, lo, 0, 0, 0, 0, 0, 0]);
    let ar = u16::from_be_bytes([out[10], out[11]]).wrapping_add(1);
    out[10..12].copy_from_slice(&ar.to_be_bytes());
}

fn prebuilt(q: &Query<'_>, template: &[u8], out: &mut Vec<u8>) -> Option<ResponseCode> {
    let (head, sections) = (template.get(..HEADER)?, template.get(HEADER..)?);
    let counts: [u8; 8] = head.get(4..)?.try_into().ok()?;
    out.clear();
    out.extend_from_slice(&header(q, [head[2], head[3]], counts));
    out.extend_from_slice(q.question);
    out.extend_from_slice(sections);
    finish_edns(q, out);
    Some(ResponseCode::from_low(head[3] & 0x0f))
}

/// NXDOMAIN with the zone's SOA in authority, encoded here because its
/// compression pointers depend on where the asked name ends.
fn nxdomain(q: &Query<'_>, soa: &RecordSet, out: &mut Vec<u8>) -> Option<ResponseCode> {
    let rcode = ResponseCode::NXDomain;
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(u16::try_from(q.limit()).unwrap_or(u16::MAX));
    let counts = [0, 1, 0, 0, 0, 0, 0, 0];
    encoder
        .emit_vec(&header(q, [QR | AA, rcode.low()], counts))
        .ok()?;
    hickory_proto::op::EmitAndCount::emit(&mut RawQuestion(q.question), &mut encoder).ok()?;
    let n = encoder.emit_all(soa.records_without_rrsigs()).ok()?;
    let n = u16::try_from(n).ok()?.to_be_bytes();
    out[8..10].copy_from_slice(&n);
    finish_edns(q, out);
    Some(rcode)
}

/// Outside every zone of ours: REFUSED, not authoritative, as hickory's `Catalog`.
fn refused(q: &Query<'_>, out: &mut Vec<u8>) -> ResponseCode {
    let rcode = ResponseCode::Refused;
    out.clear();
    let counts = [0, 1, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&header(q, [QR, rcode.low()], counts));
    out.extend_from_slice(q.question);
    finish_edns(q, out);
    rcode
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
