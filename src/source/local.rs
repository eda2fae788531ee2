//! Local sources: a file or a directory, identified by content only (moving
//! or renaming the directory does not change its identity).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::layout::{infer_split, is_data_file};
use super::{
    ResolvedFile, ResolvedSource, SourceError, SourceIdentity, SourceSpec, digest_of_listing,
};
use crate::digest::ContentDigest;

/// Directory nesting followed at most (guards against symlink cycles).
const MAX_DEPTH: usize = 32;

pub(super) fn resolve_local(spec: &SourceSpec, path: &Path) -> Result<ResolvedSource, SourceError> {
    let io_err = |path: &Path, source| SourceError::Io {
        spec: spec.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceError::LocalNotFound {
                spec: spec.to_string(),
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(path, e)),
    };
    if meta.is_file() {
        let digest = ContentDigest::of_file(path).map_err(|e| io_err(path, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut splits = BTreeMap::new();
        if is_data_file(&name) {
            // `datasets` calls the split of a lone data file `train`.
            splits.insert("train".to_string(), vec![path.to_path_buf()]);
        }
        return Ok(ResolvedSource {
            spec: spec.clone(),
            root: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            files: vec![ResolvedFile {
                name,
                path: path.to_path_buf(),
                digest,
            }],
            splits,
            identity: SourceIdentity::LocalFile { digest },
            offline_fallback: None,
        });
    }
    let mut names = Vec::new();
    walk(path, "", 0, &mut names).map_err(|(p, e)| io_err(&p, e))?;
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let file_path = path.join(&name);
        let digest = ContentDigest::of_file(&file_path).map_err(|e| io_err(&file_path, e))?;
        files.push(ResolvedFile {
            name,
            path: file_path,
            digest,
        });
    }
    let digest = digest_of_listing(files.iter().map(|f| (f.name.as_str(), &f.digest)));
    Ok(ResolvedSource {
        spec: spec.clone(),
        root: path.to_path_buf(),
        splits: local_splits(&files),
        files,
        identity: SourceIdentity::LocalDir { digest },
        offline_fallback: None,
    })
}

/// Data files by split from the keywords in their paths; when no file names
/// a split, they all form `train` (as `datasets` does).
fn local_splits(files: &[ResolvedFile]) -> BTreeMap<String, Vec<PathBuf>> {
    let data: Vec<&ResolvedFile> = files.iter().filter(|f| is_data_file(&f.name)).collect();
    let mut splits: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in &data {
        if let Some(split) = infer_split(&f.name) {
            splits
                .entry(split.to_string())
                .or_default()
                .push(f.path.clone());
        }
    }
    if splits.is_empty() && !data.is_empty() {
        splits.insert(
            "train".to_string(),
            data.iter().map(|f| f.path.clone()).collect(),
        );
    }
    splits
}

/// Collects regular files under `dir` as `/`-separated relative names,
/// skipping hidden entries (`.git`, `.cache`, ...).
fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), (PathBuf, std::io::Error)> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, as the HF cache's snapshot folders are made of them.
        let meta = std::fs::metadata(&path).map_err(|e| (path.clone(), e))?;
        let rel = format!("{prefix}{name}");
        if meta.is_dir() {
            walk(&path, &format!("{rel}/"), depth + 1, out)?;
        } else if meta.is_file() {
            out.push(rel);
        }
    }
    Ok(())
}

