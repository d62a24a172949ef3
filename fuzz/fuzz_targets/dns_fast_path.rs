//! The DNS UDP fast path: any packet, parsed and answered from a real index.
#![no_main]

use std::sync::OnceLock;

use causeway_catalog::CatalogSnapshot;
use causeway_dns::fuzzing::FastPath;
use libfuzzer_sys::fuzz_target;

const CATALOG: &str = include_str!("../catalog.json");

fn fast() -> &'static FastPath {
    static FAST: OnceLock<FastPath> = OnceLock::new();
    FAST.get_or_init(|| {
        let catalog: CatalogSnapshot = serde_json::from_str(CATALOG).expect("fuzz/catalog.json");
        let cfg = causeway_dns::Config {
            reverse_zones: vec!["127.77.0.0/16".parse().expect("a network")],
            ..causeway_dns::Config::default()
        };
        FastPath::new(&cfg, &catalog).expect("the fuzz catalog indexes")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::with_capacity(512);
    if fast().respond(data, &mut out) {
        assert!(out.len() >= 12, "a fast-path answer has a header");
        assert_eq!(out[..2], data[..2], "the answer carries the query id");
    }
});
