//! Integrity checks of a published entry and moving corrupt ones aside.
//!
//! Two depths: the cheap check on lookup trusts a file whose size and mtime
//! match the manifest and re-hashes only the others; the full check (verify)
//! re-hashes everything and also looks for files the manifest does not list.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::{ContentDigest, StepKey};

use super::Entry;
use super::error::{CHECK_STORE, StoreError, io_err};
use super::layout::{Layout, MANIFEST_FILE, OUT_DIR};
use super::manifest::{Manifest, ManifestReadError};

/// What is wrong with one file of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Listed in the manifest but not on disk.
    Missing,
    /// On disk but not a regular file.
    NotAFile,
    SizeChanged {
        recorded: u64,
        found: u64,
    },
    ContentChanged {
        recorded: ContentDigest,
        found: ContentDigest,
    },
    /// On disk but not listed in the manifest (full check only).
    Unexpected,
    /// The manifest is missing or unreadable.
    BadManifest {
        reason: String,
    },
    /// The manifest belongs to another key than its directory name.
    KeyMismatch {
        found: StepKey,
    },
}

/// One problem, with the path relative to the entry directory
/// (`manifest.json` or `out/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            ProblemKind::Missing => write!(f, "{path} is missing"),
            ProblemKind::NotAFile => write!(f, "{path} is not a regular file"),
            ProblemKind::SizeChanged { recorded, found } => {
                write!(f, "{path} has {found} bytes, the manifest says {recorded}")
            }
            ProblemKind::ContentChanged { recorded, found } => write!(
                f,
                "{path} has content {}, the manifest says {}",
                found.short(),
                recorded.short()
            ),
            ProblemKind::Unexpected => write!(f, "{path} is not listed in the manifest"),
            ProblemKind::BadManifest { reason } => write!(f, "{path}: {reason}"),
            ProblemKind::KeyMismatch { found } => {
                write!(f, "{path} belongs to key {}", found.short())
            }
        }
    }
}

/// A corrupt entry: its problems and, if it was moved aside, where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub key: StepKey,
    pub problems: Vec<Problem>,
    /// `Some(quarantine/<key>.<timestamp>)` once moved out of `entries/`.
    pub quarantined_to: Option<PathBuf>,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {} is corrupt: ", self.key.short())?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        match &self.quarantined_to {
            Some(dir) => write!(f, "; moved to {}", dir.display()),
            None => Ok(()),
        }
    }
}

/// How thoroughly to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// Trust size + mtime; hash only files whose mtime changed.
    Stat,
    /// Hash every file, ignore mtimes, report unlisted files.
    Full,
}

/// Result of checking one key.
// One value per lookup of a step: its size does not matter, and boxing
// the common case would only add noise for callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Checked {
    Absent,
    Sound(Entry),
    Corrupt(Vec<Problem>),
}

/// Counters for verify's report.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HashStats {
    pub files: u64,
    pub bytes_hashed: u64,
}

pub(crate) fn check_entry(
    layout: &Layout,
    key: &StepKey,
    depth: Depth,
    stats: &mut HashStats,
) -> Result<Checked, StoreError> {
    let dir = layout.entry_dir(key);
    if !exists(&dir)? {
        return Ok(Checked::Absent);
    }
    let manifest = match Manifest::read(&dir.join(MANIFEST_FILE)) {
        Ok(m) => m,
        Err(ManifestReadError::Io(e)) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_err("reading", &dir.join(MANIFEST_FILE), CHECK_STORE)(e));
        }
        Err(reason) => {
            return Ok(Checked::Corrupt(vec![Problem {
                path: MANIFEST_FILE.into(),
                kind: ProblemKind::BadManifest {
                    reason: reason.to_string(),
                },
            }]));
        }
    };
    if manifest.key != *key {
        return Ok(Checked::Corrupt(vec![Problem {
            path: MANIFEST_FILE.into(),
            kind: ProblemKind::KeyMismatch {
                found: manifest.key,
            },
        }]));
    }
    let out = dir.join(OUT_DIR);
    let mut problems = Vec::new();
    for (rel, recorded) in &manifest.outputs {
        let path = out.join(rel);
        let problem = |kind| Problem {
            path: Path::new(OUT_DIR).join(rel),
            kind,
        };
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                problems.push(problem(ProblemKind::Missing));
                continue;
            }
            Err(e) => return Err(io_err("reading metadata of", &path, CHECK_STORE)(e)),
        };
        stats.files += 1;
        if !meta.is_file() {
            problems.push(problem(ProblemKind::NotAFile));
            continue;
        }
        if meta.len() != recorded.size {
            problems.push(problem(ProblemKind::SizeChanged {
                recorded: recorded.size,
                found: meta.len(),
            }));
            continue;
        }
        if depth == Depth::Stat && mtime_ns(&meta) == recorded.mtime_ns {
            continue;
        }
        let file = File::open(&path).map_err(io_err("opening", &path, CHECK_STORE))?;
        let (found, bytes) = hash_reader(file).map_err(io_err("reading", &path, CHECK_STORE))?;
        stats.bytes_hashed += bytes;
        if found != recorded.digest {
            problems.push(problem(ProblemKind::ContentChanged {
                recorded: recorded.digest,
                found,
            }));
        }
    }
    if depth == Depth::Full {
        let listed: BTreeSet<&str> = manifest.outputs.keys().map(String::as_str).collect();
        for rel in list_files(&out)? {
            if !listed.contains(rel.as_str()) {
                problems.push(Problem {
                    path: Path::new(OUT_DIR).join(&rel),
                    kind: ProblemKind::Unexpected,
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(Checked::Sound(Entry {
            key: *key,
            dir,
            manifest,
        }))
    } else {
        Ok(Checked::Corrupt(problems))
    }
}

/// Moves `entries/<key>` to `quarantine/<key>.<timestamp>`. Call with the
/// key's lock held. `None` if the entry was already gone.
pub(crate) fn quarantine(layout: &Layout, key: &StepKey) -> Result<Option<PathBuf>, StoreError> {
    let from = layout.entry_dir(key);
    let to = layout.new_quarantine(key);
    match fs::rename(&from, &to) {
        Ok(()) => {
            super::fsync_dir(&layout.entries_dir())?;
            Ok(Some(to))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("moving to quarantine", &from, CHECK_STORE)(e)),
    }
}

/// blake3 of everything `reader` yields, and how many bytes that was.
pub(crate) fn hash_reader(mut reader: impl Read) -> io::Result<(ContentDigest, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((ContentDigest::from_hash(hasher.finalize()), total))
}

/// Modification time in nanoseconds since the epoch, as the manifest records it.
pub(crate) fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// Every non-directory under `root`, as `/`-separated relative paths, sorted.
/// Names that are not UTF-8 are reported lossily (only used for reporting).
fn list_files(root: &Path) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let read = match fs::read_dir(&dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("listing", &dir, CHECK_STORE)(e)),
        };
        for item in read {
            let item = item.map_err(io_err("listing", &dir, CHECK_STORE))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = item.file_type().map_err(io_err(
                "reading metadata of",
                &item.path(),
                CHECK_STORE,
            ))?;
            if kind.is_dir() {
                stack.push((item.path(), rel));
            } else {
                found.push(rel);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn exists(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("reading metadata of", path, CHECK_STORE)(e)),
    }
}
