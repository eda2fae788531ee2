//! Pushing entries to a remote cache and pulling them from it. The names of
//! the remote's objects come from `layout.rs`; the transfers from
//! [`crate::remote::Remote`].
//!
//! A push uploads every file of the entry as an object named by its digest,
//! then the manifest: a reader that finds the manifest finds every object, and
//! two machines pushing one key at once upload the same objects (same names,
//! same bytes) and each a whole manifest, either of which is valid.
//!
//! A pull trusts nothing it downloads: the files go into a staging directory
//! (holding the key's lock, as a step's outputs do) and are published only if
//! each hashes to the digest the manifest lists. A download cut short or
//! rejected leaves no entry; a process killed mid-download leaves a staging
//! directory that the next `Store::open` removes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Component, Path};

use crate::digest::StepKey;
use crate::remote::Remote;

use super::error::{NOT_PUBLISHED, StoreError, io_err};
use super::layout::{MANIFEST_FILE, remote_manifest, remote_object};
use super::manifest::{MANIFEST_VERSION, Manifest};
use super::{Begin, Entry, LookupOutcome, Store};

/// What [`Store::pull`] did.
// One per pulled step: the entry's size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Pulled {
    /// Downloaded, verified and published in this store.
    Fetched { entry: Entry, bytes: u64 },
    /// In this store already (perhaps published meanwhile by another process).
    Present(Entry),
    /// The remote has no entry for the key.
    Absent,
}

/// What [`Store::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The files the remote lacked were uploaded, then the manifest.
    Uploaded { files: usize, bytes: u64 },
    /// The remote has the entry already.
    AlreadyThere,
}

/// Whether `remote` has an entry for `key` (its manifest exists), asked
/// without a store (`xp plan` on a machine that has none yet).
pub fn in_remote(remote: &Remote, key: &StepKey) -> Result<bool, StoreError> {
    Ok(remote.exists(&remote_manifest(key))?)
}

impl Store {
    fn remote_or_error(&self) -> Result<&Remote, StoreError> {
        self.remote().ok_or(StoreError::NoRemote)
    }

    /// Whether the store's remote cache has an entry for `key`.
    pub fn in_remote(&self, key: &StepKey) -> Result<bool, StoreError> {
        in_remote(self.remote_or_error()?, key)
    }

    /// Uploads the entry of `key` to the remote cache, unless it is there.
    /// With `overwrite`, every object and the manifest are uploaded whatever the
    /// remote holds: the repair of a remote entry that failed its check.
    pub fn push(&self, key: &StepKey, overwrite: bool) -> Result<Pushed, StoreError> {
        let remote = self.remote_or_error()?;
        let manifest_name = remote_manifest(key);
        if !overwrite && remote.exists(&manifest_name)? {
            return Ok(Pushed::AlreadyThere);
        }
        let entry = match self.lookup(key)? {
            LookupOutcome::Hit(entry) => entry,
            LookupOutcome::Miss | LookupOutcome::Corrupt(_) => {
                return Err(StoreError::NotFound {
                    key: *key,
                    root: self.root().to_path_buf(),
                });
            }
        };
        let (mut files, mut bytes) = (0, 0);
        for (rel, file) in &entry.manifest.outputs {
            let name = remote_object(&file.digest);
            if !overwrite && remote.exists(&name)? {
                continue;
            }
            remote.put_file(&name, &entry.output_path(rel))?;
            files += 1;
            bytes += file.size;
        }
        let manifest_path = entry.dir.join(MANIFEST_FILE);
        let manifest = fs::read(&manifest_path).map_err(io_err(
            "reading",
            &manifest_path,
            "run `xp verify`",
        ))?;
        remote.put_bytes(&manifest_name, &manifest)?;
        Ok(Pushed::Uploaded { files, bytes })
    }

    /// Downloads the remote cache's entry of `key` into this store, verified
    /// against its manifest's digests. Waits if another process holds the key.
    pub fn pull(&self, key: &StepKey) -> Result<Pulled, StoreError> {
        let remote = self.remote_or_error()?;
        if let LookupOutcome::Hit(entry) = self.lookup(key)? {
            return Ok(Pulled::Present(entry));
        }
        let Some(bytes) = remote.get_bytes(&remote_manifest(key))? else {
            return Ok(Pulled::Absent);
        };
        let reject = |why: String| StoreError::RemoteRejected { key: *key, why };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| reject(format!("its manifest is not one this xp reads: {e}")))?;
        if manifest.key != *key {
            return Err(reject(format!("its manifest is for key {}", manifest.key)));
        }
        if manifest.manifest_version > MANIFEST_VERSION {
            return Err(reject(format!(
                "its manifest has version {}, this xp reads {MANIFEST_VERSION} at most: use a newer xp",
                manifest.manifest_version
            )));
        }
        let staging = match self.begin(key, |_| {})? {
            Begin::Published(entry) => return Ok(Pulled::Present(entry)),
            Begin::Staging(staging) => staging,
        };
        let mut total = 0;
        for (rel, file) in &manifest.outputs {
            if !is_plain_relative(rel) {
                return Err(reject(format!(
                    "its manifest lists the output path `{rel}`"
                )));
            }
            let path = staging.out_dir().join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err("creating", parent, NOT_PUBLISHED))?;
            }
            let out = File::create(&path).map_err(io_err("creating", &path, NOT_PUBLISHED))?;
            let mut writer = BufWriter::with_capacity(1 << 20, out);
            let object = remote_object(&file.digest);
            let Some(got) = remote.get_into(&object, &mut writer)? else {
                return Err(reject(format!(
                    "the object of `{rel}` ({object}) is missing"
                )));
            };
            writer
                .flush()
                .map_err(io_err("writing", &path, NOT_PUBLISHED))?;
            total += got;
        }
        let entry = staging.publish_pulled(manifest, &bytes)?;
        Ok(Pulled::Fetched {
            entry,
            bytes: total,
        })
    }
}

/// A `/`-separated relative path of plain names: nothing a manifest from
/// elsewhere could use to write outside the staging directory.
fn is_plain_relative(rel: &str) -> bool {
    !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !rel
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
}

#[cfg(test)]
mod tests {
    use super::is_plain_relative;

    #[test]
    fn only_plain_relative_output_paths_are_written() {
        assert!(is_plain_relative("scores.json"));
        assert!(is_plain_relative("model/weights.safetensors"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
