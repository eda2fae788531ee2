//! `scores.json` of an `evaluate` step: one scoring model, one entry per block
//! set it scored. Read by the report. Metrics that cannot be computed are null
//! (`None`): distinct-n of a set whose blocks are shorter than n, repetition of
//! blocks of one token, divergences and tail metrics without a `reference`.
//! Definitions of every number: [`crate::eval`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArtifactError, read_json, write_json};

/// `scores.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoresFile {
    /// The scoring model's label (`finetune@0.model`, or a source name).
    pub model: String,
    /// The key of the step that made the model; null for a source.
    #[serde(default)]
    pub model_key: Option<String>,
    pub sets: Vec<SetScores>,
}

/// One evaluated block set in `scores.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetScores {
    /// The set's label (`synthesize@1.blocks`, or a source name).
    pub label: String,
    /// The key of the step that made the set; null for a source.
    #[serde(default)]
    pub key: Option<String>,
    pub blocks: usize,
    /// Tokens in the set (blocks × block size).
    pub tokens: usize,
    /// exp(mean loss) of every block, in file order.
    pub per_sample_perplexity: Vec<f64>,
    /// exp(Σ nll / Σ predicted tokens): the main number.
    pub corpus_perplexity: f64,
    /// The authors' variant: exp(mean over batches of `batch_size` of batch mean loss).
    pub batch_mean_perplexity: f64,
    /// Summary of `per_sample_perplexity` (percentiles interpolate linearly, as numpy).
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    /// Share of distinct n-grams; null when every block is shorter than n.
    #[serde(default)]
    pub distinct_1: Option<f64>,
    #[serde(default)]
    pub distinct_2: Option<f64>,
    #[serde(default)]
    pub distinct_3: Option<f64>,
    /// Share of tokens equal to one of the preceding `repetition_window` tokens of
    /// their block; null when no token has a predecessor.
    #[serde(default)]
    pub repetition_rate: Option<f64>,
    /// KL(reference ‖ set) of smoothed unigram distributions, nats.
    #[serde(default)]
    pub unigram_kl: Option<f64>,
    /// Jensen–Shannon divergence of the raw unigram distributions, nats (≤ ln 2).
    #[serde(default)]
    pub unigram_js: Option<f64>,
    /// Share of the reference's rare-tail ids present in the set.
    #[serde(default)]
    pub tail_coverage: Option<f64>,
    /// Relative frequency of the reference's rare-tail ids in the set.
    #[serde(default)]
    pub tail_mass: Option<f64>,
}

impl ScoresFile {
    pub const FILE_NAME: &'static str = "scores.json";
    const WHAT: &'static str = "scores.json of an `evaluate` step";

    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        read_json(path, Self::WHAT)
    }

    /// Pretty-printed, with a final newline.
    pub fn write(&self, path: &Path) -> Result<(), ArtifactError> {
        write_json(path, self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::artifacts::test_util::round_trip;

    /// A set of `blocks` one-token blocks: too short for distinct-2 and -3 and for
    /// repetition, no reference: every optional metric is null.
    pub fn degenerate_set(label: &str) -> SetScores {
        SetScores {
            label: label.into(),
            key: None,
            blocks: 2,
            tokens: 2,
            per_sample_perplexity: vec![3.0, 5.0],
            corpus_perplexity: 3.873,
            batch_mean_perplexity: 3.873,
            mean: 4.0,
            median: 4.0,
            p90: 4.8,
            p99: 4.98,
            distinct_1: Some(1.0),
            distinct_2: None,
            distinct_3: None,
            repetition_rate: None,
            unigram_kl: None,
            unigram_js: None,
            tail_coverage: None,
            tail_mass: None,
        }
    }

    #[test]
    fn a_full_file_round_trips_with_its_field_order() {
        let mut set = degenerate_set("synthesize@1.blocks");
        set.key = Some("ab".repeat(32));
        set.distinct_2 = Some(0.5);
        set.distinct_3 = Some(0.25);
        set.repetition_rate = Some(0.125);
        set.unigram_kl = Some(1.5);
        set.unigram_js = Some(0.25);
        set.tail_coverage = Some(0.75);
        set.tail_mass = Some(0.0625);
        let file = ScoresFile {
            model: "finetune@0.model".into(),
            model_key: Some("cd".repeat(32)),
            sets: vec![set],
        };
        let text = round_trip(&file);
        // The order evaluate has always written (the bytes of old entries).
        let order = [
            "\"model\"",
            "\"model_key\"",
            "\"sets\"",
            "\"label\"",
            "\"key\"",
            "\"blocks\"",
            "\"tokens\"",
            "\"per_sample_perplexity\"",
            "\"corpus_perplexity\"",
            "\"batch_mean_perplexity\"",
            "\"mean\"",
            "\"median\"",
            "\"p90\"",
            "\"p99\"",
            "\"distinct_1\"",
            "\"distinct_2\"",
            "\"distinct_3\"",
            "\"repetition_rate\"",
            "\"unigram_kl\"",
            "\"unigram_js\"",
            "\"tail_coverage\"",
            "\"tail_mass\"",
        ];
        let positions: Vec<usize> = order.iter().map(|f| text.find(f).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    /// A set too short for distinct-3 writes null and reads back as `None`.
    #[test]
    fn a_set_too_short_for_distinct_3_is_null() {
        let file = ScoresFile {
            model: "scorer".into(),
            model_key: None,
            sets: vec![degenerate_set("tiny")],
        };
        let text = round_trip(&file);
        assert!(text.contains("\"distinct_3\": null"), "{text}");
        assert!(text.contains("\"model_key\": null"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ScoresFile::FILE_NAME);
        file.write(&path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
        assert_eq!(ScoresFile::read(&path).unwrap(), file);
    }

    /// Files written before a metric existed read with that metric `None`.
    #[test]
    fn missing_optional_metrics_read_as_none() {
        let text = r#"{"model": "m", "sets": [{"label": "s", "blocks": 1, "tokens": 4,
            "per_sample_perplexity": [2.0], "corpus_perplexity": 2.0,
            "batch_mean_perplexity": 2.0, "mean": 2.0, "median": 2.0, "p90": 2.0,
            "p99": 2.0}]}"#;
        let file: ScoresFile = serde_json::from_str(text).unwrap();
        assert_eq!(file.model_key, None);
        assert_eq!(file.sets[0].distinct_1, None);
        assert_eq!(file.sets[0].tail_mass, None);
    }

    #[test]
    fn a_malformed_file_names_itself_and_its_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.json");
        std::fs::write(&path, "{\"model\": 1}").unwrap();
        let err = ScoresFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("scores.json of an `evaluate` step"), "{err}");
    }
}
