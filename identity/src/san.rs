//! Reading the SPIFFE ID out of an X.509 certificate's URI SAN.
//!
//! The X.509 SVID rules apply: exactly one URI SAN, and it is the identity.
//! A second URI would make "which identity is this?" ambiguous, so it is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::names::{IdError, SpiffeId, TrustDomain};

/// A certificate whose SPIFFE identity cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SanError {
    #[error("the certificate is not valid X.509 DER: {source}")]
    Parse { source: X509Error },
    #[error(
        "the certificate has no URI SAN; causeway certificates carry spiffe://<trust-domain>/<workload> (issue them with `causeway ca issue`)"
    )]
    NoUri,
    #[error("the certificate has {} URI SANs ({}); a SPIFFE certificate carries exactly one", uris.len(), uris.join(", "))]
    SeveralUris { uris: Vec<String> },
    #[error("the certificate's URI SAN is not a usable SPIFFE ID: {source}")]
    BadId { source: IdError },
}

/// The workload SPIFFE ID a (leaf) certificate names.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Result<SpiffeId, SanError> {
    let uri = single_uri(cert)?;
    SpiffeId::parse(&uri).map_err(|source| SanError::BadId { source })
}

/// The trust domain a CA certificate names with `spiffe://<td>`, if it names one.
pub(crate) fn ca_trust_domain(cert: &CertificateDer<'_>) -> Result<Option<TrustDomain>, SanError> {
    let uri = match single_uri(cert) {
        Ok(uri) => uri,
        Err(SanError::NoUri) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(td) = uri.strip_prefix("spiffe://") else {
        return Ok(None);
    };
    let td = TrustDomain::new(td).map_err(|source| SanError::BadId { source })?;
    Ok(Some(td))
}

/// What a certificate claims to be, for error messages: its URI SAN(s) or subject.
pub(crate) fn describe(cert: &CertificateDer<'_>) -> String {
    match uris(cert) {
        Ok(uris) if !uris.is_empty() => uris.join(", "),
        Ok(_) => subject(cert).map_or_else(
            || "a certificate without a URI SAN".to_owned(),
            |s| format!("a certificate without a URI SAN (subject {s})"),
        ),
        Err(e) => format!("an unreadable certificate ({e})"),
    }
}

/// When a certificate stops being valid, if it can be read.
pub(crate) fn not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    validity_of(cert).map(|v| v.not_after)
}

/// When a certificate is valid (`causeway doctor` reports expiry and clock
/// skew with it); `None` if it cannot be read or predates 1970.
pub fn validity_of(cert: &CertificateDer<'_>) -> Option<crate::Validity> {
    let parsed = parse(cert).ok()?;
    let at = |secs: i64| Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?));
    Some(crate::Validity {
        not_before: at(parsed.validity().not_before.timestamp())?,
        not_after: at(parsed.validity().not_after.timestamp())?,
    })
}

fn single_uri(cert: &CertificateDer<'_>) -> Result<String, SanError> {
    let mut uris = uris(cert)?;
    match uris.len() {
        0 => Err(SanError::NoUri),
        1 => Ok(uris.remove(0)),
        _ => Err(SanError::SeveralUris { uris }),
    }
}

fn uris(cert: &CertificateDer<'_>) -> Result<Vec<String>, SanError> {
    let parsed = parse(cert)?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|source| SanError::Parse { source })?;
    let Some(san) = san else {
        return Ok(Vec::new());
    };
    let uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        });
    Ok(uris.collect())
}

fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    parse(cert).ok().map(|c| c.subject().to_string())
}

fn parse<'a>(cert: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, SanError> {
    X509Certificate::from_der(cert.as_ref())
        .map(|(_, parsed)| parsed)
        .map_err(|e| SanError::Parse { source: e.into() })
}
