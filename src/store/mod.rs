//! The content-addressed artifact store.
//!
//! The store keeps the outputs of steps under their [`StepKey`]. It never
//! knows what a step does: the planner computes keys, the executor writes
//! outputs into a [`Staging`] directory, and the store makes them visible
//! atomically, checks them on lookup and cleans up after crashes.
//!
//! # Layout
//!
//! This module is the only code that builds paths inside a store.
//!
//! ```text
//! <root>/                          chosen by the caller (--cache-dir / XP_CACHE_DIR; default ./cache)
//!   STORE_FORMAT                   layout version ("1"); a newer one is refused
//!   entries/<key-hex>/manifest.json   what the entry is, how it was made, digests of its files
//!   entries/<key-hex>/out/...      the step's output files (any tree)
//!   staging/<key-hex>.<pid>.<random>/  private directories being filled; published by rename
//!                                  (a `.retired` suffix marks an old entry being replaced)
//!   scratch/<key-hex>/             resumable state (checkpoints) of an unfinished step;
//!                                  kept across crashes, removed after publish
//!   locks/<key-hex>.lock           per-key lock files (flock), holding the holder's pid/host/time
//!   quarantine/<key-hex>.<UTC timestamp>/  corrupt entries moved aside
//!   <executor>/<group>/<step>.<key12>.<job>.log   a cluster job's log (`slurm/<experiment>/...`)
//! ```
//!
//! A remote cache (`s3://BUCKET/PREFIX`, see [`crate::remote`]) holds, under its prefix:
//!
//! ```text
//! manifests/<key-hex>.json         an entry's manifest, uploaded after its objects
//! objects/<blake3-hex>             a file's content, named by its digest
//! ```
//!
//! # Guarantees
//!
//! - `entries/` only ever holds complete entries: publishing is one rename of
//!   a directory whose files and manifest were fsynced first.
//! - One key is computed by at most one process at a time: a [`Staging`] holds
//!   the key's OS advisory lock, which the kernel drops when the holder dies.
//! - A staging directory is stale exactly when nobody holds its key's lock;
//!   [`Store::open`] and [`Store::gc`] remove only those. This holds across
//!   hosts on a shared filesystem, where a pid check would not.
//! - Lookups are cheap (stat per file); a file whose mtime changed is
//!   re-hashed, and a content mismatch moves the entry to `quarantine/`.

mod check;
mod error;
mod gc;
mod history;
mod layout;
mod lock;
mod manifest;
mod publish;
mod remote;
mod verify;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::StepKey;

pub use check::{Corruption, Problem, ProblemKind};
pub use error::StoreError;
pub use gc::GcReport;
pub use history::{Cost, CostQuery, Estimate, History, KindFacts, SizedInput};
pub use lock::{LockHolder, LockWait};
pub use manifest::{Attempt, MANIFEST_VERSION, Manifest, ManifestInfo, Outcome, OutputFile};
pub use publish::{Begin, Staging, TryBegin};
pub use remote::{Pulled, Pushed, in_remote};
pub use verify::{VerifyOptions, VerifyReport};

use check::{Checked, Depth, HashStats};
use error::{CHECK_STORE, io_err};
use layout::{Layout, MANIFEST_FILE, OUT_DIR};
use lock::KeyLock;

/// Layout version written to `STORE_FORMAT`.
pub const STORE_FORMAT: u32 = 1;

/// A store rooted at one directory. Cheap to clone; many `Store`s (threads,
/// processes, hosts on a shared filesystem) may use one directory at once.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
    host: String,
    /// The remote cache lookups may read through (`xp run --remote`).
    remote: Option<std::sync::Arc<crate::remote::Remote>>,
}

