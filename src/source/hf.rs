//! Hugging Face Hub sources, through the hf-hub crate's blocking API and the
//! standard HF cache layout (`<cache>/<models|datasets>--owner--name/` with
//! `refs/<revision>` holding a commit, `snapshots/<commit>/<file>` symlinks
//! into `blobs/`), shared with Python's huggingface_hub.
//!
//! Online, the Hub is asked for the revision's commit and file listing; files
//! missing from that commit's snapshot are downloaded. Offline
//! (`HF_HUB_OFFLINE`), or when the Hub cannot be reached, the cached
//! `refs/<revision>` and snapshot listing stand in for the Hub's answer.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo};

use super::layout::{Selection, select_dataset_files, select_model_files};
use super::local::list_files;
use super::{
    HfRepo, HubOptions, PlanStatus, RepoType, ResolvedFile, ResolvedSource, SourceError,
    SourceIdentity, SourceSpec,
};
use crate::digest::ContentDigest;

fn hub_repo(repo: &HfRepo) -> Repo {
    let repo_type = match repo.repo_type {
        RepoType::Model => hf_hub::RepoType::Model,
        RepoType::Dataset => hf_hub::RepoType::Dataset,
    };
    Repo::with_revision(
        repo.repo.clone(),
        repo_type,
        repo.revision_or_main().to_string(),
    )
}

fn select(repo: &HfRepo, available: &[String]) -> Result<Selection, String> {
    match repo.repo_type {
        RepoType::Model => select_model_files(available),
        RepoType::Dataset => select_dataset_files(repo.config.as_deref(), available),
    }
}

/// `<cache>/<models|datasets>--owner--name`.
fn repo_dir(hub: &HubOptions, repo: &HfRepo) -> PathBuf {
    hub.cache_dir.join(hub_repo(repo).folder_name())
}

fn is_commit_sha(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

fn summarize(names: &[String]) -> String {
    const SHOWN: usize = 20;
    if names.is_empty() {
        return "nothing".to_string();
    }
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(", ... ({} files in all)", names.len()));
    }
    text
}

pub(super) fn resolve_hub(
    spec: &SourceSpec,
    repo: &HfRepo,
    hub: &HubOptions,
) -> Result<ResolvedSource, SourceError> {
    if hub.offline {
        return from_cache(spec, repo, hub, " (HF_HUB_OFFLINE is set)", None);
    }
    let mut builder = ApiBuilder::from_cache(Cache::new(hub.cache_dir.clone()))
        .with_endpoint(hub.endpoint.clone())
        .with_progress(hub.progress);
    if hub.token.is_some() {
        builder = builder.with_token(hub.token.clone());
    }
    let api = builder
        .build()
        .map_err(|source| SourceError::HubClient { source })?;
    let api_repo = api.repo(hub_repo(repo));
    let info = match api_repo.info() {
        Ok(info) => info,
        Err(e) => {
            // Like huggingface_hub when the Hub cannot be reached: fall back to
            // the cache if it holds the revision, and say so.
            let why = format!("asking {} failed: {e}", hub.endpoint);
            return from_cache(spec, repo, hub, &format!(" ({why})"), Some(why));
        }
    };
    let available: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
    let selection = select(repo, &available).map_err(|what| SourceError::MissingRepoFiles {
        spec: spec.to_string(),
        what,
        available: summarize(&available),
    })?;
    let snapshot = repo_dir(hub, repo).join("snapshots").join(&info.sha);
    for name in &selection.files {
        if snapshot.join(name).is_file() {
            continue;
        }
        let path = api_repo
            .download(name)
            .map_err(|source| SourceError::Download {
                spec: spec.to_string(),
                file: name.clone(),
                endpoint: hub.endpoint.clone(),
                source,
            })?;
        if !path.starts_with(&snapshot) {
            return Err(SourceError::CommitChanged {
                spec: spec.to_string(),
                file: name.clone(),
                listed: info.sha.clone(),
                served: path.display().to_string(),
            });
        }
    }
    // Record revision -> commit even when nothing was downloaded, so offline
    // runs later find the commit this run used.
    Cache::new(hub.cache_dir.clone())
        .repo(hub_repo(repo))
        .create_ref(&info.sha)
        .map_err(|source| SourceError::Io {
            spec: spec.to_string(),
            path: repo_dir(hub, repo).join("refs"),
            source,
        })?;
    finish(spec, repo, &snapshot, &info.sha, selection, None)
}

