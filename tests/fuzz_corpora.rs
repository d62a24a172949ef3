//! The fuzz targets' checks (fuzz/fuzz_targets/) on stable Rust: every input
//! in fuzz/corpus/<target>/ (seeds and what long runs found worth keeping),
//! plus a bounded number of seeded byte mutations of them. cargo-fuzz needs
//! nightly; this keeps the corpora exercised in every `cargo test`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use causeway_catalog::CatalogSnapshot;
use causeway_dns::fuzzing::FastPath;
use causeway_gateway::protocol::{
    decode_prefix, decode_request, decode_response_head, encode_request,
};
use causeway_identity::{SpiffeId, spiffe_id_of};
use rustls::pki_types::CertificateDer;

/// Mutants per target, spread over its corpus files (at least one each):
/// enough to leave the inputs' exact shapes, small enough for a debug build
/// on two cores (all targets: a few seconds).
const MUTANTS: usize = 4096;

fn stream_header(data: &[u8]) {
    if let Some(p) = data.first_chunk::<3>() {
        let _ = decode_prefix(*p);
        let _ = decode_response_head(*p);
    }
    let Ok(req) = decode_request(data) else {
        return;
    };
    let wire = encode_request(&req).unwrap();
    assert_eq!(&wire[3..], data, "decode/encode is not the identity");
    assert_eq!(decode_request(&wire[3..]).as_ref(), Ok(&req));
}

fn fast_path() -> &'static FastPath {
    static FAST: OnceLock<FastPath> = OnceLock::new();
    FAST.get_or_init(|| {
        let text = std::fs::read_to_string(fuzz_dir().join("catalog.json")).unwrap();
        let catalog: CatalogSnapshot = serde_json::from_str(&text).unwrap();
        let cfg = causeway_dns::Config {
            reverse_zones: vec!["127.77.0.0/16".parse().unwrap()],
            ..causeway_dns::Config::default()
        };
        FastPath::new(&cfg, &catalog).unwrap()
    })
}

fn dns_fast_path(data: &[u8]) {
    let mut out = Vec::with_capacity(512);
    if fast_path().respond(data, &mut out) {
        assert!(out.len() >= 12);
        assert_eq!(out[..2], data[..2]);
    }
}

fn spiffe_san(data: &[u8]) {
    let _ = spiffe_id_of(&CertificateDer::from(data));
    if let Ok(id) = std::str::from_utf8(data).unwrap_or("").parse::<SpiffeId>() {
        assert_eq!(id.to_string().parse::<SpiffeId>().unwrap(), id);
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, inserts, deletes or duplicates a few bytes.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(4) {
            0 if at < b.len() => b[at] ^= 1 << rng.below(8),
            1 => b.insert(at, rng.next() as u8),
            2 if at < b.len() => {
                b.remove(at);
            }
            _ => {
                let end = (at + rng.below(16)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
        }
    }
    b
}

fn replay(target: &str, check: fn(&[u8])) {
    let dir = fuzz_dir().join("corpus").join(target);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "no corpus for {target}");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_file = (MUTANTS / files.len()).max(1);
    for f in &files {
        // A fuzzer running beside the test may remove a file it reduced.
        let Ok(seed) = std::fs::read(f) else {
            continue;
        };
        check(&seed);
        for _ in 0..per_file {
            check(&mutate(&mut rng, &seed));
        }
    }
}

#[test]
fn stream_header_corpus() {
    replay("stream_header", stream_header);
}

#[test]
fn peer_view_apply_corpus() {
    replay(
        "peer_view_apply",
        causeway_federation::fuzzing::peer_view_apply,
    );
}

#[test]
fn dns_fast_path_corpus() {
    replay("dns_fast_path", dns_fast_path);
}

#[test]
fn spiffe_san_corpus() {
    replay("spiffe_san", spiffe_san);
}

#[test]
fn state_json_corpus() {
    replay("state_json", causeway_federation::fuzzing::state_file);
}

#[test]
fn service_export_corpus() {
    replay(
        "service_export",
        causeway_federation::fuzzing::service_export,
    );
}
