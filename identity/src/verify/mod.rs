//! Peer certificate verifiers: a webpki chain check against one peer's CA
//! bundle, then the SPIFFE ID check against that same peer's trust domain.
//!
//! rustls only sees a generic error; the detailed reason is logged here and
//! carried inside `CertificateError::Other` for callers that look.

use std::sync::Arc;

use causeway_catalog::ClusterId;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, Error, OtherError};

use crate::names::{SpiffeId, TrustDomain, Workload};
use crate::peers::PeerTrust;
use crate::san::{self, SanError};

mod client_cert;
mod server_cert;

pub(crate) use client_cert::PeerClientVerifier;
pub(crate) use server_cert::PeerServerVerifier;

/// Why a peer certificate was refused, with what was presented and expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("certificate is not signed by the CA of any configured peer (presented {presented})")]
    UnknownCa { presented: String },
    #[error(
        "peer {peer} presented a certificate not signed by its CA (presented {presented}; check the CA bundle configured for peer {peer})"
    )]
    NotSignedByPeer { peer: ClusterId, presented: String },
    #[error(
        "peer {peer} presented a certificate for trust domain {presented}; expected {expected} (check the CA bundle configured for peer {peer})"
    )]
    WrongTrustDomain {
        peer: ClusterId,
        presented: TrustDomain,
        expected: TrustDomain,
    },
    #[error("peer {peer} presented {presented}; expected {expected} (wrong workload certificate)")]
    WrongWorkload {
        peer: ClusterId,
        presented: SpiffeId,
        /// The accepted SPIFFE IDs, joined with " or ".
        expected: String,
    },
    #[error("peer {peer} presented a certificate without a usable SPIFFE ID: {source}")]
    NoSpiffeId { peer: ClusterId, source: SanError },
    #[error("certificate {presented} was rejected: {source}")]
    Rejected { presented: String, source: Error },
}

impl VerifyError {
    /// The detailed reason inside an error from a rustls handshake that one
    /// of our verifiers refused, e.g. to report it to an operator.
    pub fn from_rustls(err: &Error) -> Option<&VerifyError> {
        match err {
            Error::InvalidCertificate(CertificateError::Other(OtherError(e))) => e.downcast_ref(),
            _ => None,
        }
    }

    /// Logs the detail and turns it into the error rustls reports.
    fn into_rustls(self) -> Error {
        tracing::warn!(reason = %self, "rejected peer certificate");
        match self {
            // Keep webpki's own error (e.g. expired): it selects the right TLS alert.
            VerifyError::Rejected { source, .. } => source,
            other => CertificateError::Other(OtherError(Arc::new(other))).into(),
        }
    }
}

/// webpki's "this CA did not sign it": an unknown issuer, or one with our
/// issuer's name but another key (a regenerated CA).
fn not_signed(err: &Error) -> bool {
    matches!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)
    )
}

fn expected_ids(td: &TrustDomain, expect: &[Workload]) -> String {
    let ids: Vec<String> = expect
        .iter()
        .map(|w| SpiffeId::new(td.clone(), *w).to_string())
        .collect();
    ids.join(" or ")
}

/// The SAN check, after the chain check succeeded against `peer`'s bundle.
fn check_identity(
    peer: &PeerTrust,
    cert: &CertificateDer<'_>,
    expect: &[Workload],
) -> Result<SpiffeId, VerifyError> {
    let id = san::spiffe_id_of(cert).map_err(|source| VerifyError::NoSpiffeId {
        peer: peer.name.clone(),
        source,
    })?;
    if *id.trust_domain() != peer.trust_domain {
        return Err(VerifyError::WrongTrustDomain {
            peer: peer.name.clone(),
            presented: id.trust_domain().clone(),
            expected: peer.trust_domain.clone(),
        });
    }
    let named = |w: &Workload| id == SpiffeId::new(peer.trust_domain.clone(), *w);
    match expect.iter().find(|w| named(w)) {
        Some(_) => Ok(id),
        None => Err(VerifyError::WrongWorkload {
            peer: peer.name.clone(),
            presented: id,
            expected: expected_ids(&peer.trust_domain, expect),
        }),
    }
}