/// Relative names of the regular files under `dir` (for the HF cache listing).
pub(super) fn list_files(dir: &Path) -> Result<Vec<String>, (PathBuf, std::io::Error)> {
    let mut names = Vec::new();
    walk(dir, "", 0, &mut names)?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{HubOptions, PlanStatus, ResolveOptions, plan_status, resolve};

    fn opts(base: &Path) -> ResolveOptions {
        ResolveOptions {
            base_dir: base.to_path_buf(),
            hub: HubOptions::from_lookup(|_| None),
        }
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn local_file_is_identified_by_content() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/wiki.train.raw", "x\n");
        write(dir.path(), "b/copy.txt", "x\n");
        let spec = SourceSpec::parse("a/wiki.train.raw").unwrap();
        let r = resolve(&spec, &opts(dir.path())).unwrap();
        let expected = ContentDigest::of_bytes(b"x\n");
        assert_eq!(r.identity, SourceIdentity::LocalFile { digest: expected });
        assert_eq!(
            r.split("train").unwrap(),
            [dir.path().join("a/wiki.train.raw")]
        );
        assert_eq!(r.root, dir.path().join("a"));
        let msg = r.split("test").unwrap_err().to_string();
        assert!(
            msg.contains("no split `test` (splits found: train)"),
            "{msg}"
        );
        // Another name, same content: same identity.
        let other = resolve(&SourceSpec::parse("b/copy.txt").unwrap(), &opts(dir.path())).unwrap();
        assert_eq!(other.identity.content_digest(), r.identity.content_digest());
    }

    #[test]
    fn local_dir_digest_covers_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wikitext-2-raw");
        write(&root, "wiki.train.raw", "t\n");
        write(&root, "wiki.valid.raw", "v\n");
        write(&root, "wiki.test.raw", "s\n");
        write(&root, "README", "about\n");
        write(&root, ".cache/huggingface/x.lock", "ignored");
        let spec = SourceSpec::parse(root.to_str().unwrap()).unwrap();
        let r = resolve(&spec, &opts(Path::new("/unused"))).unwrap();
        let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "README",
                "wiki.test.raw",
                "wiki.train.raw",
                "wiki.valid.raw"
            ]
        );
        assert_eq!(
            r.splits.keys().collect::<Vec<_>>(),
            ["test", "train", "validation"]
        );
        assert_eq!(
            r.split("validation").unwrap(),
            [root.join("wiki.valid.raw")]
        );
        let before = r.identity.content_digest();

        // The hidden folder does not count; a content change and a rename do.
        write(&root, ".cache/huggingface/x.lock", "changed");
        assert_eq!(
            resolve(&spec, &opts(Path::new("/")))
                .unwrap()
                .identity
                .content_digest(),
            before
        );
        write(&root, "README", "about!\n");
        let changed = resolve(&spec, &opts(Path::new("/")))
            .unwrap()
            .identity
            .content_digest();
        assert_ne!(changed, before);
        std::fs::rename(root.join("README"), root.join("README.md")).unwrap();
        let renamed = resolve(&spec, &opts(Path::new("/")))
            .unwrap()
            .identity
            .content_digest();
        assert_ne!(renamed, changed);

        // Moving the whole directory keeps the identity.
        let moved = dir.path().join("moved");
        std::fs::rename(&root, &moved).unwrap();
        let spec2 = SourceSpec::parse(moved.to_str().unwrap()).unwrap();
        assert_eq!(
            resolve(&spec2, &opts(Path::new("/")))
                .unwrap()
                .identity
                .content_digest(),
            renamed
        );
    }

    #[test]
    fn dir_without_split_names_is_all_train() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d/part1.jsonl", "{}\n");
        write(dir.path(), "d/part2.jsonl", "{}\n");
        let r = resolve(&SourceSpec::parse("d").unwrap(), &opts(dir.path())).unwrap();
        assert_eq!(r.splits.keys().collect::<Vec<_>>(), ["train"]);
        assert_eq!(r.splits["train"].len(), 2);
    }

    #[test]
    fn missing_local_path_is_an_error_in_resolve_and_plan() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SourceSpec::parse("nope/data.txt").unwrap();
        let msg = resolve(&spec, &opts(dir.path())).unwrap_err().to_string();
        assert!(msg.contains("nope/data.txt` does not exist"), "{msg}");
        assert!(plan_status(&spec, &opts(dir.path())).is_err());
        write(dir.path(), "nope/data.txt", "x");
        assert_eq!(
            plan_status(&spec, &opts(dir.path())).unwrap(),
            PlanStatus::Available {
                location: dir.path().join("nope/data.txt"),
                commit: None
            }
        );
    }
}
