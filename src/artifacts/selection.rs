//! `selection.json` of a `select` step: how every block of the input was scored and
//! how many copies of it the output holds, with the summary the step's metrics show.
//! Read by people and tests (e.g. which blocks a perplexity filter dropped).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArtifactError, read_json, write_json};

/// `selection.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionFile {
    /// The scoring model's label (`finetune@0.model`, or a source name).
    pub model: String,
    /// The selected data's label (`synthesize@2.blocks`).
    pub data: String,
    /// The rule, as written in the step (`{"lowest": 0.5}`, `"resample"`).
    pub keep: serde_json::Value,
    /// One entry per input block, in file order.
    pub blocks: Vec<BlockChoice>,
    /// Per-block perplexity of the reference (the real data) under the same model;
    /// null unless the rule used it.
    #[serde(default)]
    pub reference_perplexity: Option<Vec<f64>>,
    pub summary: SelectionSummary,
}

/// One input block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockChoice {
    /// exp(mean NLL of the block's next-token predictions) under the scoring model.
    pub perplexity: f64,
    /// The importance weight (resampling only), before normalisation.
    #[serde(default)]
    pub weight: Option<f64>,
    /// Copies of the block in the output (0 or 1 unless resampling).
    pub copies: usize,
}

/// What the selection did: counts and the perplexity distribution before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionSummary {
    pub input_blocks: usize,
    pub output_blocks: usize,
    /// Share of input blocks present in the output at least once.
    pub kept_share: f64,
    /// The input's per-block perplexity.
    pub before: Quantiles,
    /// The output's (a block counted once per copy).
    pub after: Quantiles,
    /// The reference's, when the rule used one.
    #[serde(default)]
    pub reference: Option<Quantiles>,
    /// Resampling: the effective sample size of the weights, (Σw)² / Σw², over the
    /// number of input blocks (1: uniform weights).
    #[serde(default)]
    pub effective_share: Option<f64>,
}

/// Mean and quantiles (linear interpolation, as numpy) of per-block perplexity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub mean: f64,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
}

impl SelectionFile {
    pub const FILE_NAME: &'static str = "selection.json";
    const WHAT: &'static str = "selection.json of a `select` step";

    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        read_json(path, Self::WHAT)
    }

    /// Pretty-printed, with a final newline.
    pub fn write(&self, path: &Path) -> Result<(), ArtifactError> {
        write_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::test_util::round_trip;

    fn quantiles(x: f64) -> Quantiles {
        Quantiles {
            mean: x,
            p10: x - 2.0,
            p25: x - 1.0,
            p50: x,
            p75: x + 1.0,
            p90: x + 2.0,
        }
    }

    fn file(resampled: bool) -> SelectionFile {
        SelectionFile {
            model: "finetune@0.model".into(),
            data: "synthesize@1.blocks".into(),
            keep: if resampled {
                serde_json::json!("resample")
            } else {
                serde_json::json!({"lowest": 0.5})
            },
            blocks: vec![
                BlockChoice {
                    perplexity: 12.5,
                    weight: resampled.then_some(0.25),
                    copies: 0,
                },
                BlockChoice {
                    perplexity: 3.0,
                    weight: resampled.then_some(2.0),
                    copies: if resampled { 2 } else { 1 },
                },
            ],
            reference_perplexity: resampled.then(|| vec![2.5, 4.0]),
            summary: SelectionSummary {
                input_blocks: 2,
                output_blocks: if resampled { 2 } else { 1 },
                kept_share: 0.5,
                before: quantiles(7.75),
                after: quantiles(3.0),
                reference: resampled.then(|| quantiles(3.25)),
                effective_share: resampled.then_some(0.66),
            },
        }
    }

    #[test]
    fn selection_files_round_trip_through_their_file() {
        for resampled in [false, true] {
            let f = file(resampled);
            let text = round_trip(&f);
            assert!(text.contains("\"copies\""), "{text}");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(SelectionFile::FILE_NAME);
            f.write(&path).unwrap();
            assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
            assert_eq!(SelectionFile::read(&path).unwrap(), f);
        }
    }

    #[test]
    fn optional_fields_may_be_absent_and_a_wrong_file_is_named() {
        let text = r#"{"model": "m", "data": "d", "keep": {"highest": 0.2},
            "blocks": [{"perplexity": 2.0, "copies": 1}],
            "summary": {"input_blocks": 1, "output_blocks": 1, "kept_share": 1.0,
              "before": {"mean": 2, "p10": 2, "p25": 2, "p50": 2, "p75": 2, "p90": 2},
              "after": {"mean": 2, "p10": 2, "p25": 2, "p50": 2, "p75": 2, "p90": 2}}}"#;
        let f: SelectionFile = serde_json::from_str(text).unwrap();
        assert_eq!(f.blocks[0].weight, None);
        assert_eq!(f.reference_perplexity, None);
        assert_eq!(f.summary.effective_share, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SelectionFile::FILE_NAME);
        std::fs::write(&path, "{\"model\": 3}").unwrap();
        let err = SelectionFile::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("not a valid selection.json of a `select` step"),
            "{err}"
        );
    }
}
