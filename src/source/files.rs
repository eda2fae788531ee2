//! Where a local source's bytes come from: the working tree ([`WorkingTree`]) or a
//! git revision ([`GitRevision`], read with `git ls-tree` / `git cat-file`, never by
//! checking anything out). Local source identities are computed through [`Files`],
//! so `xp plan --since REV` keys a source at REV by exactly the rule a run uses now.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::digest::ContentDigest;

/// Directory nesting followed at most (guards against symlink cycles).
const MAX_DEPTH: usize = 32;

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
}

/// A read-only view of files by absolute path.
pub trait Files {
    /// What is read, for messages: "the working tree", "commit 1a2b3c4d (HEAD~1)".
    fn describe(&self) -> String;
    /// `None` when nothing is at `path`.
    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>>;
    /// The regular files under `dir` as sorted `/`-separated relative names,
    /// hidden entries (`.git`, `.cache`, ...) skipped at every level.
    fn files_under(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// blake3 of a regular file's content.
    fn digest(&self, path: &Path) -> io::Result<ContentDigest>;
}

/// The files on disk now.
pub struct WorkingTree;

impl Files for WorkingTree {
    fn describe(&self) -> String {
        "the working tree".into()
    }

    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Some(FileKind::Dir)),
            Ok(_) => Ok(Some(FileKind::File)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn files_under(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        walk(dir, "", 0, &mut names).map_err(|(p, e)| io::Error::new(e.kind(), at(&p, e)))?;
        names.sort();
        Ok(names)
    }

    fn digest(&self, path: &Path) -> io::Result<ContentDigest> {
        ContentDigest::of_file(path)
    }
}

fn at(path: &Path, e: io::Error) -> String {
    format!("{}: {e}", path.display())
}

/// Collects regular files under `dir` as `/`-separated relative names,
/// skipping hidden entries.
pub(super) fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), (PathBuf, io::Error)> {
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

/// Why a git revision cannot be read; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run `git` ({source}); --since needs git installed and on PATH")]
    NoGit {
        #[source]
        source: io::Error,
    },
    #[error(
        "`{}` is not inside a git repository, so --since has no history to read; \
         run `git init` and commit the experiment, or drop --since",
        dir.display()
    )]
    NotARepo { dir: PathBuf },
    #[error(
        "`{rev}` is not a commit of the repository at `{}` ({message}); \
         pick one from `git log --oneline` (e.g. HEAD~1, a branch, a tag or a commit id)",
        toplevel.display()
    )]
    BadRevision {
        rev: String,
        toplevel: PathBuf,
        message: String,
    },
    #[error("`git {command}` failed: {message}")]
    Failed { command: String, message: String },
}

/// The files of one commit of the repository holding a directory.
#[derive(Clone, Debug)]
pub struct GitRevision {
    /// The repository's top level, canonical.
    toplevel: PathBuf,
    /// The revision as the user wrote it.
    rev: String,
    /// The full commit id it resolved to.
    commit: String,
}

