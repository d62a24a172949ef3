//! Files on disk: CA and leaf saving, and clear errors for bad inputs.
// Test helpers: a panic is how a test fails (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use causeway_identity::{
    Ca, CaError, CertPaths, LoadError, PeerTrust, ReloadingCert, Validity, Workload, client_config,
    server_config,
};
use common::{Cluster, write_pems};
use tempfile::TempDir;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn load_err(cert: &str, key: &str) -> String {
    let dir = TempDir::new().unwrap();
    let paths = write_pems(dir.path(), cert, key);
    ReloadingCert::load(paths).unwrap_err().to_string()
}

#[test]
fn ca_save_refuses_to_overwrite_without_force() {
    let east = Cluster::new("east");
    let other = Ca::generate(&east.name, &east.td).unwrap();
    let err = other.save(east.dir.path(), false).unwrap_err().to_string();
    assert!(err.contains("ca.pem already exists; use --force"), "{err}");
    // Nothing was replaced.
    let on_disk = fs::read_to_string(east.dir.path().join("ca.pem")).unwrap();
    assert_eq!(on_disk, east.ca.cert_pem());

    other.save(east.dir.path(), true).unwrap();
    let on_disk = fs::read_to_string(east.dir.path().join("ca.pem")).unwrap();
    assert_eq!(on_disk, other.cert_pem());
}

#[test]
fn ca_save_names_the_key_file_when_only_it_exists() {
    let east = Cluster::new("east");
    fs::remove_file(east.dir.path().join("ca.pem")).unwrap();
    let err = east.ca.save(east.dir.path(), false).unwrap_err();
    assert!(matches!(err, CaError::Write(_)));
    assert!(
        err.to_string()
            .contains("ca-key.pem already exists; use --force"),
        "{err}"
    );
}

#[test]
fn key_files_are_private_and_certificates_public() {
    let east = Cluster::new("east");
    let dir = east.dir.path();
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("ca.pem")), 0o644);
    // Even when overwriting a file that was world-readable.
    fs::set_permissions(dir.join("ca-key.pem"), fs::Permissions::from_mode(0o666)).unwrap();
    east.ca.save(dir, true).unwrap();
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);

    let leaf = east
        .ca
        .issue(Workload::Gateway, Validity::default())
        .unwrap();
    let out = TempDir::new().unwrap();
    leaf.save(out.path(), Workload::Gateway, false).unwrap();
    assert_eq!(mode(&out.path().join("gateway-key.pem")), 0o600);
    assert_eq!(mode(&out.path().join("gateway.pem")), 0o644);
    assert_eq!(mode(&out.path().join("ca.pem")), 0o644);
    let ca_copy = fs::read_to_string(out.path().join("ca.pem")).unwrap();
    assert_eq!(ca_copy, east.ca.cert_pem());
}

#[test]
fn leaf_save_refuses_to_overwrite_without_force() {
    let east = Cluster::new("east");
    let dir = east.dir.path();
    let first = east
        .ca
        .issue(Workload::Federation, Validity::default())
        .unwrap();
    // Saving next to the CA is fine: the identical ca.pem is left alone.
    first.save(dir, Workload::Federation, false).unwrap();
    let second = east
        .ca
        .issue(Workload::Federation, Validity::default())
        .unwrap();
    let err = second
        .save(dir, Workload::Federation, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("federation.pem already exists; use --force"),
        "{err}"
    );
    second.save(dir, Workload::Federation, true).unwrap();
    let on_disk = fs::read_to_string(dir.join("federation.pem")).unwrap();
    assert_eq!(on_disk, second.cert_pem);

    // Another CA's ca.pem is not silently replaced either.
    let west = Cluster::new("west");
    let err = west
        .ca
        .issue(Workload::Gateway, Validity::default())
        .unwrap()
        .save(dir, Workload::Gateway, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ca.pem already exists; use --force"), "{err}");
    assert!(!dir.join("gateway.pem").exists());
}

#[test]
fn a_loaded_ca_issues_certificates_peers_accept() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let loaded = Ca::load(east.dir.path()).unwrap();
    assert_eq!(loaded.trust_domain(), &east.td);
    assert_eq!(loaded.cert_pem(), east.ca.cert_pem());
    let leaf = loaded
        .issue(Workload::Gateway, Validity::default())
        .unwrap();
    let cert = common::load_pems(&leaf.cert_pem, &leaf.key_pem);
    let peers = std::sync::Arc::new(causeway_identity::PeerSet::new(vec![east.trust()]).unwrap());
    let server = server_config(west.cert(Workload::Gateway), peers, Workload::Gateway).unwrap();
    let client = client_config(cert, &west.trust(), Workload::Gateway).unwrap();
    common::handshake(client, server, &west.td).unwrap();
}

#[test]
fn ca_load_reports_missing_and_mismatched_files() {
    let empty = TempDir::new().unwrap();
    let err = Ca::load(empty.path()).unwrap_err().to_string();
    assert!(err.starts_with("cannot read CA certificate file"), "{err}");
    assert!(err.contains("ca.pem"), "{err}");

    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    fs::copy(
        west.dir.path().join("ca-key.pem"),
        east.dir.path().join("ca-key.pem"),
    )
    .unwrap();
    let err = Ca::load(east.dir.path()).unwrap_err().to_string();
    assert!(err.contains("does not match the certificate"), "{err}");
}

