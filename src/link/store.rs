//! What linking keeps in `<federation.state_dir>/links/`:
//! - `tokens/<id>.json`: each issued token's secret hash, expiry and whether
//!   it was redeemed (written by `causeway token issue`, read by the running
//!   process at each redemption);
//! - `links.yaml`: the linked peers, which `causeway run` loads at start and
//!   follows while running;
//! - `<peer>-ca.pem`: each linked peer's CA bundle in force, and during a CA
//!   rotation `<peer>-ca-next.pem`, the bundle alone in force after the overlap;
//! - `rotation.yaml`: this cluster's own CA rotation, written by `causeway ca
//!   rotate` and told to every peer over the federation channel.
//!
//! Every file is replaced atomically (temp file, rename), so a reader never
//! sees half a file; each read-modify-write holds an advisory lock
//! (`links/.lock`), so the CLI and the running process lose no update.

use std::io::Write;
use std::path::{Path, PathBuf};

use causeway_catalog::ClusterId;
use causeway_identity::TrustDomain;
use serde::{Deserialize, Serialize};

use super::token::sha256_hex;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "federation.state_dir is not set: linking keeps its tokens and linked peers there; set it"
    )]
    NoStateDir,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message} (fix or remove the file)")]
    Parse { path: PathBuf, message: String },
}

/// Why a redemption was refused. Unknown and wrong secrets read the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("token refused: unknown token or wrong secret")]
    Refused,
    #[error("token already redeemed; ask for a new token")]
    Redeemed,
    #[error("token expired; ask for a new token")]
    Expired,
}

/// An issued token as the issuer keeps it: never the secret itself.
#[derive(Debug, Serialize, Deserialize)]
struct Issued {
    secret_sha256: String,
    expires: u64,
    redeemed: bool,
}

/// One linked peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkedPeer {
    pub name: ClusterId,
    pub trust_domain: TrustDomain,
    /// host:port of its federation listener.
    pub federation: String,
    /// host:port of its link endpoint (unlink, CA rotation).
    pub link: String,
    /// Unix seconds when the overlap of a CA rotation ends; until then both
    /// the old and the next bundle are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_until: Option<u64>,
}

impl LinkedPeer {
    /// Whether its CA rotation's overlap is over at `now`.
    pub fn rotation_due(&self, now: u64) -> bool {
        self.rotation_until.is_some_and(|until| now >= until)
    }