impl GitRevision {
    /// Resolves `rev` (any `git rev-parse` revision) in the repository holding `dir`.
    pub fn open(dir: &Path, rev: &str) -> Result<GitRevision, GitError> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let top = git_in(dir, &["rev-parse", "--show-toplevel"])?;
        if !top.status.success() {
            return Err(GitError::NotARepo {
                dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            });
        }
        let toplevel = PathBuf::from(String::from_utf8_lossy(&top.stdout).trim_end());
        let toplevel = toplevel.canonicalize().unwrap_or(toplevel);
        // `--end-of-options` keeps a revision that starts with `-` from being an option.
        let spec = format!("{rev}^{{commit}}");
        let out = git_in(
            &toplevel,
            &["rev-parse", "--verify", "--end-of-options", &spec],
        )?;
        if !out.status.success() || rev.is_empty() {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(GitError::BadRevision {
                rev: rev.to_string(),
                toplevel,
                message: if message.is_empty() {
                    "unknown revision".into()
                } else {
                    message.lines().last().unwrap_or_default().to_string()
                },
            });
        }
        let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(GitRevision {
            toplevel,
            rev: rev.to_string(),
            commit,
        })
    }

    /// The full commit id.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// The revision as given.
    pub fn rev(&self) -> &str {
        &self.rev
    }

    /// The first 8 digits of the commit id.
    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(8)]
    }

    /// The `/`-separated path of `path` inside the repository, or `None` outside it.
    /// Relative paths are relative to the current directory.
    pub fn repo_path(&self, path: &Path) -> Option<String> {
        let absolute = canonical_prefix(&normalise(&std::path::absolute(path).ok()?));
        let rel = absolute.strip_prefix(&self.toplevel).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// Whether git ignores `path` (a data folder listed in `.gitignore`, say), in
    /// which case the revision cannot say what it held.
    pub fn is_ignored(&self, path: &Path) -> bool {
        let Some(rel) = self.repo_path(path) else {
            return false;
        };
        if rel.is_empty() {
            return false;
        }
        git_in(&self.toplevel, &["check-ignore", "-q", "--", &rel])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// The content of the file at `path` in this revision, `None` if it had none.
    pub fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.kind(path)? {
            Some(FileKind::File) => self.blob(&self.in_repo(path)?).map(Some),
            Some(FileKind::Dir) => Err(io::Error::other(format!(
                "`{}` is a directory at {}",
                path.display(),
                self.describe()
            ))),
            None => Ok(None),
        }
    }

    fn in_repo(&self, path: &Path) -> io::Result<String> {
        self.repo_path(path).ok_or_else(|| {
            io::Error::other(format!(
                "`{}` is outside the repository at `{}`",
                path.display(),
                self.toplevel.display()
            ))
        })
    }

    /// A file's bytes as a checkout would write them: `--filters` applies the
    /// repository's line-ending conversion and smudge filters (Git LFS replaces its
    /// pointer with the content), so the digest matches the working tree's rule.
    fn blob(&self, rel: &str) -> io::Result<Vec<u8>> {
        let object = format!("{}:{rel}", self.commit);
        self.git(&["cat-file", "--filters", &object])
    }

    /// Runs git at the top level; a failure is an error carrying git's message.
    fn git(&self, args: &[&str]) -> io::Result<Vec<u8>> {
        let out = git_in(&self.toplevel, args).map_err(io::Error::other)?;
        if !out.status.success() {
            return Err(io::Error::other(
                GitError::Failed {
                    command: args.join(" "),
                    message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                }
                .to_string(),
            ));
        }
        Ok(out.stdout)
    }

    /// `git ls-tree -z` entries: (mode, type, path).
    fn ls_tree(&self, args: &[&str]) -> io::Result<Vec<(String, String, String)>> {
        let mut full = vec!["ls-tree", "-z"];
        full.extend_from_slice(args);
        let out = self.git(&full)?;
        let mut entries = Vec::new();
        for record in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let record = String::from_utf8_lossy(record);
            let (meta, path) = record.split_once('\t').ok_or_else(|| {
                io::Error::other(format!("unexpected `git ls-tree` output: {record}"))
            })?;
            let mut fields = meta.split(' ');
            let mode = fields.next().unwrap_or_default().to_string();
            let kind = fields.next().unwrap_or_default().to_string();
            entries.push((mode, kind, path.to_string()));
        }
        Ok(entries)
    }

    fn unsupported(&self, rel: &str, mode: &str) -> io::Error {
        let what = match mode {
            "120000" => "a symbolic link",
            "160000" => "a submodule",
            _ => "not a regular file",
        };
        io::Error::other(format!(
            "`{rel}` is {what} at {}; --since reads only regular files and folders \
             committed to the repository",
            self.describe()
        ))
    }
}

impl Files for GitRevision {
    fn describe(&self) -> String {
        if self.rev.starts_with(self.short()) {
            format!("commit {}", self.short())
        } else {
            format!("commit {} ({})", self.short(), self.rev)
        }
    }

    fn kind(&self, path: &Path) -> io::Result<Option<FileKind>> {
        let rel = self.in_repo(path)?;
        if rel.is_empty() {
            return Ok(Some(FileKind::Dir));
        }
        let found = self.ls_tree(&[&self.commit, "--", &rel])?;
        match found.into_iter().find(|(_, _, p)| *p == rel) {
            None => Ok(None),
            Some((_, kind, _)) if kind == "tree" => Ok(Some(FileKind::Dir)),
            Some((mode, kind, _)) if kind == "blob" && mode != "120000" => Ok(Some(FileKind::File)),
            Some((mode, _, _)) => Err(self.unsupported(&rel, &mode)),
        }
    }

