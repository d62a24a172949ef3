//! Workload certificates (leaves) issued by a cluster CA.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

use crate::ca::{self, CA_CERT_FILE, CaError};
use crate::names::{SpiffeId, Workload};
use crate::write;

/// Certificates start an hour in the past so peers with slow clocks accept them.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(3600);
const DEFAULT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Default for Validity {
    /// From an hour ago (clock skew) for a year.
    fn default() -> Self {
        let now = SystemTime::now();
        Validity {
            not_before: now - CLOCK_SKEW,
            not_after: now + DEFAULT_LIFETIME,
        }
    }
}

impl Validity {
    /// From an hour ago until `lifetime` from now.
    pub fn for_duration(lifetime: Duration) -> Self {
        let now = SystemTime::now();
        Validity {
            not_before: now - CLOCK_SKEW,
            not_after: now + lifetime,
        }
    }
}

/// An issued certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Leaf {
    /// The leaf certificate followed by the CA certificate.
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[secret key elided]")
            .finish()
    }
}

impl Leaf {
    /// Writes `<workload>.pem` (0644), `<workload>-key.pem` (0600) and, for
    /// convenience, the CA certificate as `ca.pem`.
    ///
    /// Refuses to replace existing files unless `force`; an existing `ca.pem`
    /// with the same contents is left alone.
    pub fn save(&self, dir: &Path, workload: Workload, force: bool) -> Result<(), CaError> {
        let cert_path = dir.join(format!("{workload}.pem"));
        let key_path = dir.join(format!("{workload}-key.pem"));
        let ca_path = dir.join(CA_CERT_FILE);
        let ca_pem = self.ca_pem();
        let ca_current = std::fs::read_to_string(&ca_path).ok();
        let write_ca = ca_pem.is_some() && ca_current.as_deref() != ca_pem;
        if !force {
            write::ensure_absent(&[&cert_path, &key_path])?;
            if write_ca {
                write::ensure_absent(&[&ca_path])?;
            }
        }
        write::write(&key_path, self.key_pem.as_bytes(), write::SECRET, force)?;
        write::write(&cert_path, self.cert_pem.as_bytes(), write::PUBLIC, force)?;
        if let (true, Some(ca_pem)) = (write_ca, ca_pem) {
            write::write(&ca_path, ca_pem.as_bytes(), write::PUBLIC, force)?;
        }
        Ok(())
    }

    /// The certificates after the leaf in `cert_pem`: the CA chain.
    fn ca_pem(&self) -> Option<&str> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        let first = self.cert_pem.find(BEGIN)?;
        let after = first + BEGIN.len();
        let second = self.cert_pem[after..].find(BEGIN)?;
        Some(&self.cert_pem[after + second..])
    }
}

/// Signs a workload certificate for `id` with `issuer`.
pub(crate) fn issue(
    issuer: &Issuer<'static, KeyPair>,
    ca_pem: &str,
    id: &SpiffeId,
    workload: Workload,
    validity: &Validity,
) -> Result<Leaf, CaError> {
    let mut params = base_params(validity, &id.to_string())?;
    params
        .distinguished_name
        .push(DnType::CommonName, workload.as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every workload is both a TLS server and a TLS client on its links.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = new_key()?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| CaError::Generate {
            what: "sign the workload certificate",
            source,
        })?;
    Ok(Leaf {
        cert_pem: format!("{}{ca_pem}", cert.pem()),
        key_pem: key.serialize_pem(),
    })
}

/// Parameters shared by CA and leaf: validity, organisation and the URI SAN.
pub(crate) fn base_params(validity: &Validity, uri: &str) -> Result<CertificateParams, CaError> {
    if validity.not_after <= validity.not_before {
        return Err(CaError::Validity {
            not_before: validity.not_before,
            not_after: validity.not_after,
        });
    }
    let mut params = ca::empty_params()?;
    params.not_before = OffsetDateTime::from(validity.not_before);
    params.not_after = OffsetDateTime::from(validity.not_after);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "causeway");
    params.subject_alt_names = vec![ca::uri_san(uri)?];
    Ok(params)
}

/// A fresh ECDSA P-256 key (aws-lc-rs).
pub(crate) fn new_key() -> Result<KeyPair, CaError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| CaError::Generate {
        what: "generate an ECDSA P-256 key",
        source,
    })
}
