//! Local sources: a file or a directory, identified by content only (moving
//! or renaming the directory does not change its identity).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files::{FileKind, Files, WorkingTree, walk};
use super::layout::{infer_split, is_data_file};
use super::{
    ResolvedFile, ResolvedSource, SourceError, SourceIdentity, SourceSpec, digest_of_listing,
};
use crate::digest::ContentDigest;

pub(super) fn resolve_local(spec: &SourceSpec, path: &Path) -> Result<ResolvedSource, SourceError> {
    match listing(&WorkingTree, spec, path)? {
        Listing::File(digest) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut splits = BTreeMap::new();
            if is_data_file(&name) {
                // `datasets` calls the split of a lone data file `train`.
                splits.insert("train".to_string(), vec![path.to_path_buf()]);
            }
            Ok(ResolvedSource {
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
            })
        }
        Listing::Dir(named) => {
            let files: Vec<ResolvedFile> = named
                .into_iter()
                .map(|(name, digest)| ResolvedFile {
                    path: path.join(&name),
                    name,
                    digest,
                })
                .collect();
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
    }
}

/// The identity of the local file or folder at `path` as `files` holds it: the
/// same rule as [`resolve_local`], so a source read from a git revision keys
/// exactly as it would if it were checked out.
pub fn local_identity(
    files: &dyn Files,
    spec: &SourceSpec,
    path: &Path,
) -> Result<SourceIdentity, SourceError> {
    Ok(match listing(files, spec, path)? {
        Listing::File(digest) => SourceIdentity::LocalFile { digest },
        Listing::Dir(named) => SourceIdentity::LocalDir {
            digest: digest_of_listing(named.iter().map(|(n, d)| (n.as_str(), d))),
        },
    })
}

/// A local source's content: one file's digest, or a folder's files by sorted name.
enum Listing {
    File(ContentDigest),
    Dir(Vec<(String, ContentDigest)>),
}

fn listing(files: &dyn Files, spec: &SourceSpec, path: &Path) -> Result<Listing, SourceError> {
    let io_err = |path: &Path, source| SourceError::Io {
        spec: spec.to_string(),
        path: path.to_path_buf(),
        source,
    };
    match files.kind(path).map_err(|e| io_err(path, e))? {
        None => Err(SourceError::LocalNotFound {
            spec: spec.to_string(),
            path: path.to_path_buf(),
        }),
        Some(FileKind::File) => Ok(Listing::File(
            files.digest(path).map_err(|e| io_err(path, e))?,
        )),
        Some(FileKind::Dir) => {
            let names = files.files_under(path).map_err(|e| io_err(path, e))?;
            let mut named = Vec::with_capacity(names.len());
            for name in names {
                let file_path = path.join(&name);
                let digest = files
                    .digest(&file_path)
                    .map_err(|e| io_err(&file_path, e))?;
                named.push((name, digest));
            }
            Ok(Listing::Dir(named))
        }
    }
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
