//! Claiming a key and publishing its outputs.
//!
//! A [`Staging`] holds the key's lock for its whole life. Outputs go into a
//! private `staging/<key>.<pid>.<random>/out/`; `publish` hashes them, writes
//! the manifest beside them and renames the whole directory to
//! `entries/<key>/`. A rename is atomic, so `entries/` only ever holds complete
//! entries: a crash leaves at most a staging directory, which a later `open`
//! or `gc` removes once nobody holds the key.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::StepKey;

use super::Entry;
use super::check::{Corruption, hash_reader, mtime_ns};
use super::error::{CHECK_STORE, NOT_PUBLISHED, StoreError, io_err};
use super::layout::{Layout, MANIFEST_FILE, OUT_DIR};
use super::lock::{KeyLock, LockWait};
use super::manifest::{Manifest, ManifestInfo, OutputFile};

/// Result of [`Store::begin`](super::Store::begin). One per step executed, so the
/// size of the entry (its whole manifest) in the enum costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Begin {
    /// The entry exists (possibly finished by someone else while we waited
    /// for the lock): reuse it.
    Published(Entry),
    /// The key is ours to compute.
    Staging(Staging),
}

/// Result of [`Store::try_begin`](super::Store::try_begin).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TryBegin {
    Published(Entry),
    Staging(Staging),
    /// Someone else holds the key right now.
    Busy(LockWait),
}

/// The right and the place to produce one key's outputs. Holds the key's lock
/// until it is published or dropped; dropping it unpublished removes its
/// staging directory but keeps `scratch/<key>/` so a rerun can resume.
#[derive(Debug)]
pub struct Staging {
    layout: Layout,
    key: StepKey,
    host: String,
    dir: PathBuf,
    out: PathBuf,
    scratch: PathBuf,
    /// Publish over an existing entry (`--rerun`) instead of keeping it.
    replace: bool,
    /// A corrupt entry found (and quarantined) when the key was claimed.
    found_corrupt: Option<Corruption>,
    /// `None` once published; dropped last so the directory is gone before
    /// the lock is released.
    lock: Option<KeyLock>,
}

impl Staging {
    pub(crate) fn create(
        layout: &Layout,
        key: StepKey,
        host: &str,
        lock: KeyLock,
        replace: bool,
        found_corrupt: Option<Corruption>,
    ) -> Result<Self, StoreError> {
        let dir = layout.new_staging(&key);
        let out = dir.join(OUT_DIR);
        fs::create_dir_all(&out).map_err(io_err("creating", &out, CHECK_STORE))?;
        let scratch = layout.scratch_dir(&key);
        fs::create_dir_all(&scratch).map_err(io_err("creating", &scratch, CHECK_STORE))?;
        Ok(Self {
            layout: layout.clone(),
            key,
            host: host.to_string(),
            dir,
            out,
            scratch,
            replace,
            found_corrupt,
            lock: Some(lock),
        })
    }

    pub fn key(&self) -> &StepKey {
        &self.key
    }

    /// The empty private directory the step writes its outputs into.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// `scratch/<key>/`: survives crashes and failed attempts, for checkpoints
    /// to resume from; removed when the entry is published.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    /// Empties the scratch directory, for a rerun that must not resume.
    pub fn reset_scratch(&self) -> Result<(), StoreError> {
        remove_tree(&self.scratch)?;
        fs::create_dir_all(&self.scratch).map_err(io_err("creating", &self.scratch, CHECK_STORE))
    }

    /// The corrupt entry that was moved to quarantine when this key was
    /// claimed, if any, so the runner can say "entry X was corrupt, recomputing".
    pub fn found_corrupt(&self) -> Option<&Corruption> {
        self.found_corrupt.as_ref()
    }

    /// Hashes every file under [`out_dir`](Self::out_dir), writes the manifest,
    /// and makes the entry visible with one rename. On error nothing is
    /// published and the staging directory is removed.
    pub fn publish(self, info: ManifestInfo) -> Result<Entry, StoreError> {
        let outputs = scan_outputs(&self.out)?;
        let manifest = Manifest::assemble(
            self.key,
            info,
            outputs,
            self.host.clone(),
            chrono::Utc::now(),
        );
        manifest.write_into(&self.dir, MANIFEST_FILE)?;
        self.commit(manifest)
    }

