//! A cluster's certificate authority: created once (`causeway ca init`),
//! kept on disk, and used to issue the gateway and federation certificates.
//!
//! The CA certificate names its trust domain with a `spiffe://<td>` URI SAN,
//! so loading it back needs no side file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use causeway_catalog::ClusterId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;

use crate::leaf::{self, Leaf, Validity};
use crate::names::{TrustDomain, Workload};
use crate::pem::{self, LoadError};
use crate::san::{self, SanError};
use crate::write::{self, WriteError};

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// How long a CA is valid: ten years, so clusters are not cut off by surprise.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A CA that cannot be created, loaded, saved or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("cannot {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("CA key file {} cannot be used for signing: {source}", path.display())]
    Key { path: PathBuf, source: rcgen::Error },
    #[error("CA certificate {}: {source}", path.display())]
    Identity { path: PathBuf, source: SanError },
    #[error(
        "CA certificate {} names no trust domain (no spiffe://<trust-domain> URI SAN); create CAs with `causeway ca init`",
        path.display()
    )]
    NoTrustDomain { path: PathBuf },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(
        "certificate validity is empty: not_after {not_after:?} is not after not_before {not_before:?}"
    )]
    Validity {
        not_before: SystemTime,
        not_after: SystemTime,
    },
}

/// A cluster's CA: its certificate and the key that signs leaves.
pub struct Ca {
    trust_domain: TrustDomain,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA for `cluster`, valid for ten years.
    pub fn generate(cluster: &ClusterId, td: &TrustDomain) -> Result<Ca, CaError> {
        let now = SystemTime::now();
        let validity = Validity {
            not_before: now - leaf::CLOCK_SKEW,
            not_after: now + CA_LIFETIME,
        };
        let mut params = leaf::base_params(&validity, &td.uri())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("causeway {cluster} CA"));
        // Path length 0: this CA signs leaves only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = leaf::new_key()?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| CaError::Generate {
                what: "sign the CA certificate",
                source,
            })?;
        Ok(Ca {
            trust_domain: td.clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `dir/ca.pem` and `dir/ca-key.pem`.
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        let cert_bytes = pem::read("CA certificate", &cert_path)?;
        let key_bytes = pem::read("CA key", &key_path)?;
        let ca_der = pem::certs("CA certificate", &cert_path, &cert_bytes)?.remove(0);
        let key_der = pem::private_key(&key_path, &key_bytes)?;
        // Refuse a key that does not belong to the CA certificate (the first one).
        pem::certified_key(
            vec![ca_der.clone()],
            key_der.clone_key(),
            &cert_path,
            &key_path,
        )?;
        let trust_domain = ca_domain(&cert_path, &ca_der)?;
        let key = KeyPair::try_from(&key_der).map_err(|source| CaError::Key {
            path: key_path,
            source,
        })?;
        let issuer =
            Issuer::from_ca_cert_der(&ca_der, key).map_err(|source| CaError::Generate {
                what: "use the CA certificate as an issuer",
                source,
            })?;
        Ok(Ca {
            trust_domain,
            cert_pem: String::from_utf8_lossy(&cert_bytes).into_owned(),
            issuer,
        })
    }

    /// Writes `dir/ca.pem` (0644) and `dir/ca-key.pem` (0600).
    ///
    /// Refuses to replace either file unless `force`: a replaced CA key
    /// invalidates every certificate the cluster has issued.
    pub fn save(&self, dir: &Path, force: bool) -> Result<(), CaError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        if !force {
            write::ensure_absent(&[&cert_path, &key_path])?;
        }
        let key_pem = self.issuer.key().serialize_pem();
        write::write(&key_path, key_pem.as_bytes(), write::SECRET, force)?;
        write::write(&cert_path, self.cert_pem.as_bytes(), write::PUBLIC, force)?;
        Ok(())
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA certificate, PEM: what peers configure as this cluster's CA bundle.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `workload` in this CA's trust domain.
    pub fn issue(&self, workload: Workload, validity: Validity) -> Result<Leaf, CaError> {
        let id = crate::SpiffeId::new(self.trust_domain.clone(), workload);
        leaf::issue(&self.issuer, &self.cert_pem, &id, workload, &validity)
    }
}

/// The trust domain a CA certificate names; causeway CAs always name one.
fn ca_domain(path: &Path, cert: &CertificateDer<'_>) -> Result<TrustDomain, CaError> {
    san::ca_trust_domain(cert)
        .map_err(|source| CaError::Identity {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| CaError::NoTrustDomain {
            path: path.to_owned(),
        })
}

/// Kept here so `rcgen` types stay out of the public API.
pub(crate) fn uri_san(uri: &str) -> Result<SanType, CaError> {
    let ia5 = uri.try_into().map_err(|source| CaError::Generate {
        what: "encode the URI SAN",
        source,
    })?;
    Ok(SanType::URI(ia5))
}

pub(crate) fn empty_params() -> Result<CertificateParams, CaError> {
    CertificateParams::new(Vec::<String>::new()).map_err(|source| CaError::Generate {
        what: "prepare certificate parameters",
        source,
    })
}
