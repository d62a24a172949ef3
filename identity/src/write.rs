//! Writing certificate and key files: atomically, with the right mode, and
//! without clobbering anything unless asked to.
//!
//! Files are written to a temporary name in the same directory and then moved
//! into place, so a process watching them (see `ReloadingCert`) never reads a
//! half-written file. Without `force` the move is a hard link, which fails if
//! the target exists, so two writers cannot silently overwrite each other.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode for certificates, which are public.
pub(crate) const PUBLIC: u32 = 0o644;
/// Mode for private keys: readable by the owner only.
pub(crate) const SECRET: u32 = 0o600;

/// A file that could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    #[error("{} already exists; use --force to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Refuses early, before anything is written, if any of `paths` exists.
pub(crate) fn ensure_absent(paths: &[&Path]) -> Result<(), WriteError> {
    match paths.iter().find(|p| p.exists()) {
        Some(path) => Err(WriteError::Exists {
            path: path.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Writes `contents` to `path` with `mode` (creating its directory), replacing it only if `force`.
pub(crate) fn write(
    path: &Path,
    contents: &[u8],
    mode: u32,
    force: bool,
) -> Result<(), WriteError> {
    let io_err = |source| WriteError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err)?;
    }
    let tmp = temp_name(path);
    write_temp(&tmp, contents, mode).map_err(io_err)?;
    let placed = if force {
        fs::rename(&tmp, path)
    } else {
        fs::hard_link(&tmp, path)
    };
    // The temporary name is gone after a rename; after a link it must go too.
    let _ = fs::remove_file(&tmp);
    match placed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(WriteError::Exists {
            path: path.to_owned(),
        }),
        Err(e) => Err(io_err(e)),
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_temp(tmp: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(tmp)?;
    // The umask may have narrowed `mode`, and a stale temp file may have had
    // another one; set it explicitly so keys are 0600 and certs 0644.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}