#[test]
fn missing_empty_and_garbage_files_get_clear_errors() {
    let east = Cluster::new("east");
    let leaf = east
        .ca
        .issue(Workload::Gateway, Validity::default())
        .unwrap();
    let missing = ReloadingCert::load(CertPaths {
        cert: "/nonexistent/gateway.pem".into(),
        key: "/nonexistent/gateway-key.pem".into(),
    });
    let err = missing.unwrap_err().to_string();
    assert!(
        err.starts_with("cannot read certificate file /nonexistent/gateway.pem"),
        "{err}"
    );

    let cases = [
        ("", leaf.key_pem.as_str(), "certificate file", "is empty"),
        (leaf.cert_pem.as_str(), " \n", "key file", "is empty"),
        (
            "hello world",
            leaf.key_pem.as_str(),
            "cert.pem",
            "holds no PEM data",
        ),
        (
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            leaf.key_pem.as_str(),
            "cert.pem",
            "is not valid PEM",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
            leaf.key_pem.as_str(),
            "cert.pem",
            "-----BEGIN CERTIFICATE----- block without its END line",
        ),
        (
            "-----BEGIN CERTIFICATE---\nAAAA\n",
            leaf.key_pem.as_str(),
            "cert.pem",
            "malformed PEM line: \"-----BEGIN CERTIFICATE---\"",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            leaf.key_pem.as_str(),
            "cert.pem",
            "not valid X.509",
        ),
        (
            leaf.key_pem.as_str(),
            leaf.key_pem.as_str(),
            "cert.pem",
            "no CERTIFICATE block (found: PRIVATE KEY)",
        ),
        (
            leaf.cert_pem.as_str(),
            leaf.cert_pem.as_str(),
            "key.pem",
            "holds no private key",
        ),
    ];
    for (cert, key, file, problem) in cases {
        let err = load_err(cert, key);
        assert!(
            err.contains(file) && err.contains(problem),
            "{cert:?}/{key:?}: {err}"
        );
    }
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let east = Cluster::new("east");
    let a = east
        .ca
        .issue(Workload::Gateway, Validity::default())
        .unwrap();
    let b = east
        .ca
        .issue(Workload::Gateway, Validity::default())
        .unwrap();
    let err = load_err(&a.cert_pem, &b.key_pem);
    assert!(
        err.contains("key.pem does not match the certificate in"),
        "{err}"
    );
    assert!(err.contains("cert.pem"), "{err}");
    let two_keys = format!("{}{}", a.key_pem, b.key_pem);
    let err = load_err(&a.cert_pem, &two_keys);
    assert!(err.contains("holds 2 private keys"), "{err}");
}

#[test]
fn a_certificate_without_spiffe_id_is_refused() {
    let east = Cluster::new("east");
    let (cert, key) = east.forge("https://east.example/", Validity::default());
    let err = load_err(&cert, &key);
    assert!(err.contains("not a usable SPIFFE ID"), "{err}");
    assert!(err.contains("must start with spiffe://"), "{err}");
}

#[test]
fn peer_bundles_are_checked_at_load() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let err = PeerTrust::load(
        east.name.clone(),
        east.td.clone(),
        Path::new("/nonexistent/ca.pem"),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("cannot read CA bundle file /nonexistent/ca.pem")
    );

    // east configured with west's bundle: caught before any connection.
    let err = PeerTrust::load(east.name.clone(), east.td.clone(), &west.ca_bundle()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("is the CA of trust domain west.demo.causeway; expected east.demo.causeway"),
        "{text}"
    );

    let dir = TempDir::new().unwrap();
    let junk = dir.path().join("junk.pem");
    fs::write(&junk, "not pem").unwrap();
    let err = PeerTrust::load(east.name.clone(), east.td.clone(), &junk).unwrap_err();
    assert!(err.to_string().contains("holds no PEM data"), "{err}");

    // A bundle may hold several CAs (e.g. old and new during CA rotation).
    let both = dir.path().join("both.pem");
    fs::write(
        &both,
        format!("{}{}", east.ca.cert_pem(), east.ca.cert_pem()),
    )
    .unwrap();
    let trust = PeerTrust::load(east.name.clone(), east.td.clone(), &both).unwrap();
    assert_eq!(trust.roots.len(), 2);
}

#[test]
fn validity_must_not_be_empty() {
    let east = Cluster::new("east");
    let now = std::time::SystemTime::now();
    let validity = Validity {
        not_before: now,
        not_after: now,
    };
    let err = east.ca.issue(Workload::Gateway, validity).unwrap_err();
    assert!(matches!(err, CaError::Validity { .. }), "{err}");
}

/// Finding 10 (docs/security.md): a loaded certificate printed with `{:?}`
/// (as a log line or an error might) shows no byte of its private key.
#[test]
fn debug_output_never_contains_key_material() {
    let c = Cluster::new("east");
    let leaf = c.ca.issue(Workload::Gateway, Validity::default()).unwrap();
    let cert = common::load_pems(&leaf.cert_pem, &leaf.key_pem);
    let printed = format!("{cert:?} {:?}", cert.certified_key());
    let body: String = leaf
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
    for chunk in body.as_bytes().chunks(16) {
        let chunk = std::str::from_utf8(chunk).unwrap();
        assert!(!printed.contains(chunk), "key bytes {chunk} in {printed}");
    }
    // Nor as the decimal bytes a derived Debug of a Vec<u8> prints.
    let der = leaf.key_pem.as_bytes();
    let as_list = format!("{:?}", &der[..8]);
    assert!(
        !printed.contains(&as_list[1..as_list.len() - 1]),
        "{printed}"
    );
}
