//! The gateway's stream header (docs/protocol.md): prefix, request body and
//! response head. A decoded request re-encodes to the same bytes.
#![no_main]

use causeway_gateway::protocol::{
    decode_prefix, decode_request, decode_response_head, encode_request,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) = data.first_chunk::<3>() {
        let _ = decode_prefix(*p);
        let _ = decode_response_head(*p);
    }
    let Ok(req) = decode_request(data) else {
        return;
    };
    let wire = encode_request(&req).expect("a decoded request encodes");
    assert_eq!(&wire[3..], data, "decode/encode is not the identity");
    let len = decode_prefix([wire[0], wire[1], wire[2]]).expect("our own prefix decodes");
    assert_eq!(len, data.len());
    assert_eq!(decode_request(&wire[3..]).as_ref(), Ok(&req));
});