/// A published entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: StepKey,
    /// `entries/<key-hex>/`.
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Entry {
    /// `entries/<key-hex>/out/`.
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join(OUT_DIR)
    }

    /// The path of one output, `rel` being `/`-separated as in the manifest.
    pub fn output_path(&self, rel: &str) -> PathBuf {
        self.out_dir().join(rel)
    }

    /// Reads the entry of `key` without checking its files.
    fn read(layout: &Layout, key: StepKey) -> Result<Entry, StoreError> {
        let dir = layout.entry_dir(&key);
        let path = dir.join(MANIFEST_FILE);
        let manifest = Manifest::read(&path).map_err(|e| StoreError::BadManifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Entry { key, dir, manifest })
    }
}

/// What a lookup found.
// One value per lookup of a step: its size does not matter, and boxing
// the common case would only add noise for callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum LookupOutcome {
    Hit(Entry),
    Miss,
    /// The entry failed its check; it was moved to quarantine unless another
    /// process held the key (that process's `begin` deals with it).
    Corrupt(Corruption),
}

impl LookupOutcome {
    /// The entry on a hit.
    pub fn hit(self) -> Option<Entry> {
        match self {
            Self::Hit(entry) => Some(entry),
            Self::Miss | Self::Corrupt(_) => None,
        }
    }
}

/// Published entries, and the directories under `entries/` that could not be
/// read as one.
#[derive(Debug, Default)]
pub struct EntryListing {
    pub entries: Vec<Entry>,
    pub broken: Vec<BrokenEntry>,
}

