//! Files and folders of the repository as inputs (`file:scripts/filter.py`). Each
//! becomes a source named by its reference, whose value is its path on this
//! machine, so the planner digests its content like any local source's: editing a
//! script reruns the steps that read it, and moving the repository does not.
//!
//! The repository is the git work tree that holds the experiment file, or the
//! file's folder when it is not in one.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::SourceDecl;
use super::error::{Problem, SpecError};
use super::expand::Expansion;
use super::location::SourceMap;

/// The root that `file:` paths are relative to: the nearest folder at or above
/// `dir` holding `.git` (a folder, or a file in a linked work tree), else `dir`.
pub(crate) fn repository_root(dir: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(&dir)
        .to_path_buf()
}

/// A source for every `file:` reference of the expanded steps, in name order.
pub(crate) fn file_sources(
    expansion: &Expansion,
    dir: &Path,
    map: &SourceMap<'_>,
) -> Result<BTreeMap<String, SourceDecl>, SpecError> {
    let mut out = BTreeMap::new();
    let mut root = None;
    for expanded in &expansion.steps {
        let step = &expanded.decl;
        for slot in step.params.inputs() {
            for (reference, label) in slot.refs.iter().zip(slot.labels().iter().cycle()) {
                let Some(path) = reference.file_path() else {
                    continue;
                };
                if out.contains_key(reference.as_str()) {
                    continue;
                }
                let span = expanded
                    .ref_spans
                    .get(reference.as_str())
                    .unwrap_or(&expanded.name_span);
                let root = root.get_or_insert_with(|| repository_root(dir));
                if let Err(why) = check_path(path) {
                    let problem = Problem::BadRef {
                        place: format!("`{label}` of step `{}`", step.name),
                        reference: reference.to_string(),
                        why: format!(
                            "{why}; `file:` takes a path relative to the repository's root ({}), \
                             like `file:scripts/filter.py`",
                            root.display()
                        ),
                    };
                    return Err(map.error(span, problem));
                }
                let decl = SourceDecl {
                    name: reference.to_string(),
                    value: root.join(path).display().to_string(),
                    location: map.locate(span),
                };
                out.insert(reference.to_string(), decl);
            }
        }
    }
    Ok(out)
}

/// Why `path` is not a plain relative path inside the repository, if it is not.
/// One spelling per file, so a file has one source name (and `{repo}/PATH` in a
/// command's arguments can be matched against it).
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.contains('\\') || path.ends_with('/') || path.contains("//") {
        return Err("write the path with single `/` between names and none at the end".into());
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => {}
            Component::ParentDir => {
                return Err("`..` would leave the repository".into());
            }
            Component::CurDir => return Err("leave out `.`".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("the path is absolute".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_plain_and_inside() {
        for ok in ["a", "scripts/filter.py", "data/x.v2.jsonl", "a/b/c"] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "./a",
            "a/",
            "a//b",
            "a\\b",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_root_is_the_nearest_git_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        // No `.git` up to the temp dir's root is assumed (temp dirs are not in a repository).
        if !canonical.ancestors().any(|d| d.join(".git").exists()) {
            assert_eq!(repository_root(&inner), canonical.join("a/b"));
        }
        std::fs::create_dir(dir.path().join("a/.git")).unwrap();
        assert_eq!(repository_root(&inner), canonical.join("a"));
    }
}
