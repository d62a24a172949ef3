//! Which side of a mutual TLS handshake refused whom, and why, in words: our
//! check of the peer's certificate (the same verifier the link uses), or the
//! peer's check of ours (the TLS alert it sent).

use std::path::Path;

use causeway_catalog::ClusterId;
use causeway_identity::{VerifyError, Workload};
use rustls::{AlertDescription, CertificateError};

use super::report::Problem;

/// One link being checked: who we are, who they are, what we trust them with.
pub(super) struct Link<'a> {
    pub us: &'a ClusterId,
    pub our_td: &'a str,
    pub peer: &'a ClusterId,
    pub what: Workload,
    pub bundle: &'a Path,
}

/// Why our verifier refused the peer's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    NotSigned,
    TrustDomain,
    Workload,
    Expired,
    NotYetValid,
    Other,
}

impl Refusal {
    /// From the error a rustls handshake returned.
    pub fn of(err: &rustls::Error) -> Refusal {
        if let Some(v) = VerifyError::from_rustls(err) {
            return match v {
                VerifyError::NotSignedByPeer { .. } | VerifyError::UnknownCa { .. } => {
                    Refusal::NotSigned
                }
                VerifyError::WrongTrustDomain { .. } => Refusal::TrustDomain,
                VerifyError::WrongWorkload { .. } | VerifyError::NoSpiffeId { .. } => {
                    Refusal::Workload
                }
                _ => Refusal::Other,
            };
        }
        match err {
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => Refusal::Expired,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            ) => Refusal::NotYetValid,
            _ => Refusal::Other,
        }
    }

    /// From the text of an error (QUIC keeps only the text of the rustls error).
    pub fn of_text(text: &str) -> Refusal {
        let t = text.to_ascii_lowercase();
        if t.contains("not signed by") {
            Refusal::NotSigned
        } else if t.contains("trust domain") {
            Refusal::TrustDomain
        } else if t.contains("wrong workload") || t.contains("spiffe id") {
            Refusal::Workload
        } else if t.contains("notvalidyet") || t.contains("not valid yet") {
            Refusal::NotYetValid
        } else if t.contains("expired") {
            Refusal::Expired
        } else {
            Refusal::Other
        }
    }
}

/// We refused their certificate.
pub(super) fn ours_rejects(l: &Link, why: Refusal, text: &str) -> Problem {
    let (peer, what, bundle) = (l.peer, l.what, l.bundle.display());
    let head = format!("our CA bundle for {peer} ({bundle}) rejects {peer}'s {what} certificate");
    match why {
        Refusal::NotSigned => Problem::new(
            format!("{head}: it is not signed by that CA (wrong CA: {text})"),
            format!(
                "replace {bundle} with {peer}'s current CA certificate (ca.pem from {peer}'s `causeway ca init`), or reissue {peer}'s {what} certificate from the CA in that bundle"
            ),
        ),
        Refusal::TrustDomain => Problem::new(
            format!("{head}: it names another trust domain ({text})"),
            format!(
                "set peers.{peer}.trust_domain to the trust domain {peer} really uses, or issue {peer}'s certificate for the configured one"
            ),
        ),
        Refusal::Workload => Problem::new(
            format!("{head}: it is not a {what} certificate ({text})"),
            format!(
                "point the address at {peer}'s {what} listener, and issue it with `causeway ca issue --workload {what}` on {peer}"
            ),
        ),
        Refusal::Expired => Problem::new(
            format!("{head}: it has expired by our clock ({text})"),
            format!(
                "renew it on {peer}: `causeway ca issue --workload {what} --force`; if it should still be valid, our clock is ahead: sync it"
            ),
        ),
        Refusal::NotYetValid => Problem::new(
            format!("{head}: it is not valid yet by our clock: clock skew ({text})"),
            format!("sync the clocks of this host and {peer} (chrony, timedatectl)"),
        ),
        Refusal::Other => Problem::new(
            format!("{head}: {text}"),
            format!("check {bundle} and {peer}'s {what} certificate"),
        ),
    }
}

/// They refused ours, saying so with a TLS alert.
pub(super) fn theirs_rejects(l: &Link, alert: AlertDescription) -> Problem {
    let (peer, us, what, td) = (l.peer, l.us, l.what, l.our_td);
    let head = format!("{peer} rejected our {what} certificate (TLS alert {alert:?})");
    if alert == AlertDescription::CertificateExpired {
        return Problem::new(
            format!("{head}: by {peer}'s clock it has expired or is not valid yet"),
            format!(
                "renew our {what} certificate (`causeway ca issue --workload {what} --force`), or sync the clocks of this host and {peer}"
            ),
        );
    }
    Problem::new(
        format!(
            "{head}: {peer}'s CA bundle for {us} does not accept it (wrong CA), or {peer} does not list {us} as a peer with trust domain {td}"
        ),
        format!(
            "on {peer}, set peers.{us}.ca to our CA certificate (ca.pem) and peers.{us}.trust_domain to {td}; or issue our {what} certificate from the CA {peer} trusts for {us}"
        ),
    )
}

/// They closed the connection after the handshake without an alert.
pub(super) fn theirs_closes(l: &Link, how: &str) -> Problem {
    let (peer, us) = (l.peer, l.us);
    Problem::new(
        format!("{peer} closed the connection after the TLS handshake ({how})"),
        format!(
            "look at {peer}'s log for the reason; check that {peer} lists {us} in its peers with our CA"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link<'a>(us: &'a ClusterId, peer: &'a ClusterId) -> Link<'a> {
        Link {
            us,
            our_td: "alpha.dev.causeway",
            peer,
            what: Workload::Federation,
            bundle: Path::new("/b/ca.pem"),
        }
    }

    #[test]
    fn names_the_side_and_the_reason() {
        let (a, b) = (
            ClusterId::new("alpha").unwrap(),
            ClusterId::new("bravo").unwrap(),
        );
        let l = link(&a, &b);
        let p = ours_rejects(&l, Refusal::NotSigned, "x");
        assert!(
            p.cause.contains("our CA bundle for bravo (/b/ca.pem)"),
            "{}",
            p.cause
        );
        assert!(p.cause.contains("wrong CA") && p.fix.contains("replace /b/ca.pem"));
        let p = theirs_rejects(&l, AlertDescription::BadCertificate);
        assert!(
            p.cause
                .starts_with("bravo rejected our federation certificate")
        );
        assert!(p.fix.contains("peers.alpha.ca"));
        let p = theirs_rejects(&l, AlertDescription::CertificateExpired);
        assert!(p.cause.contains("expired"));
    }

    #[test]
    fn classifies_rustls_errors_and_text() {
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(Refusal::of(&expired), Refusal::Expired);
        let early = rustls::Error::InvalidCertificate(CertificateError::NotValidYet);
        assert_eq!(Refusal::of(&early), Refusal::NotYetValid);
        let text =
            "invalid peer certificate: peer bravo presented a certificate not signed by its CA";
        assert_eq!(Refusal::of_text(text), Refusal::NotSigned);
        assert_eq!(
            Refusal::of_text("certificate NotValidYet"),
            Refusal::NotYetValid
        );
        assert_eq!(Refusal::of_text("boom"), Refusal::Other);
    }
}