    fn files_under(&self, dir: &Path) -> io::Result<Vec<String>> {
        let rel = self.in_repo(dir)?;
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let mut args = vec!["-r", self.commit.as_str()];
        if !prefix.is_empty() {
            args.extend(["--", prefix.as_str()]);
        }
        let mut names = Vec::new();
        for (mode, _, path) in self.ls_tree(&args)? {
            let Some(name) = path.strip_prefix(&prefix) else {
                continue;
            };
            // The working tree's walk skips hidden entries at every level; so must this.
            if name.split('/').any(|part| part.starts_with('.')) {
                continue;
            }
            if mode == "120000" || mode == "160000" {
                return Err(self.unsupported(&path, &mode));
            }
            names.push(name.to_string());
        }
        names.sort();
        Ok(names)
    }

    fn digest(&self, path: &Path) -> io::Result<ContentDigest> {
        Ok(ContentDigest::of_bytes(&self.blob(&self.in_repo(path)?)?))
    }
}

fn git_in(dir: &Path, args: &[&str]) -> Result<std::process::Output, GitError> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|source| GitError::NoGit { source })
}

/// `a/./b/../c` → `a/c`, without touching the disk.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The longest existing ancestor of `path` made canonical (symlinks such as a
/// temp folder's resolved), the rest appended: a path that does not exist now
/// (a folder removed since the revision) still maps into the repository.
fn canonical_prefix(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut head = path.to_path_buf();
    loop {
        if let Ok(canonical) = head.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (head.file_name().map(|n| n.to_os_string()), head.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                head = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn a_revision_reads_what_was_committed_not_what_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        write(root, "data/a.txt", "one\n");
        write(root, "data/sub/b.txt", "two\n");
        write(root, "data/.hidden/c.txt", "hidden\n");
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "first"]);
        write(root, "data/a.txt", "changed\n");
        write(root, "data/new.txt", "new\n");

        let rev = GitRevision::open(root, "HEAD").unwrap();
        let data = root.join("data");
        assert_eq!(rev.kind(&data).unwrap(), Some(FileKind::Dir));
        assert_eq!(rev.kind(&data.join("a.txt")).unwrap(), Some(FileKind::File));
        assert_eq!(rev.kind(&data.join("new.txt")).unwrap(), None);
        assert_eq!(rev.files_under(&data).unwrap(), ["a.txt", "sub/b.txt"]);
        assert_eq!(
            WorkingTree.files_under(&data).unwrap(),
            ["a.txt", "new.txt", "sub/b.txt"]
        );
        assert_eq!(
            rev.digest(&data.join("a.txt")).unwrap(),
            ContentDigest::of_bytes(b"one\n")
        );
        assert_eq!(
            rev.read(&data.join("a.txt")).unwrap().unwrap(),
            b"one\n".to_vec()
        );
        assert_eq!(rev.read(&data.join("new.txt")).unwrap(), None);
        // A path through `..` and one that no longer exists still map into the repo.
        assert_eq!(
            rev.repo_path(&data.join("sub/../gone/x.txt")).as_deref(),
            Some("data/gone/x.txt")
        );
        assert_eq!(rev.repo_path(Path::new("/")), None);
    }

    #[test]
    fn a_revision_digests_a_file_as_a_checkout_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        write(root, ".gitattributes", "*.txt text eol=crlf\n");
        write(root, "a.txt", "one\ntwo\n");
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "crlf"]);
        std::fs::remove_file(root.join("a.txt")).unwrap();
        git(root, &["checkout", "--", "a.txt"]);
        let checked_out = WorkingTree.digest(&root.join("a.txt")).unwrap();
        assert_eq!(checked_out, ContentDigest::of_bytes(b"one\r\ntwo\r\n"));
        let rev = GitRevision::open(root, "HEAD").unwrap();
        assert_eq!(rev.digest(&root.join("a.txt")).unwrap(), checked_out);
    }

    #[test]
    fn bad_revisions_and_folders_outside_git_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let msg = GitRevision::open(dir.path(), "HEAD")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("not inside a git repository") && msg.contains("git init"),
            "{msg}"
        );
        git(dir.path(), &["init", "-q"]);
        write(dir.path(), "x", "x");
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "x"]);
        let msg = GitRevision::open(dir.path(), "no-such-rev")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`no-such-rev` is not a commit") && msg.contains("git log --oneline"),
            "{msg}"
        );
        let msg = GitRevision::open(dir.path(), "--output=/tmp/x")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is not a commit"), "{msg}");
    }
}
