//! One serde type per output file that more than one module reads or writes: the
//! step kind that writes the file and everything that reads it (other kinds, the
//! report, tests) use the type here, so a file's format is declared once.
//!
//! | file            | written by   | read by           | type                         |
//! |-----------------|--------------|-------------------|------------------------------|
//! | `scores.json`   | `evaluate`   | `report`          | [`scores::ScoresFile`]       |
//! | `answers.json`  | `prompts`    | `report`          | [`answers::AnswersFile`]     |
//! | `metrics.jsonl` | `finetune`   | `report`          | [`metrics::TrainingMetrics`] |
//! | `samples.jsonl` | `synthesize` | people, tests     | [`samples::Sample`]          |
//! | `selection.json`| `select`     | people, tests     | [`selection::SelectionFile`] |
//!
//! A change to a type changes the file's format: bump the writing kind's
//! `VERSION` (its cached entries were written in the old format) and say so in
//! the CHANGELOG. Fields that older files may lack are `#[serde(default)]`.
//!
//! This module depends on serde alone, so every other module may use it.

pub mod answers;
pub mod labels;
pub mod metrics;
pub mod samples;
pub mod scores;
pub mod selection;

use std::path::{Path, PathBuf};

pub use answers::{Answer, AnswersFile};
pub use metrics::{MetricsLine, TrainLine, TrainingMetrics, ValidLine};
pub use samples::Sample;
pub use scores::{ScoresFile, SetScores};
pub use selection::{BlockChoice, Quantiles, SelectionFile, SelectionSummary};

/// A file that could not be read, or is not in its type's format.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not the format of `what` (e.g. "scores.json of an `evaluate` step");
    /// `detail` names the line for a JSON-lines file.
    #[error("{path}: not a valid {what}: {detail}")]
    Format {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}

fn read_text(path: &Path) -> Result<String, ArtifactError> {
    std::fs::read_to_string(path).map_err(|source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_text(path: &Path, text: &str) -> Result<(), ArtifactError> {
    std::fs::write(path, text).map_err(|source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A pretty-printed JSON document with a final newline (`scores.json`, `answers.json`).
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ArtifactError> {
    let text = serde_json::to_string_pretty(value).expect("artifact types serialise");
    write_text(path, &(text + "\n"))
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, ArtifactError> {
    serde_json::from_str(&read_text(path)?).map_err(|e| ArtifactError::Format {
        path: path.to_path_buf(),
        what,
        detail: e.to_string(),
    })
}

/// One JSON object per line, each line ending in a newline.
fn to_json_lines<T: serde::Serialize>(lines: &[T]) -> String {
    let mut text = String::new();
    for line in lines {
        text += &serde_json::to_string(line).expect("artifact types serialise");
        text.push('\n');
    }
    text
}

/// Parses JSON lines (blank lines skipped); a malformed line is an error naming it.
fn from_json_lines<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
    what: &'static str,
) -> Result<Vec<T>, ArtifactError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| ArtifactError::Format {
                path: path.to_path_buf(),
                what,
                detail: format!("line {}: {e}", index + 1),
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_util {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// Writes `value` as `write` does, reads it back, and checks both the value
    /// and the bytes survive (a second write gives the same text).
    pub fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        value: &T,
    ) -> String {
        let text = serde_json::to_string_pretty(value).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, value);
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), text);
        text
    }
}