    /// The peer a link exchange's card describes.
    pub fn from_card(card: &super::wire::Card) -> Self {
        Self {
            name: card.cluster.clone(),
            trust_domain: card.trust_domain.clone(),
            federation: card.federation.clone(),
            link: card.link.clone(),
            rotation_until: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Links {
    #[serde(default)]
    pub peers: Vec<LinkedPeer>,
}

/// `<state_dir>/links`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Replaces `path` with `bytes` (mode 0600), creating its directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

/// How long a token's record outlives its expiry.
const KEEP_EXPIRED: u64 = 24 * 3600;

fn is_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Store {
    pub fn new(state_dir: Option<&Path>) -> Result<Self, StoreError> {
        let dir = state_dir.ok_or(StoreError::NoStateDir)?.join("links");
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn token_path(&self, id: &str) -> PathBuf {
        self.dir.join("tokens").join(format!("{id}.json"))
    }

    /// Registers a token: its secret's hash and expiry. Records of tokens
    /// expired for over a day go (until then a reuse still reads "redeemed").
    pub fn issue(&self, id: &str, secret: &str, expires: u64) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.prune(super::token::now_unix().saturating_sub(KEEP_EXPIRED));
        let rec = Issued {
            secret_sha256: sha256_hex(secret.as_bytes()),
            expires,
            redeemed: false,
        };
        let json = serde_json::to_vec(&rec).unwrap_or_default();
        write_atomic(&self.token_path(id), &json)
    }

    /// Checks a presented token and marks it redeemed.
    pub fn redeem(&self, id: &str, secret: &str, now: u64) -> Result<(), Refusal> {
        self.check(id, secret, now)?;
        self.consume(id).map_err(|e| {
            tracing::error!(error = %e, "cannot mark the token redeemed; refusing it");
            Refusal::Refused
        })
    }

    fn issued(&self, id: &str) -> Option<Issued> {
        is_id(id)
            .then(|| std::fs::read(self.token_path(id)).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<Issued>(&b).ok())
    }

    /// Checks a presented token without using it up: a link refused for
    /// another reason leaves it redeemable. The secret is compared in
    /// constant time; an unknown id costs the same comparison.
    pub fn check(&self, id: &str, secret: &str, now: u64) -> Result<(), Refusal> {
        let presented = sha256_hex(secret.as_bytes());
        let rec = self.issued(id);
        let known = rec.as_ref().map_or(&presented, |r| &r.secret_sha256);
        let equal = aws_lc_rs::constant_time::verify_slices_are_equal(
            known.as_bytes(),
            presented.as_bytes(),
        )
        .is_ok();
        let Some(rec) = rec.filter(|_| equal) else {
            return Err(Refusal::Refused);
        };
        if rec.redeemed {
            return Err(Refusal::Redeemed);
        }
        if now >= rec.expires {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// Marks a checked token redeemed.
    pub fn consume(&self, id: &str) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let path = self.token_path(id);
        let mut rec = self.issued(id).ok_or_else(|| StoreError::Parse {
            path: path.clone(),
            message: "the token's record is gone or damaged".into(),
        })?;
        rec.redeemed = true;
        let json = serde_json::to_vec(&rec).unwrap_or_default();
        write_atomic(&path, &json)
    }

    /// Held through a read-modify-write: `causeway token issue` or `unlink
    /// --force` may write while the running process does.
    fn lock(&self) -> Result<std::fs::File, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    /// Removes the records of tokens that expired before `before`.
    pub fn prune(&self, before: u64) {
        let Ok(dir) = std::fs::read_dir(self.dir.join("tokens")) else {
            return;
        };
        for entry in dir.flatten() {
            let old = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Issued>(&b).ok())
                .is_some_and(|r| r.expires < before);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn links_path(&self) -> PathBuf {
        self.dir.join("links.yaml")
    }

    pub fn ca_path(&self, peer: &ClusterId) -> PathBuf {
        self.dir.join(format!("{peer}-ca.pem"))
    }

    pub fn next_ca_path(&self, peer: &ClusterId) -> PathBuf {
        self.dir.join(format!("{peer}-ca-next.pem"))
    }

    /// The linked peers (none when the file does not exist yet).
    pub fn links(&self) -> Result<Links, StoreError> {
        let path = self.links_path();
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Links::default()),
            other => other.map_err(io(&path))?,
        };
        serde_saphyr::from_str(&text).map_err(|e| StoreError::Parse {
            path,
            message: e.to_string(),
        })
    }

    fn save(&self, links: &Links) -> Result<(), StoreError> {
        let text = serde_saphyr::to_string(links).map_err(|e| StoreError::Parse {
            path: self.links_path(),
            message: e.to_string(),
        })?;
        write_atomic(&self.links_path(), text.as_bytes())
    }

    /// Adds (or replaces) a linked peer and its CA bundle.
    pub fn add(&self, peer: LinkedPeer, ca_bundle: &[u8]) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        write_atomic(&self.ca_path(&peer.name), ca_bundle)?;
        let mut links = self.links()?;
        links.peers.retain(|p| p.name != peer.name);
        links.peers.push(peer);
        self.save(&links)
    }

    /// Removes a linked peer and its files; returns whether it was linked.
    pub fn remove(&self, name: &ClusterId) -> Result<bool, StoreError> {
        let _lock = self.lock()?;
        let mut links = self.links()?;
        let before = links.peers.len();
        links.peers.retain(|p| p.name != *name);
        if links.peers.len() == before {
            return Ok(false);
        }
        self.save(&links)?;
        for path in [self.ca_path(name), self.next_ca_path(name)] {
            let _ = std::fs::remove_file(path);
        }
        Ok(true)
    }
}

#[path = "store_rotation.rs"]
mod rotation;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
