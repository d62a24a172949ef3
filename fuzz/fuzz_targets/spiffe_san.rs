//! SAN and SPIFFE ID parsing: any bytes as a certificate, any string as an ID.
#![no_main]

use causeway_identity::{SpiffeId, spiffe_id_of};
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

fuzz_target!(|data: &[u8]| {
    let _ = spiffe_id_of(&CertificateDer::from(data));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = text.parse::<SpiffeId>() {
            let again: SpiffeId = id.to_string().parse().expect("a printed ID parses");
            assert_eq!(again, id);
        }
    }
});