/// A directory under `entries/` that is not a readable entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenEntry {
    pub dir: PathBuf,
    pub reason: String,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, refusing one written by
    /// a newer xp, and removes staging directories left by dead processes.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let layout = Layout::new(root);
        fs::create_dir_all(root).map_err(io_err("creating", root, CHECK_STORE))?;
        check_format(&layout)?;
        layout.create_dirs()?;
        let store = Store {
            layout,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            remote: None,
        };
        store.sweep_staging(false)?;
        Ok(store)
    }

    /// This store, reading through to `remote` on a miss ([`Store::pull`]) and
    /// publishing to it ([`Store::push`]).
    pub fn with_remote(mut self, remote: crate::remote::Remote) -> Store {
        self.remote = Some(std::sync::Arc::new(remote));
        self
    }

    /// The remote cache, if this store has one.
    pub fn remote(&self) -> Option<&crate::remote::Remote> {
        self.remote.as_deref()
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Where a cluster executor's jobs of one group (an experiment) write their
    /// logs: `<root>/<executor>/<group>/`. `group` must be one path component.
    pub fn job_logs_dir(&self, executor: &str, group: &str) -> PathBuf {
        self.layout.job_logs_dir(executor, group)
    }

    /// The log of job `job` (e.g. Slurm's id, or its `%j` pattern) of `step`:
    /// `<root>/<executor>/<group>/<step>.<key12>.<job>.log`.
    pub fn job_log(
        &self,
        executor: &str,
        group: &str,
        step: &str,
        key: &StepKey,
        job: &str,
    ) -> PathBuf {
        self.layout.job_log(executor, group, step, key, job)
    }

    /// Looks `key` up. A hit's files are checked cheaply (size and mtime; a
    /// file with a changed mtime is re-hashed).
    pub fn lookup(&self, key: &StepKey) -> Result<LookupOutcome, StoreError> {
        let mut stats = HashStats::default();
        let problems = match check::check_entry(&self.layout, key, Depth::Stat, &mut stats)? {
            Checked::Absent => return Ok(LookupOutcome::Miss),
            Checked::Sound(entry) => return Ok(LookupOutcome::Hit(entry)),
            Checked::Corrupt(problems) => problems,
        };
        // Quarantine only under the key's lock, after checking again: the
        // entry may have been replaced meanwhile.
        let Ok(lock) = KeyLock::try_acquire(&self.layout, key, &self.host)? else {
            return Ok(LookupOutcome::Corrupt(Corruption {
                key: *key,
                problems,
                quarantined_to: None,
            }));
        };
        match check::check_entry(&self.layout, key, Depth::Stat, &mut stats)? {
            Checked::Sound(entry) => Ok(LookupOutcome::Hit(entry)),
            Checked::Absent => Ok(LookupOutcome::Corrupt(Corruption {
                key: *key,
                problems,
                quarantined_to: None,
            })),
            Checked::Corrupt(problems) => {
                let quarantined_to = check::quarantine(&self.layout, key)?;
                drop(lock);
                Ok(LookupOutcome::Corrupt(Corruption {
                    key: *key,
                    problems,
                    quarantined_to,
                }))
            }
        }
    }

    /// Claims `key`, waiting for its lock if another process holds it
    /// (`on_wait` is called once before waiting, to tell the user whom for).
    /// Returns the entry if it exists by the time the lock is ours.
    /// Waiting on a key this same thread already holds never ends: claim each
    /// key once per thread.
    pub fn begin(
        &self,
        key: &StepKey,
        on_wait: impl FnOnce(&LockWait),
    ) -> Result<Begin, StoreError> {
        let lock = KeyLock::acquire(&self.layout, key, &self.host, on_wait)?;
        self.claimed(key, lock)
    }

    /// Like [`begin`](Self::begin) but never waits.
    pub fn try_begin(&self, key: &StepKey) -> Result<TryBegin, StoreError> {
        match KeyLock::try_acquire(&self.layout, key, &self.host)? {
            Err(wait) => Ok(TryBegin::Busy(wait)),
            Ok(lock) => Ok(match self.claimed(key, lock)? {
                Begin::Published(entry) => TryBegin::Published(entry),
                Begin::Staging(staging) => TryBegin::Staging(staging),
            }),
        }
    }

    /// Claims `key` to compute it again even if it is published (`--rerun`).
    /// Publishing replaces the old entry: it is renamed aside, the new one
    /// renamed in, then the old one deleted. Until then lookups still hit the
    /// old entry.
    pub fn begin_rerun(
        &self,
        key: &StepKey,
        on_wait: impl FnOnce(&LockWait),
    ) -> Result<Staging, StoreError> {
        let lock = KeyLock::acquire(&self.layout, key, &self.host, on_wait)?;
        Staging::create(&self.layout, *key, &self.host, lock, true, None)
    }

    /// With the lock held: reuse a sound entry, quarantine a corrupt one.
    fn claimed(&self, key: &StepKey, lock: KeyLock) -> Result<Begin, StoreError> {
        let mut stats = HashStats::default();
        let found_corrupt = match check::check_entry(&self.layout, key, Depth::Stat, &mut stats)? {
            Checked::Sound(entry) => return Ok(Begin::Published(entry)),
            Checked::Absent => None,
            Checked::Corrupt(problems) => Some(Corruption {
                key: *key,
                problems,
                quarantined_to: check::quarantine(&self.layout, key)?,
            }),
        };
        let staging = Staging::create(&self.layout, *key, &self.host, lock, false, found_corrupt)?;
        Ok(Begin::Staging(staging))
    }

    /// Removes the entry of `key` (and its scratch directory). Fails with
    /// [`StoreError::Busy`] if another process holds the key; returns whether
    /// there was an entry.
    pub fn remove(&self, key: &StepKey) -> Result<bool, StoreError> {
        let lock = match KeyLock::try_acquire(&self.layout, key, &self.host)? {
            Ok(lock) => lock,
            Err(wait) => {
                return Err(StoreError::Busy {
                    wait: Box::new(wait),
                });
            }
        };
        let existed = self.remove_locked(key)?;
        drop(lock);
        Ok(existed)
    }

    /// Removes entry and scratch of a key whose lock the caller holds. The
    /// entry is first renamed into `staging/` so no reader sees it half-deleted.
    fn remove_locked(&self, key: &StepKey) -> Result<bool, StoreError> {
        let dir = self.layout.entry_dir(key);
        let retired = self.layout.new_retired(key);
        let existed = match fs::rename(&dir, &retired) {
            Ok(()) => {
                fsync_dir(&self.layout.entries_dir())?;
                publish::remove_tree(&retired)?;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err("removing", &dir, CHECK_STORE)(e)),
        };
        publish::remove_tree(&self.layout.scratch_dir(key))?;
        Ok(existed)
    }

    /// Every published entry with its manifest (files not checked), sorted by
    /// key; unreadable ones are listed in `broken`.
    pub fn entries(&self) -> Result<EntryListing, StoreError> {
        let mut listing = EntryListing::default();
        let dir = self.layout.entries_dir();
        for name in list_names(&dir)? {
            let path = dir.join(&name);
            let Some(key) = layout::key_of_exact_name(&name, "") else {
                listing.broken.push(BrokenEntry {
                    dir: path,
                    reason: "the directory name is not a step key".into(),
                });
                continue;
            };
            match Entry::read(&self.layout, key) {
                Ok(entry) if entry.manifest.key == key => listing.entries.push(entry),
                Ok(entry) => listing.broken.push(BrokenEntry {
                    dir: path,
                    reason: format!("the manifest is for key {}", entry.manifest.key),
                }),
                Err(e) => listing.broken.push(BrokenEntry {
                    dir: path,
                    reason: e.to_string(),
                }),
            }
        }
        listing.entries.sort_by_key(|e| e.key);
        Ok(listing)
    }

    /// Removes staging directories whose key nobody holds; returns them with
    /// their sizes. With `dry_run`, only reports.
    fn sweep_staging(&self, dry_run: bool) -> Result<Vec<(PathBuf, u64)>, StoreError> {
        let dir = self.layout.staging_dir();
        let mut swept = Vec::new();
        for name in list_names(&dir)? {
            let Some(key) = layout::key_of_name(&name) else {
                continue; // not ours: leave it for a human
            };
            let Ok(lock) = KeyLock::try_acquire(&self.layout, &key, &self.host)? else {
                continue; // someone is staging this key right now
            };
            let path = dir.join(&name);
            let size = tree_size(&path)?;
            if !dry_run {
                publish::remove_tree(&path)?;
            }
            drop(lock);
            swept.push((path, size));
        }
        Ok(swept)
    }
}

