//! Reading certificates and keys from PEM files, with errors that name the file.

use std::io;
use std::path::{Path, PathBuf};

use rustls::InconsistentKeys;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::names::TrustDomain;
use crate::san::SanError;

/// A certificate, key or CA bundle that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read {what} file {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what} file {} is empty", path.display())]
    Empty { what: &'static str, path: PathBuf },
    #[error("{what} file {} is not valid PEM: {source}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        source: pem::Error,
    },
    #[error(
        "{what} file {} has a -----BEGIN {label}----- block without its END line (is the file truncated or still being written?)",
        path.display()
    )]
    Truncated {
        what: &'static str,
        path: PathBuf,
        label: String,
    },
    #[error("{what} file {} has a malformed PEM line: {line:?}", path.display())]
    BadPemLine {
        what: &'static str,
        path: PathBuf,
        line: String,
    },
    #[error("{what} file {} holds no PEM data (no -----BEGIN ...----- line)", path.display())]
    NotPem { what: &'static str, path: PathBuf },
    #[error("{what} file {} holds no CERTIFICATE block (found: {found})", path.display())]
    NoCert {
        what: &'static str,
        path: PathBuf,
        found: String,
    },
    #[error(
        "key file {} holds no private key: expected a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block (found: {found})",
        path.display()
    )]
    NoKey { path: PathBuf, found: String },
    #[error("key file {} holds {count} private keys; it must hold exactly one", path.display())]
    SeveralKeys { path: PathBuf, count: usize },
    #[error("key file {} holds a key that cannot be used: {source}", path.display())]
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "the private key in {} does not match the certificate in {} (rotate both files together)",
        key.display(), cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("certificate file {}: {source}", path.display())]
    BadCert {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("certificate file {}: {source}", path.display())]
    Identity { path: PathBuf, source: SanError },
    #[error(
        "certificate file {} now names {new}, but this process runs as {running}; restart to change identity",
        path.display()
    )]
    IdentityChanged {
        path: PathBuf,
        running: String,
        new: String,
    },
    #[error("CA bundle {} holds a certificate that cannot be a trust anchor: {source}", path.display())]
    BadAnchor {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "CA bundle {} configured for peer {peer} is the CA of trust domain {found}; expected {expected} (check the CA bundle and trust domain configured for peer {peer})",
        path.display()
    )]
    BundleTrustDomain {
        peer: String,
        path: PathBuf,
        found: TrustDomain,
        expected: TrustDomain,
    },
}

/// Reads a whole file, refusing an empty one.
pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LoadError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// Every PEM section in `bytes`; an error if there are none.
fn sections(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<(SectionKind, Vec<u8>)>, LoadError> {
    let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| pem_error(what, path, source))?;
    if sections.is_empty() {
        return Err(LoadError::NotPem {
            what,
            path: path.to_owned(),
        });
    }
    Ok(sections)
}

/// rustls' PEM errors print byte arrays; say it in words where we can.
fn pem_error(what: &'static str, path: &Path, source: pem::Error) -> LoadError {
    let path = path.to_owned();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match source {
        pem::Error::MissingSectionEnd { end_marker } => LoadError::Truncated {
            what,
            path,
            label: text(&end_marker),
        },
        pem::Error::IllegalSectionStart { line } => LoadError::BadPemLine {
            what,
            path,
            line: text(&line),
        },
        source => LoadError::Pem { what, path, source },
    }
}

/// The kinds of sections found, for "found: ..." in errors.
fn kinds(sections: &[(SectionKind, Vec<u8>)]) -> String {
    let names: Vec<String> = sections.iter().map(|(k, _)| label(*k)).collect();
    names.join(", ")
}

fn label(kind: SectionKind) -> String {
    let s = match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => return format!("{kind:?}"),
    };
    s.to_owned()
}

/// All certificates in a PEM file, in file order; at least one.
pub(crate) fn certs(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let sections = sections(what, path, bytes)?;
    let found = kinds(&sections);
    let certs: Vec<_> = sections
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        return Err(LoadError::NoCert {
            what,
            path: path.to_owned(),
            found,
        });
    }
    Ok(certs)
}

/// The single private key in a PEM file.
pub(crate) fn private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, LoadError> {
    let sections = sections("key", path, bytes)?;
    let found = kinds(&sections);
    let mut keys: Vec<_> = sections
        .into_iter()
        .filter_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der))
        .collect();
    match keys.len() {
        0 => Err(LoadError::NoKey {
            path: path.to_owned(),
            found,
        }),
        1 => Ok(keys.remove(0)),
        count => Err(LoadError::SeveralKeys {
            path: path.to_owned(),
            count,
        }),
    }
}

/// Pairs a certificate chain with its private key, checking that they belong together.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, LoadError> {
    let signer = crate::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| LoadError::BadKey {
            path: key_path.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(LoadError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        // Some key types cannot report their public key; rustls accepts those too.
        Err(rustls::Error::InconsistentKeys(_)) => Ok(certified),
        Err(source) => Err(LoadError::BadCert {
            path: cert_path.to_owned(),
            source,
        }),
    }
}
