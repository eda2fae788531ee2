//! Sources: where a model or dataset comes from, and what exactly was used.
//!
//! A source string ([`SourceSpec`]) is resolved ([`resolve`]) to local file
//! paths plus an identity ([`SourceIdentity`]) for cache keys: a local file's
//! content digest, a directory's digest over its sorted relative paths and
//! file digests, or a Hub repository's resolved commit and the blake3
//! digests of the files used. [`plan_status`] says, without any network,
//! whether a source is available or must be fetched.

mod error;
mod files;
mod hf;
mod layout;
mod local;
mod options;
mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::ContentDigest;

pub use error::SourceError;
pub use files::{FileKind, Files, GitError, GitRevision, WorkingTree};
pub use layout::{infer_split, split_of_shard};
pub use local::local_identity;
pub use options::{DEFAULT_ENDPOINT, HubOptions, ResolveOptions};
pub use spec::{HfRepo, RepoType, SourceSpec};

/// One file of a resolved source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedFile {
    /// Path relative to [`ResolvedSource::root`], `/`-separated (the name in
    /// the repository for a Hub source).
    pub name: String,
    /// Where the file is on this machine (in the HF cache for a Hub source).
    pub path: PathBuf,
    pub digest: ContentDigest,
}

/// What identifies a source's content, for cache keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SourceIdentity {
    /// A single local file: its content digest.
    LocalFile { digest: ContentDigest },
    /// A local directory: digest over its sorted relative paths + file digests.
    LocalDir { digest: ContentDigest },
    /// A Hub repository at a resolved commit, with the files used.
    Hub {
        repo: String,
        repo_type: RepoType,
        commit: String,
        files: BTreeMap<String, ContentDigest>,
    },
}

impl SourceIdentity {
    /// One digest over the content used (names + file digests), leaving out
    /// where it came from: a Hub commit that changed only other files (a
    /// README) gives the same digest. Key steps on this when content is what
    /// matters; the full identity (with the commit) is for provenance.
    pub fn content_digest(&self) -> ContentDigest {
        match self {
            Self::LocalFile { digest } | Self::LocalDir { digest } => *digest,
            Self::Hub { files, .. } => {
                digest_of_listing(files.iter().map(|(n, d)| (n.as_str(), d)))
            }
        }
    }
}

/// blake3 over `name \0 digest` for each (sorted) entry: a directory digest.
pub(crate) fn digest_of_listing<'a>(
    entries: impl Iterator<Item = (&'a str, &'a ContentDigest)>,
) -> ContentDigest {
    let mut hasher = blake3::Hasher::new();
    for (name, digest) in entries {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&digest.0);
    }
    ContentDigest::from_hash(hasher.finalize())
}

/// A source resolved to files on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedSource {
    pub spec: SourceSpec,
    /// The directory the file names are relative to: the local directory, a
    /// local file's parent, or the Hub snapshot directory. For a model, pass
    /// it to `tokenizer::load_tokenizer` and the weight loader.
    pub root: PathBuf,
    /// The files used, sorted by name.
    pub files: Vec<ResolvedFile>,
    /// Data files by split name (`train`, `validation`, `test`, ...), each list
    /// in shard order. Empty for a model repository.
    pub splits: BTreeMap<String, Vec<PathBuf>>,
    pub identity: SourceIdentity,
    /// Set when the Hub could not be reached and the HF cache was used
    /// instead: the error that made us fall back. Worth a warning.
    pub offline_fallback: Option<String>,
}

impl ResolvedSource {
    /// The file with repository-relative `name`, if it was resolved.
    pub fn file(&self, name: &str) -> Option<&ResolvedFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Every row of `split`, its files read in shard order and concatenated.
    pub fn read_split(
        &self,
        split: &str,
        options: &crate::data::RowOptions,
    ) -> Result<Vec<String>, SourceError> {
        let mut rows = Vec::new();
        for path in self.split(split)? {
            let more =
                crate::data::read_rows_with(path, options).map_err(|source| SourceError::Rows {
                    spec: self.spec.to_string(),
                    source,
                })?;
            rows.extend(more);
        }
        Ok(rows)
    }

    /// The data files of `split`, or an error naming the splits there are.
    pub fn split(&self, split: &str) -> Result<&[PathBuf], SourceError> {
        self.splits
            .get(split)
            .map(Vec::as_slice)
            .ok_or_else(|| SourceError::NoSuchSplit {
                spec: self.spec.to_string(),
                split: split.to_string(),
                available: self.splits.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

/// Whether a source can be used without downloading (decided without network).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PlanStatus {
    /// On this machine. `commit` is the cached commit of a Hub revision (when
    /// online, `resolve` still asks the Hub whether the revision moved).
    Available {
        location: PathBuf,
        commit: Option<String>,
    },
    /// Must be downloaded first; `what` says what is missing. With
    /// `blocked_offline`, HF_HUB_OFFLINE forbids the download.
    MustFetch { what: String, blocked_offline: bool },
}

/// Resolves `spec` to local files and a content identity. Local paths are
/// hashed; Hub sources are looked up (and downloaded into the HF cache when
/// needed) unless `opts.hub.offline`, in which case only the cache is used.
pub fn resolve(spec: &SourceSpec, opts: &ResolveOptions) -> Result<ResolvedSource, SourceError> {
    match spec {
        SourceSpec::Local(path) => local::resolve_local(spec, &absolute(path, &opts.base_dir)),
        SourceSpec::Hf(repo) => hf::resolve_hub(spec, repo, &opts.hub),
    }
}

/// Says whether `spec` is available locally or must be fetched, touching
/// only the local disk. A missing local path is an error (nothing can fetch it).
pub fn plan_status(spec: &SourceSpec, opts: &ResolveOptions) -> Result<PlanStatus, SourceError> {
    match spec {
        SourceSpec::Local(path) => {
            let path = absolute(path, &opts.base_dir);
            if path.exists() {
                Ok(PlanStatus::Available {
                    location: path,
                    commit: None,
                })
            } else {
                Err(SourceError::LocalNotFound {
                    spec: spec.to_string(),
                    path,
                })
            }
        }
        SourceSpec::Hf(repo) => Ok(hf::cache_status(spec, repo, &opts.hub)),
    }
}

/// Where a local source's path points: relative paths are relative to `base_dir`
/// (the experiment file's directory).
pub fn absolute(path: &Path, base_dir: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}
