//! A flow datagram: `varint flow id | payload` (QUIC variable-length integer).

use bytes::{BufMut, Bytes, BytesMut};

/// Largest flow id a varint holds.
const MAX_ID: u64 = (1 << 62) - 1;
/// The id of control datagrams, one byte of kind after it: no stream ever
/// gets this index.
pub const CONTROL: u64 = MAX_ID;
/// Control kinds: a liveness probe, and its answer.
pub const PROBE: u8 = 1;
pub const ANSWER: u8 = 2;

/// Bytes the id of flow `id` takes in front of the payload.
pub fn id_len(id: u64) -> usize {
    match id {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

pub fn encode(id: u64, payload: &[u8]) -> Bytes {
    let id = id.min(MAX_ID);
    let mut b = BytesMut::with_capacity(id_len(id) + payload.len());
    match id_len(id) {
        1 => b.put_u8(id as u8),
        2 => b.put_u16(0x4000 | id as u16),
        4 => b.put_u32(0x8000_0000 | id as u32),
        _ => b.put_u64(0xc000_0000_0000_0000 | id),
    }
    b.put_slice(payload);
    b.freeze()
}

/// The flow id and payload, or `None` when the id is cut short.
pub fn decode(d: &[u8]) -> Option<(u64, &[u8])> {
    let first = *d.first()?;
    let len = 1usize << (first >> 6);
    let head = d.get(..len)?;
    let mut id = u64::from(first & 0x3f);
    for b in &head[1..] {
        id = (id << 8) | u64::from(*b);
    }
    Some((id, &d[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_every_width_round_trip_and_cut_ones_are_refused() {
        for id in [
            0,
            63,
            64,
            16_383,
            16_384,
            1_073_741_823,
            1_073_741_824,
            MAX_ID,
        ] {
            let d = encode(id, b"payload");
            assert_eq!(d.len(), id_len(id) + 7);
            assert_eq!(decode(&d), Some((id, &b"payload"[..])), "id {id}");
            assert_eq!(decode(&d[..id_len(id) - 1]), None, "cut id {id}");
        }
        assert_eq!(decode(&[]), None);
        assert_eq!(
            decode(&[5]),
            Some((5, &[][..])),
            "an empty payload is a datagram"
        );
        // RFC 9000 appendix A.1's examples.
        assert_eq!(decode(&[0x7b, 0xbd]), Some((15_293, &[][..])));
        assert_eq!(
            decode(&[0x9d, 0x7f, 0x3e, 0x7d]),
            Some((494_878_333, &[][..]))
        );
    }
}
