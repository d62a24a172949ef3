//! Our own certificate and key, re-read when the files change.
//!
//! New handshakes pick up the newest certificate through the rustls resolver
//! traits; connections already open keep the certificate they started with.
//! A bad new file never replaces a good certificate: it is logged and the old
//! one stays in force until the files are fixed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::names::SpiffeId;
use crate::pem::{self, LoadError};
use crate::san;

/// The fastest `spawn_watch` polls, whatever it is asked.
const MIN_POLL: Duration = Duration::from_millis(10);

/// Where a workload's certificate chain and private key live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// The certificate in force and the identity it names.
#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    id: SpiffeId,
    not_after: Option<SystemTime>,
}

/// The bytes of both files as last read, to notice changes cheaply and exactly.
#[derive(Default, PartialEq, Eq)]
struct Seen {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Sizes only: the key's bytes must never reach a log line.
impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("cert_bytes", &self.cert.len())
            .field("key", &"[secret key elided]")
            .finish()
    }
}

/// A certificate and key loaded from files and reloaded when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    paths: CertPaths,
    current: ArcSwap<Current>,
    /// Contents in force, and contents last rejected (not to log them twice).
    seen: Mutex<(Seen, Option<Seen>)>,
}

impl ReloadingCert {
    /// Loads both files; fails with an error naming the bad file.
    pub fn load(paths: CertPaths) -> Result<Arc<Self>, LoadError> {
        let seen = read(&paths)?;
        let current = parse(&paths, &seen)?;
        tracing::info!(
            id = %current.id,
            cert = %paths.cert.display(),
            "loaded certificate"
        );
        Ok(Arc::new(ReloadingCert {
            paths,
            current: ArcSwap::from_pointee(current),
            seen: Mutex::new((seen, None)),
        }))
    }

    /// The SPIFFE ID our certificate names (it cannot change while running).
    pub fn spiffe_id(&self) -> SpiffeId {
        self.current.load().id.clone()
    }

    /// The certificate and key new handshakes use.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.load().key)
    }

    /// When the certificate in force expires (for metrics and renewal alerts).
    pub fn not_after(&self) -> Option<SystemTime> {
        self.current.load().not_after
    }

    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// Re-reads the files; returns whether a new certificate is now in force.
    ///
    /// On a bad new file the old certificate stays in force and the error is
    /// returned (and logged) once; the same bad contents then report `Ok(false)`.
    pub fn reload_if_changed(&self) -> Result<bool, LoadError> {
        let new = read(&self.paths)?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if new == seen.0 || seen.1.as_ref() == Some(&new) {
            return Ok(false);
        }
        match self.replace(&new) {
            Ok(()) => {
                *seen = (new, None);
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "keeping the current certificate: the new files are not usable");
                seen.1 = Some(new);
                Err(e)
            }
        }
    }

    fn replace(&self, new: &Seen) -> Result<(), LoadError> {
        let next = parse(&self.paths, new)?;
        let running = self.current.load().id.clone();
        if next.id != running {
            return Err(LoadError::IdentityChanged {
                path: self.paths.cert.clone(),
                running: running.to_string(),
                new: next.id.to_string(),
            });
        }
        self.current.store(Arc::new(next));
        tracing::info!(id = %running, cert = %self.paths.cert.display(), "reloaded rotated certificate");
        Ok(())
    }

    /// Polls the files every `every` and reloads them when they change.
    ///
    /// Read errors (a file briefly missing during rotation) are logged and
    /// retried on the next tick. The task ends when the handle is aborted or
    /// every other reference to this certificate is gone.
    pub fn spawn_watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            // tokio's interval panics on a zero period (e.g. a config typo).
            let mut tick = tokio::time::interval(every.max(MIN_POLL));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else {
                    return;
                };
                // parse() errors are logged by reload_if_changed itself.
                if let Err(e @ LoadError::Read { .. }) = this.reload_if_changed() {
                    tracing::warn!(error = %e, "cannot re-read the certificate files");
                }
            }
        })
    }
}

fn read(paths: &CertPaths) -> Result<Seen, LoadError> {
    let cert = pem::read("certificate", &paths.cert)?;
    let key = pem::read("key", &paths.key)?;
    Ok(Seen { cert, key })
}

fn parse(paths: &CertPaths, seen: &Seen) -> Result<Current, LoadError> {
    let chain = pem::certs("certificate", &paths.cert, &seen.cert)?;
    let key = pem::private_key(&paths.key, &seen.key)?;
    let id = san::spiffe_id_of(&chain[0]).map_err(|source| LoadError::Identity {
        path: paths.cert.clone(),
        source,
    })?;
    let not_after = san::not_after(&chain[0]);
    let key = pem::certified_key(chain, key, &paths.cert, &paths.key)?;
    // Still usable (a renewal may be on its way), but peers will refuse it.
    if not_after.is_some_and(|t| t <= SystemTime::now()) {
        tracing::warn!(%id, cert = %paths.cert.display(), "certificate has expired; peers will reject it until it is renewed");
    }
    Ok(Current {
        key: Arc::new(key),
        id,
        not_after,
    })
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified_key())
    }
}

impl ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_paths_config_is_strict() {
        let ok: CertPaths =
            serde_json::from_str(r#"{"cert": "a.pem", "key": "a-key.pem"}"#).unwrap();
        assert_eq!(ok.key, PathBuf::from("a-key.pem"));
        let err = serde_json::from_str::<CertPaths>(r#"{"cert": "a", "key": "b", "ca": "c"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `ca`"), "{err}");
        assert!(serde_json::from_str::<CertPaths>(r#"{"cert": "a"}"#).is_err());
    }
}
