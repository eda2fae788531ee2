//! `metrics.jsonl` of a `finetune` step: one JSON object per line, tagged by
//! `type`: a `train` line per optimizer step, a `valid` line per epoch. Read by
//! the report. Readers skip lines of other types (the format may grow).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArtifactError, from_json_lines, read_text, to_json_lines, write_text};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MetricsLine {
    Train(TrainLine),
    Valid(ValidLine),
    /// A line of a type this version does not know (read, never written).
    #[serde(other)]
    Other,
}

/// One optimizer step (`"type": "train"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainLine {
    /// 1-based epoch.
    pub epoch: u32,
    /// 1-based optimizer step, counted over the whole run.
    pub step: u64,
    /// Mean loss of the step's batch (nats/token).
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// Training throughput of the step.
    pub tokens_per_s: f64,
}

/// The validation at the end of an epoch (`"type": "valid"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidLine {
    /// 1-based epoch.
    pub epoch: u32,
    /// Token-weighted mean loss over the validation blocks (nats/token).
    pub loss: f64,
    /// exp(loss).
    pub perplexity: f64,
}

/// A whole `metrics.jsonl`, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingMetrics {
    pub lines: Vec<MetricsLine>,
}

impl TrainingMetrics {
    pub const FILE_NAME: &'static str = "metrics.jsonl";
    const WHAT: &'static str = "metrics.jsonl of a `finetune` step";

    /// Parses JSON lines (`path` names the file in errors); unknown types become
    /// [`MetricsLine::Other`], a malformed line is an error naming its number.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ArtifactError> {
        Ok(TrainingMetrics {
            lines: from_json_lines(text, path, Self::WHAT)?,
        })
    }

    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        Self::parse(&read_text(path)?, path)
    }

    /// One compact JSON object per line; [`MetricsLine::Other`] lines are dropped.
    pub fn to_text(&self) -> String {
        let known: Vec<&MetricsLine> = self
            .lines
            .iter()
            .filter(|l| !matches!(l, MetricsLine::Other))
            .collect();
        to_json_lines(&known)
    }

    pub fn write(&self, path: &Path) -> Result<(), ArtifactError> {
        write_text(path, &self.to_text())
    }

    /// Every train line, in order.
    pub fn train(&self) -> impl Iterator<Item = &TrainLine> + '_ {
        self.lines.iter().filter_map(|l| match l {
            MetricsLine::Train(t) => Some(t),
            _ => None,
        })
    }

    /// Every valid line, in order.
    pub fn valid(&self) -> impl Iterator<Item = &ValidLine> + '_ {
        self.lines.iter().filter_map(|l| match l {
            MetricsLine::Valid(v) => Some(v),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the trainer has always written come back unchanged.
    #[test]
    fn the_trainers_lines_round_trip_byte_for_byte() {
        let text = "{\"type\":\"train\",\"epoch\":1,\"step\":1,\"loss\":5.5457,\"lr\":0.000048648648648648654,\"tokens_per_s\":2097.6}\n\
                    {\"type\":\"valid\",\"epoch\":1,\"loss\":3.685,\"perplexity\":39.842}\n";
        let metrics = TrainingMetrics::parse(text, Path::new("m")).unwrap();
        assert_eq!(metrics.train().count(), 1);
        let valid: Vec<_> = metrics
            .valid()
            .map(|v| (v.epoch, v.loss, v.perplexity))
            .collect();
        assert_eq!(valid, [(1, 3.685, 39.842)]);
        assert_eq!(metrics.to_text(), text);
    }

    #[test]
    fn unknown_types_are_skipped_and_malformed_lines_named() {
        let text = "{\"type\":\"note\",\"text\":\"x\"}\n\n{\"type\":\"valid\",\"epoch\":2,\"loss\":2.0,\"perplexity\":7.39}\n";
        let metrics = TrainingMetrics::parse(text, Path::new("m")).unwrap();
        assert_eq!(metrics.lines[0], MetricsLine::Other);
        assert_eq!(metrics.valid().count(), 1);
        assert!(!metrics.to_text().contains("note"));
        let err = TrainingMetrics::parse(
            "{\"type\":\"train\",\"epoch\":1}\n",
            Path::new("x/metrics.jsonl"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 1") && err.contains("x/metrics.jsonl"),
            "{err}"
        );
        let err = TrainingMetrics::parse("{\"epoch\":1}\n", Path::new("m"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("type"), "{err}");
    }

    /// A run with no step yet (or a file with nothing in it) is empty, not an error.
    #[test]
    fn an_empty_file_is_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TrainingMetrics::FILE_NAME);
        TrainingMetrics::default().write(&path).unwrap();
        assert_eq!(
            TrainingMetrics::read(&path).unwrap(),
            TrainingMetrics::default()
        );
    }
}