/// Reads `STORE_FORMAT`, writing it into a store that has none yet.
fn check_format(layout: &Layout) -> Result<(), StoreError> {
    let path = layout.format_file();
    match fs::read_to_string(&path) {
        Ok(text) => {
            let found: u32 = text.trim().parse().map_err(|_| StoreError::BadFormatFile {
                path: path.clone(),
                content: text.chars().take(40).collect(),
            })?;
            if found > STORE_FORMAT {
                return Err(StoreError::NewerFormat {
                    root: layout.root().to_path_buf(),
                    found,
                    supported: STORE_FORMAT,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Written via rename so a concurrent opener never reads it empty.
            let tmp =
                layout
                    .root()
                    .join(format!(".{}.{}", layout::FORMAT_FILE, std::process::id()));
            fs::write(&tmp, format!("{STORE_FORMAT}\n")).map_err(io_err(
                "writing",
                &tmp,
                CHECK_STORE,
            ))?;
            fs::rename(&tmp, &path).map_err(io_err("writing", &path, CHECK_STORE))
        }
        Err(e) => Err(io_err("reading", &path, CHECK_STORE)(e)),
    }
}

/// fsync a directory so renames and creations inside it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir, CHECK_STORE))
}

/// Names in a directory, sorted; a missing directory is empty.
fn list_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir, CHECK_STORE)(e)),
    };
    let mut names = Vec::new();
    for item in read {
        let item = item.map_err(io_err("listing", dir, CHECK_STORE))?;
        if let Ok(name) = item.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Bytes in the regular files under `path` (symlinks not followed).
fn tree_size(path: &Path) -> Result<u64, StoreError> {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = match fs::symlink_metadata(&p) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("reading metadata of", &p, CHECK_STORE)(e)),
        };
        if meta.is_dir() {
            for item in fs::read_dir(&p).map_err(io_err("listing", &p, CHECK_STORE))? {
                stack.push(item.map_err(io_err("listing", &p, CHECK_STORE))?.path());
            }
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
