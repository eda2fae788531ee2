//! The source string of an experiment file, parsed.
//!
//! - `hf:<repo>` / `hf:<repo>@<revision>`: a model repository on the Hugging
//!   Face Hub (`hf:facebook/opt-125m`, `hf:gpt2@refs/pr/1`).
//! - `hf:datasets/<owner>/<name>[/<config>][@<revision>]`: a dataset
//!   repository, optionally one config (a top-level folder of data files),
//!   e.g. `hf:datasets/Salesforce/wikitext/wikitext-2-raw-v1`.
//! - anything else: a local file or directory; a relative path is resolved
//!   against the experiment file's directory.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SourceError;

/// Which kind of Hub repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoType {
    Model,
    Dataset,
}

/// A Hub repository reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HfRepo {
    /// `owner/name` (or a bare `name` for legacy models such as `gpt2`).
    pub repo: String,
    pub repo_type: RepoType,
    /// Dataset config: the top-level folder whose data files are used.
    pub config: Option<String>,
    /// Branch, tag or commit; None means `main`.
    pub revision: Option<String>,
}

impl HfRepo {
    /// The revision to ask for: the given one or `main`.
    pub fn revision_or_main(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

/// A parsed source string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceSpec {
    Hf(HfRepo),
    /// As written; resolved against the experiment file's directory if relative.
    Local(PathBuf),
}

fn valid_name_part(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl SourceSpec {
    /// Parses a source string (see the module docs for the forms).
    pub fn parse(text: &str) -> Result<Self, SourceError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SourceError::EmptySpec);
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Err(SourceError::UnsupportedScheme {
                spec: text.to_string(),
            });
        }
        let Some(rest) = text.strip_prefix("hf:") else {
            return Ok(Self::Local(PathBuf::from(text)));
        };
        let bad = |reason: &str| SourceError::BadHfSpec {
            spec: text.to_string(),
            reason: reason.to_string(),
        };
        // Repository names never contain '@'; revisions may contain '/'
        // (`refs/pr/1`, `refs/convert/parquet`), so split at the first '@'.
        let (path, revision) = match rest.split_once('@') {
            Some((_, "")) => return Err(bad("empty revision after `@`")),
            Some((path, rev)) => (path, Some(rev.to_string())),
            None => (rest, None),
        };
        if let Some(rev) = &revision
            && (rev.contains("..") || rev.chars().any(|c| c.is_whitespace() || c == '@'))
        {
            return Err(bad("the revision must be a branch, tag or commit name"));
        }
        let parts: Vec<&str> = path.split('/').collect();
        if let Some(bad_part) = parts.iter().find(|p| !valid_name_part(p)) {
            return Err(bad(&format!(
                "`{bad_part}` is not a valid repository path part (letters, digits, `-`, `_`, `.`)"
            )));
        }
        let hf = match parts.as_slice() {
            ["datasets", owner, name] | ["datasets", owner, name, _] => HfRepo {
                repo: format!("{owner}/{name}"),
                repo_type: RepoType::Dataset,
                config: parts.get(3).map(|c| c.to_string()),
                revision,
            },
            ["datasets", ..] => {
                return Err(bad(
                    "a dataset is `hf:datasets/<owner>/<name>[/<config>][@<revision>]`",
                ));
            }
            [_] | [_, _] => HfRepo {
                repo: path.to_string(),
                repo_type: RepoType::Model,
                config: None,
                revision,
            },
            _ => {
                return Err(bad(
                    "a model is `hf:<owner>/<name>[@<revision>]`; a dataset is \
                     `hf:datasets/<owner>/<name>[/<config>][@<revision>]`",
                ));
            }
        };
        Ok(Self::Hf(hf))
    }
}

impl std::str::FromStr for SourceSpec {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SourceSpec {
    /// The canonical source string; parsing it gives the same spec back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Hf(hf) => {
                f.write_str("hf:")?;
                if hf.repo_type == RepoType::Dataset {
                    f.write_str("datasets/")?;
                }
                f.write_str(&hf.repo)?;
                if let Some(config) = &hf.config {
                    write!(f, "/{config}")?;
                }
                if let Some(rev) = &hf.revision {
                    write!(f, "@{rev}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hf(repo: &str, t: RepoType, config: Option<&str>, rev: Option<&str>) -> SourceSpec {
        SourceSpec::Hf(HfRepo {
            repo: repo.to_string(),
            repo_type: t,
            config: config.map(str::to_string),
            revision: rev.map(str::to_string),
        })
    }

    #[test]
    fn parses_every_form() {
        use RepoType::*;
        let cases = [
            (
                "hf:facebook/opt-125m",
                hf("facebook/opt-125m", Model, None, None),
            ),
            ("hf:gpt2", hf("gpt2", Model, None, None)),
            (
                "hf:facebook/opt-125m@abc123",
                hf("facebook/opt-125m", Model, None, Some("abc123")),
            ),
            (
                "hf:gpt2@refs/pr/1",
                hf("gpt2", Model, None, Some("refs/pr/1")),
            ),
            (
                "hf:datasets/Salesforce/wikitext",
                hf("Salesforce/wikitext", Dataset, None, None),
            ),
            (
                "hf:datasets/Salesforce/wikitext/wikitext-2-raw-v1",
                hf(
                    "Salesforce/wikitext",
                    Dataset,
                    Some("wikitext-2-raw-v1"),
                    None,
                ),
            ),
            (
                "hf:datasets/Salesforce/wikitext/wikitext-2-raw-v1@refs/convert/parquet",
                hf(
                    "Salesforce/wikitext",
                    Dataset,
                    Some("wikitext-2-raw-v1"),
                    Some("refs/convert/parquet"),
                ),
            ),
            (
                "data/wiki.train.raw",
                SourceSpec::Local("data/wiki.train.raw".into()),
            ),
            ("/abs/dir", SourceSpec::Local("/abs/dir".into())),
            ("  ./x.txt ", SourceSpec::Local("./x.txt".into())),
        ];
        for (text, expected) in cases {
            let parsed = SourceSpec::parse(text).unwrap();
            assert_eq!(parsed, expected, "{text}");
            // Display is canonical: it parses back to the same spec.
            assert_eq!(SourceSpec::parse(&parsed.to_string()).unwrap(), parsed);
        }
        assert_eq!(
            SourceSpec::parse("hf:datasets/a/b/c@v1")
                .unwrap()
                .to_string(),
            "hf:datasets/a/b/c@v1"
        );
    }

    #[test]
    fn rejects_malformed_specs_with_reasons() {
        let cases = [
            ("", "empty"),
            ("hf:", "not a valid repository path part"),
            ("hf:a/b/c", "a model is `hf:<owner>/<name>"),
            (
                "hf:datasets/wikitext",
                "a dataset is `hf:datasets/<owner>/<name>",
            ),
            ("hf:datasets/a/b/c/d", "a dataset is"),
            ("hf:facebook/opt-125m@", "empty revision"),
            ("hf:a/b@x y", "branch, tag or commit"),
            ("hf:a//b", "not a valid repository path part"),
            ("hf:a/../b", "not a valid repository path part"),
            ("hf:a b/c", "not a valid repository path part"),
            ("https://huggingface.co/gpt2", "not a source"),
        ];
        for (text, expected) in cases {
            let msg = SourceSpec::parse(text).unwrap_err().to_string();
            assert!(msg.contains(expected), "{text}: {msg}");
        }
    }
}
