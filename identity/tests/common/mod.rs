//! Test clusters with their own CAs, and in-memory TLS handshakes.
#![allow(dead_code)]
// each test binary uses a different subset
// Test helpers: a panic is how a test fails (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

use std::ops::DerefMut;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use causeway_catalog::ClusterId;
use causeway_identity::{
    Ca, CertPaths, PeerTrust, ReloadingCert, TrustDomain, Validity, VerifyError, Workload,
};
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection};
use tempfile::TempDir;

pub const DAY: Duration = Duration::from_secs(86400);

/// A cluster: name, trust domain `<name>.demo.causeway`, a CA saved in `dir`.
pub struct Cluster {
    pub name: ClusterId,
    pub td: TrustDomain,
    pub ca: Ca,
    pub dir: TempDir,
}

impl Cluster {
    pub fn new(name: &str) -> Self {
        let td = TrustDomain::new(format!("{name}.demo.causeway")).unwrap();
        Self::with_domain(name, td)
    }

    pub fn with_domain(name: &str, td: TrustDomain) -> Self {
        let name = ClusterId::new(name).unwrap();
        let ca = Ca::generate(&name, &td).unwrap();
        let dir = TempDir::new().unwrap();
        ca.save(dir.path(), false).unwrap();
        Cluster { name, td, ca, dir }
    }

    pub fn ca_bundle(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Trust in this cluster, as a peer configures it.
    pub fn trust(&self) -> PeerTrust {
        PeerTrust::load(self.name.clone(), self.td.clone(), &self.ca_bundle()).unwrap()
    }

    pub fn cert(&self, workload: Workload) -> Arc<ReloadingCert> {
        self.cert_with(workload, Validity::default())
    }

    pub fn cert_with(&self, workload: Workload, validity: Validity) -> Arc<ReloadingCert> {
        let leaf = self.ca.issue(workload, validity).unwrap();
        load_pems(&leaf.cert_pem, &leaf.key_pem)
    }

    /// A certificate signed by this cluster's CA key for any URI, bypassing
    /// `Ca::issue` (which only names its own trust domain).
    pub fn forge(&self, uri: &str, validity: Validity) -> (String, String) {
        let ca_key = std::fs::read_to_string(self.dir.path().join("ca-key.pem")).unwrap();
        let issuer =
            Issuer::from_ca_cert_pem(self.ca.cert_pem(), KeyPair::from_pem(&ca_key).unwrap())
                .unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes a cert and key to a throwaway directory and loads them.
pub fn load_pems(cert_pem: &str, key_pem: &str) -> Arc<ReloadingCert> {
    let dir = TempDir::new().unwrap();
    let paths = write_pems(dir.path(), cert_pem, key_pem);
    ReloadingCert::load(paths).unwrap()
}

pub fn write_pems(dir: &Path, cert_pem: &str, key_pem: &str) -> CertPaths {
    let paths = CertPaths {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&paths.cert, cert_pem).unwrap();
    std::fs::write(&paths.key, key_pem).unwrap();
    paths
}

pub fn expired() -> Validity {
    let now = SystemTime::now();
    Validity {
        not_before: now - 10 * DAY,
        not_after: now - DAY,
    }
}

pub fn not_yet_valid() -> Validity {
    let now = SystemTime::now();
    Validity {
        not_before: now + DAY,
        not_after: now + 10 * DAY,
    }
}

/// Which side of an in-memory handshake failed, and how.
#[derive(Debug)]
pub enum Failed {
    Client(rustls::Error),
    Server(rustls::Error),
}

impl Failed {
    pub fn client(self) -> rustls::Error {
        match self {
            Failed::Client(e) => e,
            Failed::Server(e) => panic!("expected the client to fail; the server did: {e}"),
        }
    }

    pub fn server(self) -> rustls::Error {
        match self {
            Failed::Server(e) => e,
            Failed::Client(e) => panic!("expected the server to fail; the client did: {e}"),
        }
    }
}

/// The detailed reason our verifier gave, or rustls' own message.
pub fn reason(err: &rustls::Error) -> String {
    VerifyError::from_rustls(err).map_or_else(|| err.to_string(), ToString::to_string)
}

/// A complete handshake between two in-memory endpoints.
pub fn handshake(
    client: ClientConfig,
    server: ServerConfig,
    server_name: &TrustDomain,
) -> Result<(ClientConnection, ServerConnection), Failed> {
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut client = ClientConnection::new(Arc::new(client), name).unwrap();
    let mut server = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..10 {
        transfer(&mut client, &mut server);
        server.process_new_packets().map_err(Failed::Server)?;
        transfer(&mut server, &mut client);
        client.process_new_packets().map_err(Failed::Client)?;
        let busy = client.is_handshaking() || server.is_handshaking();
        if !busy && !client.wants_write() && !server.wants_write() {
            return Ok((client, server));
        }
    }
    panic!("handshake did not finish in 10 round trips");
}

/// Moves all pending TLS records from one endpoint to the other.
pub fn transfer<A, B, DA, DB>(from: &mut A, to: &mut B)
where
    A: DerefMut<Target = ConnectionCommon<DA>>,
    B: DerefMut<Target = ConnectionCommon<DB>>,
{
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
    }
}

/// The certificate the other side presented.
pub fn peer_leaf<D>(conn: &ConnectionCommon<D>) -> CertificateDer<'static> {
    conn.peer_certificates().unwrap()[0].clone().into_owned()
}

/// `not_after` of a certificate, as Unix seconds.
pub fn not_after(cert: &CertificateDer<'_>) -> i64 {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).unwrap();
    parsed.validity().not_after.timestamp()
}
