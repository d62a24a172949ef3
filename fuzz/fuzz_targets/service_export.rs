//! A ServiceExport with its Service and EndpointSlices (JSON) into an Export.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    causeway_federation::fuzzing::service_export(data);
});
