//! The store's error type. Every variant names the path involved and says
//! what the user can do about it.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::StepKey;

use super::lock::LockWait;

/// Everything that can go wrong while using the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk filled up. Separate from `Io` because the remedy is obvious.
    #[error("no space left on device while {action} {path}; {hint}; free space and rerun")]
    NoSpace {
        action: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// Any other I/O failure.
    #[error("I/O error while {action} {path}: {source}; {hint}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
        hint: &'static str,
    },

    /// The store was written by a newer xp with an incompatible layout.
    #[error(
        "the store at {root} has format {found}, but this xp understands format {supported} at most; \
         use a newer xp, or pick another directory with --cache-dir / XP_CACHE_DIR"
    )]
    NewerFormat {
        root: PathBuf,
        found: u32,
        supported: u32,
    },

    /// `STORE_FORMAT` exists but does not hold a number.
    #[error(
        "{path} should hold the store format number but contains {content:?}; \
         this directory is not an xp store or the file is damaged: pick another --cache-dir, \
         or write `1` into the file if the directory is an xp store"
    )]
    BadFormatFile { path: PathBuf, content: String },

    /// A manifest could not be parsed where one is required (not during a
    /// lookup: there a broken manifest is reported as corruption).
    #[error(
        "cannot read the manifest {path}: {reason}; run `xp verify --quarantine` to move the entry aside"
    )]
    BadManifest { path: PathBuf, reason: String },

    /// A step put something other than regular files and directories into its
    /// output directory.
    #[error(
        "{path} is a {what}; a step may only write regular files and directories into its \
         output directory; the entry was not published"
    )]
    UnsupportedOutput { path: PathBuf, what: &'static str },

    /// Output names must be UTF-8 so the JSON manifest can record them.
    #[error("the output path {path:?} is not valid UTF-8; rename it; the entry was not published")]
    NonUtf8Path { path: PathBuf },

    /// A non-blocking operation found the key locked by someone else.
    #[error("{wait}; try again when it has finished")]
    Busy { wait: Box<LockWait> },

    /// The remote cache could not be reached or refused a request.
    #[error("remote cache: {0}")]
    Remote(#[from] crate::remote::RemoteError),

    /// What the remote cache holds for a key does not match its manifest: the
    /// download was thrown away, nothing was published.
    #[error("the remote cache's entry {key} was not taken: {why}")]
    RemoteRejected { key: StepKey, why: String },

    /// `xp push` / `xp pull` without a remote cache.
    #[error(
        "no remote cache: give `--remote s3://BUCKET/PREFIX`, or `remote` in the `[cache]` \
         table of the experiment file or of the user configuration"
    )]
    NoRemote,

    /// The key has no published entry.
    #[error("step {key} has no entry in the store at {root}")]
    NotFound { key: StepKey, root: PathBuf },
}

/// Builds a mapper from `io::Error` to `StoreError` that names the action and
/// the path, and turns a full disk into [`StoreError::NoSpace`].
pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
    hint: &'static str,
) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull
            || source.raw_os_error() == Some(libc::ENOSPC)
        {
            StoreError::NoSpace { action, path, hint }
        } else {
            StoreError::Io {
                action,
                path,
                source,
                hint,
            }
        }
    }
}

/// Hint for failures while publishing: nothing became visible.
pub(crate) const NOT_PUBLISHED: &str = "the entry was not published";
/// Hint for failures that most likely come from permissions or a broken mount.
pub(crate) const CHECK_STORE: &str =
    "check that the store directory exists, is writable and is on a healthy disk";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_says_what_happened_and_what_to_do() {
        let to_error = io_err(
            "writing",
            Path::new("/s/staging/x/out/model"),
            NOT_PUBLISHED,
        );
        let err = to_error(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(err, StoreError::NoSpace { .. }));
        assert_eq!(
            err.to_string(),
            "no space left on device while writing /s/staging/x/out/model; \
             the entry was not published; free space and rerun"
        );
        let other = io_err("reading", Path::new("/s/f"), CHECK_STORE)(
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(
            other
                .to_string()
                .starts_with("I/O error while reading /s/f: ")
        );
    }
}