    /// Publishes what a pull downloaded into [`out_dir`](Self::out_dir) under
    /// the remote's manifest, once every file hashes to the digest it lists
    /// and no other file is there. On a mismatch nothing is published and the
    /// staging directory is removed.
    pub(crate) fn publish_pulled(
        self,
        manifest: Manifest,
        manifest_json: &[u8],
    ) -> Result<Entry, StoreError> {
        let here = scan_outputs(&self.out)?;
        let reject = |why: String| StoreError::RemoteRejected { key: self.key, why };
        for (rel, listed) in &manifest.outputs {
            match here.get(rel) {
                None => return Err(reject(format!("`{rel}` was not downloaded"))),
                Some(got) if got.digest != listed.digest || got.size != listed.size => {
                    return Err(reject(format!(
                        "`{rel}` has digest {} ({} bytes), its manifest says {} ({} bytes)",
                        got.digest.short(),
                        got.size,
                        listed.digest.short(),
                        listed.size
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = here.keys().find(|rel| !manifest.outputs.contains_key(*rel)) {
            return Err(reject(format!("`{extra}` is not in its manifest")));
        }
        // Each file gets the modification time the manifest lists, so the entry
        // (its manifest byte for byte) is the one that was pushed, and lookups
        // trust the files by size and time as they do any other entry's.
        for (rel, listed) in &manifest.outputs {
            let path = self.out.join(rel);
            let when = u64::try_from(listed.mtime_ns)
                .map(|ns| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns));
            if let Ok(when) = when {
                File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(when).and_then(|_| f.sync_all()))
                    .map_err(io_err(
                        "setting the modification time of",
                        &path,
                        NOT_PUBLISHED,
                    ))?;
            }
        }
        super::manifest::write_manifest_bytes(&self.dir, MANIFEST_FILE, manifest_json)?;
        self.commit(manifest)
    }

    /// Renames the directory, its manifest written, into `entries/`.
    fn commit(mut self, manifest: Manifest) -> Result<Entry, StoreError> {
        super::fsync_dir(&self.dir)?;

        let entry_dir = self.layout.entry_dir(&self.key);
        let retired = if self.replace {
            self.retire_existing(&entry_dir)?
        } else {
            None
        };
        let entry = match fs::rename(&self.dir, &entry_dir) {
            Ok(()) => Entry {
                key: self.key,
                dir: entry_dir,
                manifest,
            },
            // Someone published without holding the lock: keep theirs (same
            // key, so same content by construction); Drop removes ours.
            Err(e) if is_dir_exists(&e) => return Entry::read(&self.layout, self.key),
            Err(e) => return Err(io_err("publishing", &entry_dir, NOT_PUBLISHED)(e)),
        };
        super::fsync_dir(&self.layout.entries_dir())?;
        super::fsync_dir(&self.layout.staging_dir())?;
        if let Some(old) = retired {
            // Best effort: a leftover is swept by the next open or gc.
            let _ = remove_tree(&old);
        }
        // The entry is durable; losing the checkpoints now costs nothing.
        let _ = remove_tree(&self.scratch);
        self.lock = None;
        Ok(entry)
    }

    /// Renames an existing entry out of the way (into `staging/`, so a crash
    /// before it is deleted leaves only a sweepable directory).
    fn retire_existing(&self, entry_dir: &Path) -> Result<Option<PathBuf>, StoreError> {
        let retired = self.layout.new_retired(&self.key);
        match fs::rename(entry_dir, &retired) {
            Ok(()) => Ok(Some(retired)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(
                "moving aside the old entry",
                entry_dir,
                NOT_PUBLISHED,
            )(e)),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.lock.is_some() {
            // Unpublished: the outputs are incomplete by definition.
            let _ = remove_tree(&self.dir);
        }
        // Field drop then releases the lock (if still held).
    }
}

/// Every regular file under `out`, hashed and fsynced. Directories are
/// fsynced too, so the rename publishes durable content.
fn scan_outputs(out: &Path) -> Result<BTreeMap<String, OutputFile>, StoreError> {
    let mut outputs = BTreeMap::new();
    let mut stack = vec![(out.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let read = fs::read_dir(&dir).map_err(io_err("listing", &dir, NOT_PUBLISHED))?;
        for item in read {
            let item = item.map_err(io_err("listing", &dir, NOT_PUBLISHED))?;
            let path = item.path();
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| StoreError::NonUtf8Path { path: path.clone() })?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = fs::symlink_metadata(&path).map_err(io_err(
                "reading metadata of",
                &path,
                NOT_PUBLISHED,
            ))?;
            if meta.is_dir() {
                stack.push((path, rel));
            } else if meta.is_file() {
                outputs.insert(rel, record_file(&path)?);
            } else {
                let what = if meta.file_type().is_symlink() {
                    "symbolic link"
                } else {
                    "special file"
                };
                return Err(StoreError::UnsupportedOutput { path, what });
            }
        }
        super::fsync_dir(&dir)?;
    }
    Ok(outputs)
}

/// Size, mtime and digest of one output, read through one handle that is
/// also fsynced.
fn record_file(path: &Path) -> Result<OutputFile, StoreError> {
    let file = File::open(path).map_err(io_err("opening", path, NOT_PUBLISHED))?;
    let meta = file
        .metadata()
        .map_err(io_err("reading metadata of", path, NOT_PUBLISHED))?;
    let (digest, size) = hash_reader(&file).map_err(io_err("reading", path, NOT_PUBLISHED))?;
    file.sync_all()
        .map_err(io_err("syncing", path, NOT_PUBLISHED))?;
    Ok(OutputFile {
        size,
        digest,
        mtime_ns: mtime_ns(&meta),
    })
}

fn is_dir_exists(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST))
}

/// `remove_dir_all` that treats "already gone" as success.
pub(crate) fn remove_tree(path: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path, CHECK_STORE)(e)),
    }
}
