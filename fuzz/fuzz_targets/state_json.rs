//! Persisted state files and `WatchCatalog` message bodies (JSON), read back
//! as the federation, gateway and DNS do.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    causeway_federation::fuzzing::state_file(data);
});