/// The cached commit, snapshot and file selection of `repo`'s revision, or
/// a description of what the cache lacks.
fn cached_selection(
    repo: &HfRepo,
    hub: &HubOptions,
) -> Result<(PathBuf, String, Selection), String> {
    let dir = repo_dir(hub, repo);
    let revision = repo.revision_or_main();
    let commit = if is_commit_sha(revision) && dir.join("snapshots").join(revision).is_dir() {
        revision.to_string()
    } else {
        let ref_path = dir.join("refs").join(revision);
        match std::fs::read_to_string(&ref_path) {
            Ok(text) => text.trim().to_string(),
            Err(_) => {
                return Err(format!(
                    "revision `{revision}` was never fetched (no `{}`)",
                    ref_path.display()
                ));
            }
        }
    };
    let snapshot = dir.join("snapshots").join(&commit);
    let available = list_files(&snapshot).map_err(|(path, e)| {
        format!("cannot list the cached snapshot `{}`: {e}", path.display())
    })?;
    let selection = select(repo, &available).map_err(|what| {
        format!(
            "the cached snapshot of commit {commit} lacks files: {what}; cached: {}",
            summarize(&available)
        )
    })?;
    Ok((snapshot, commit, selection))
}

fn from_cache(
    spec: &SourceSpec,
    repo: &HfRepo,
    hub: &HubOptions,
    why: &str,
    fallback: Option<String>,
) -> Result<ResolvedSource, SourceError> {
    let (snapshot, commit, selection) =
        cached_selection(repo, hub).map_err(|missing| SourceError::NotInCache {
            spec: spec.to_string(),
            cache_dir: hub.cache_dir.clone(),
            why: why.to_string(),
            missing,
        })?;
    finish(spec, repo, &snapshot, &commit, selection, fallback)
}

/// Whether the cache can serve `repo` without any download (no network).
pub(super) fn cache_status(spec: &SourceSpec, repo: &HfRepo, hub: &HubOptions) -> PlanStatus {
    match cached_selection(repo, hub) {
        Ok((snapshot, commit, _)) => PlanStatus::Available {
            location: snapshot,
            commit: Some(commit),
        },
        Err(missing) => PlanStatus::MustFetch {
            what: format!("{spec}: {missing}"),
            blocked_offline: hub.offline,
        },
    }
}

fn finish(
    spec: &SourceSpec,
    repo: &HfRepo,
    snapshot: &Path,
    commit: &str,
    selection: Selection,
    offline_fallback: Option<String>,
) -> Result<ResolvedSource, SourceError> {
    let mut files = Vec::with_capacity(selection.files.len());
    for name in &selection.files {
        let path = snapshot.join(name);
        let digest = ContentDigest::of_file(&path).map_err(|source| SourceError::Io {
            spec: spec.to_string(),
            path: path.clone(),
            source,
        })?;
        files.push(ResolvedFile {
            name: name.clone(),
            path,
            digest,
        });
    }
    let splits = selection
        .splits
        .into_iter()
        .map(|(split, names)| (split, names.iter().map(|n| snapshot.join(n)).collect()))
        .collect();
    let identity = SourceIdentity::Hub {
        repo: repo.repo.clone(),
        repo_type: repo.repo_type,
        commit: commit.to_string(),
        files: files.iter().map(|f| (f.name.clone(), f.digest)).collect(),
    };
    Ok(ResolvedSource {
        spec: spec.clone(),
        root: snapshot.to_path_buf(),
        files,
        splits,
        identity,
        offline_fallback,
    })
}

#[cfg(test)]
#[path = "hf_tests.rs"]
mod tests;
