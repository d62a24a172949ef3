//! Federation messages from a peer (length-delimited protobuf `Update`s)
//! into `PeerView::apply`, with every quota small enough to be hit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    causeway_federation::fuzzing::peer_view_apply(data);
});
