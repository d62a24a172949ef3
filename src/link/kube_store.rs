//! Kubernetes mode: the link [`Store`]'s files live in one Secret
//! (`federation.kubernetes.links_secret`), one key per file
//! (`tokens/<id>.json` is `token-<id>.json`: keys cannot hold '/'). Every
//! pod mounts the Secret at `<state_dir>/links` and follows it as in static
//! mode; writers (the link endpoint, the CLI) change it through the API.
//!
//! A write lays the Secret's files out in a private scratch directory, runs
//! the unchanged [`Store`] operation there, and replaces the Secret with the
//! resourceVersion it read. A 409 (someone wrote in between) reads again and
//! reruns the operation, so concurrent writers never lose each other's
//! changes: that is the lock between the CLI and the running process.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::store::{Store, StoreError};
use crate::config::Config;

/// Writes that meet a newer version before giving up.
const TRIES: usize = 8;
const TOKEN_PREFIX: &str = "token-";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("cannot {verb} Secret {secret}: {reason}{hint}")]
    Api {
        verb: &'static str,
        secret: String,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "Secret {secret} changed under {TRIES} writes in a row (other writers are busy); try again"
    )]
    Contended { secret: String },
    #[error(
        "Secret {secret}: key {key:?} is not a link file (links.yaml, <peer>-ca.pem, <peer>-ca-next.pem, token-<id>.json); remove it"
    )]
    Key { secret: String, key: String },
    #[error("kubernetes: {0}")]
    Client(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where link changes go: the Store's files, or the links Secret.
pub enum Writer {
    Files(Store),
    Secret(Arc<SecretStore>),
}

impl Writer {
    /// The Secret when the config has `federation.kubernetes`, else the
    /// files under `federation.state_dir`.
    pub async fn for_config(cfg: &Config) -> Result<Self, SecretError> {
        let store = Store::new(cfg.federation.state_dir.as_deref())?;
        let Some(k) = &cfg.federation.kubernetes else {
            return Ok(Self::Files(store));
        };
        let client = causeway_federation::kube_client(k.api_url.as_deref())
            .await
            .map_err(|e| SecretError::Client(e.to_string()))?;
        let api = Api::namespaced(client, &k.namespace);
        let state_dir = store.dir().parent().unwrap_or(store.dir());
        let secret = SecretStore::new(api, &k.namespace, &k.links_secret, state_dir)?;
        Ok(Self::Secret(Arc::new(secret)))
    }

    /// The Store operations run on (in Kubernetes mode, the scratch copy as
    /// of the last write: read through `write` for fresh files).
    pub fn store(&self) -> &Store {
        match self {
            Self::Files(s) => s,
            Self::Secret(s) => &s.scratch,
        }
    }

    /// Runs `op` and saves what it changed.
    pub async fn write<T>(&self, mut op: impl FnMut(&Store) -> T) -> Result<T, SecretError> {
        match self {
            Self::Files(s) => Ok(op(s)),
            Self::Secret(s) => s.write(op).await,
        }
    }
}

/// The links Secret and a private scratch copy of its files.
pub struct SecretStore {
    api: Api<Secret>,
    /// namespace/name, for messages.
    id: String,
    name: String,
    scratch: Store,
    _dir: tempfile::TempDir,
    /// One write at a time through the scratch directory.
    writing: tokio::sync::Mutex<()>,
}

impl SecretStore {
    /// The scratch copy goes in a new directory under `scratch_in` (the
    /// state_dir: the root filesystem may be read-only).
    pub fn new(
        api: Api<Secret>,
        namespace: &str,
        name: &str,
        scratch_in: &Path,
    ) -> Result<Self, SecretError> {
        std::fs::create_dir_all(scratch_in).map_err(io(scratch_in))?;
        let dir = tempfile::Builder::new()
            .prefix(".links-scratch")
            .tempdir_in(scratch_in)
            .map_err(io(scratch_in))?;
        Ok(Self {
            api,
            id: format!("{namespace}/{name}"),
            name: name.to_owned(),
            scratch: Store::new(Some(dir.path()))?,
            _dir: dir,
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// The scratch Store (what `write` lays out and reads back).
    pub fn scratch(&self) -> &Store {
        &self.scratch
    }

    /// Reads the Secret, runs `op` on its files, and replaces the Secret if
    /// they changed (creates it if absent). On a conflict `op` runs again on
    /// the newer files, so it must not count anything outside the Store.
    pub async fn write<T>(&self, mut op: impl FnMut(&Store) -> T) -> Result<T, SecretError> {
        let _one = self.writing.lock().await;
        for _ in 0..TRIES {
            let current = self
                .api
                .get_opt(&self.name)
                .await
                .map_err(self.err("get"))?;
            let before = files_of(current.as_ref(), &self.id)?;
            lay_out(self.scratch.dir(), &before)?;
            let out = op(&self.scratch);
            let after = read_files(self.scratch.dir())?;
            if after == before {
                return Ok(out);
            }
            if self.save(current, after).await? {
                return Ok(out);
            }
        }
        Err(SecretError::Contended {
            secret: self.id.clone(),
        })
    }

    /// Replaces (or creates) the Secret with `files`; false when another
    /// writer got in first (409: read again).
    async fn save(
        &self,
        current: Option<Secret>,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<bool, SecretError> {
        let pp = PostParams::default();
        let (verb, result) = match current {
            Some(mut s) => {
                s.data = Some(to_data(files));
                s.string_data = None;
                ("update", self.api.replace(&self.name, &pp, &s).await)
            }
            None => (
                "create",
                self.api.create(&pp, &self.new_secret(files)).await,
            ),
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(self.err(verb)(e)),
        }
    }

    fn new_secret(&self, files: BTreeMap<String, Vec<u8>>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".into(),
                    "causeway".into(),
                )])),
                ..Default::default()
            },
            data: Some(to_data(files)),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    fn err(&self, verb: &'static str) -> impl FnOnce(kube::Error) -> SecretError + '_ {
        move |e| {
            let (reason, code) = match &e {
                kube::Error::Api(s) => (s.message.clone(), s.code),
                other => (other.to_string(), 0),
            };
            let hint = match code {
                403 => {
                    " (forbidden: the chart's Role grants get/create/update on it to the federation's ServiceAccount; run the CLI in the federation pod)"
                }
                404 => " (does the namespace exist?)",
                413 | 422 => {
                    " (a Secret holds at most 1 MiB: unlink peers or let old tokens expire)"
                }
                _ => "",
            };
            SecretError::Api {
                verb,
                secret: self.id.clone(),
                reason,
                hint,
            }
        }
    }
}

fn to_data(files: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, ByteString> {
    files.into_iter().map(|(k, v)| (k, ByteString(v))).collect()
}

/// The Secret's data as files (by Secret key); an unknown key is an error.
fn files_of(s: Option<&Secret>, id: &str) -> Result<BTreeMap<String, Vec<u8>>, SecretError> {
    let data = s.and_then(|s| s.data.clone()).unwrap_or_default();
    for key in data.keys() {
        if path_of(key).is_none() {
            return Err(SecretError::Key {
                secret: id.to_owned(),
                key: key.clone(),
            });
        }
    }
    Ok(data.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Where a Secret key's file lives under the Store's directory.
pub fn path_of(key: &str) -> Option<String> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !valid {
        return None;
    }
    match key.strip_prefix(TOKEN_PREFIX) {
        Some(rest) => Some(format!("tokens/{rest}")),
        None => Some(key.to_owned()),
    }
}

/// The Secret key for a file under the Store's directory.
pub fn key_of(path: &str) -> Option<String> {
    let key = match path.strip_prefix("tokens/") {
        Some(rest) => format!("{TOKEN_PREFIX}{rest}"),
        None if path.starts_with(TOKEN_PREFIX) => return None,
        None => path.to_owned(),
    };
    path_of(&key).filter(|p| p == path).map(|_| key)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Replaces the contents of `dir` with `files` (by Secret key).
fn lay_out(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), StoreError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir.join("tokens")).map_err(io(dir))?;
    for (key, bytes) in files {
        if let Some(rel) = path_of(key) {
            super::store::write_atomic(&dir.join(rel), bytes)?;
        }
    }
    Ok(())
}

/// The link files under `dir`, by Secret key (temporary files skipped).
fn read_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    let mut out = BTreeMap::new();
    for sub in ["", "tokens/"] {
        let d = dir.join(sub);
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let rel = format!("{sub}{}", entry.file_name().to_string_lossy());
            let is_file = entry.file_type().map_err(io(&d))?.is_file();
            if let (true, Some(key)) = (is_file, key_of(&rel)) {
                let bytes = std::fs::read(entry.path()).map_err(io(&entry.path()))?;
                out.insert(key, bytes);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_keys_map_both_ways_and_odd_names_are_refused() {
        for (path, key) in [
            ("links.yaml", "links.yaml"),
            ("west-ca.pem", "west-ca.pem"),
            ("west-ca-next.pem", "west-ca-next.pem"),
            (
                "tokens/0123456789abcdef.json",
                "token-0123456789abcdef.json",
            ),
        ] {
            assert_eq!(key_of(path).as_deref(), Some(key), "{path}");
            assert_eq!(path_of(key).as_deref(), Some(path), "{key}");
        }
        for path in [".tmpAb12", "tokens/a/b", "token-x.json", "a b", "..data"] {
            assert_eq!(key_of(path), None, "{path}");
        }
        for key in ["", "..data", "a/b", "a b", &"x".repeat(254)] {
            assert_eq!(path_of(key), None, "{key}");
        }
    }

    #[test]
    fn a_layout_reads_back_the_same_and_skips_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = BTreeMap::from([
            ("links.yaml".to_owned(), b"peers: []\n".to_vec()),
            ("token-0123456789abcdef.json".to_owned(), b"{}".to_vec()),
        ]);
        lay_out(dir.path(), &files).unwrap();
        std::fs::write(dir.path().join(".tmpXYZ"), b"half").unwrap();
        assert_eq!(read_files(dir.path()).unwrap(), files);
        lay_out(dir.path(), &BTreeMap::new()).unwrap();
        assert!(read_files(dir.path()).unwrap().is_empty());
    }
}
