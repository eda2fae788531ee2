//! The report's inputs, read from the files other kinds write (formats in
//! ML_CONTRACT.md): `scores.json` of `evaluate`, `metrics.jsonl` of
//! `finetune`, `answers.json` of `prompts`. Each input keeps where it came
//! from, so every number in the report can name its step and key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ReportError;

/// Where one input file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The input slot of the report step (`evaluations`, `training`, `answers`).
    pub slot: String,
    /// `step.output` or a source name, as references are written.
    pub label: String,
    /// The producing step, for step outputs.
    pub step: Option<String>,
    /// The producing step's key (hex), for step outputs.
    pub key: Option<String>,
    pub path: PathBuf,
}

/// One evaluated set of `scores.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct ScoreSet {
    /// The set's origin label, e.g. `synthesize@1.blocks`.
    pub label: String,
    /// The key of the step that produced the set, when it is a step output.
    #[serde(default)]
    pub key: Option<String>,
    pub blocks: u64,
    pub tokens: u64,
    pub per_sample_perplexity: Vec<f64>,
    /// Token-weighted perplexity over the whole set (the main number).
    pub corpus_perplexity: f64,
    /// The authors' variant: exp(mean over batches of the batch mean loss).
    pub batch_mean_perplexity: f64,
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub distinct_1: f64,
    pub distinct_2: f64,
    pub distinct_3: f64,
    pub repetition_rate: f64,
    #[serde(default)]
    pub unigram_kl: Option<f64>,
    #[serde(default)]
    pub unigram_js: Option<f64>,
    #[serde(default)]
    pub tail_coverage: Option<f64>,
    #[serde(default)]
    pub tail_mass: Option<f64>,
}

/// A `scores.json`: one scorer model, several sets.
#[derive(Clone, Debug, Deserialize)]
pub struct ScoresFile {
    /// The scorer's origin label, e.g. `finetune@0.model`.
    pub model: String,
    #[serde(default)]
    pub model_key: Option<String>,
    pub sets: Vec<ScoreSet>,
}

#[derive(Clone, Debug)]
pub struct Scores {
    pub provenance: Provenance,
    pub file: ScoresFile,
}

/// One optimizer step of a `metrics.jsonl`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainPoint {
    pub epoch: u32,
    pub step: u64,
    pub loss: f64,
}

/// One epoch's validation of a `metrics.jsonl`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValidPoint {
    pub epoch: u32,
    pub loss: f64,
    pub perplexity: f64,
}

/// The training curves of one `finetune` step.
#[derive(Clone, Debug)]
pub struct Training {
    pub provenance: Provenance,
    pub train: Vec<TrainPoint>,
    pub valid: Vec<ValidPoint>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Answer {
    pub prompt: String,
    pub answer: String,
}

/// An `answers.json`: one model's answers to the fixed prompts.
#[derive(Clone, Debug, Deserialize)]
pub struct AnswersFile {
    /// The answering model's origin label, e.g. `finetune@2.model`.
    pub model: String,
    pub answers: Vec<Answer>,
}

#[derive(Clone, Debug)]
pub struct Answers {
    pub provenance: Provenance,
    pub file: AnswersFile,
}

/// Everything a report is made of.
#[derive(Clone, Debug, Default)]
pub struct ReportInputs {
    pub evaluations: Vec<Scores>,
    pub training: Vec<Training>,
    pub answers: Vec<Answers>,
}

impl ReportInputs {
    pub fn is_empty(&self) -> bool {
        self.evaluations.is_empty() && self.training.is_empty() && self.answers.is_empty()
    }

    /// Every input's provenance, in slot order.
    pub fn provenances(&self) -> Vec<&Provenance> {
        let e = self.evaluations.iter().map(|s| &s.provenance);
        let t = self.training.iter().map(|s| &s.provenance);
        let a = self.answers.iter().map(|s| &s.provenance);
        e.chain(t).chain(a).collect()
    }
}

fn read_text(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A directory input (a step output that is a folder) holds the file by its
/// contract name; a file input is the file itself.
fn resolve(path: &Path, file_name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(file_name)
    } else {
        path.to_path_buf()
    }
}

pub fn read_scores(provenance: Provenance) -> Result<Scores, ReportError> {
    let path = resolve(&provenance.path, "scores.json");
    let file: ScoresFile =
        serde_json::from_str(&read_text(&path)?).map_err(|e| ReportError::Format {
            path: path.clone(),
            what: "scores.json of an `evaluate` step",
            detail: e.to_string(),
        })?;
    Ok(Scores {
        provenance: Provenance { path, ..provenance },
        file,
    })
}

pub fn read_answers(provenance: Provenance) -> Result<Answers, ReportError> {
    let path = resolve(&provenance.path, "answers.json");
    let file: AnswersFile =
        serde_json::from_str(&read_text(&path)?).map_err(|e| ReportError::Format {
            path: path.clone(),
            what: "answers.json of a `prompts` step",
            detail: e.to_string(),
        })?;
    Ok(Answers {
        provenance: Provenance { path, ..provenance },
        file,
    })
}

#[derive(Deserialize)]
struct TrainLine {
    epoch: u32,
    step: u64,
    loss: f64,
}

#[derive(Deserialize)]
struct ValidLine {
    epoch: u32,
    loss: f64,
    perplexity: f64,
}

/// Reads a `metrics.jsonl`; lines of other types are skipped (the format may
/// grow), malformed lines are errors naming the line.
pub fn read_training(provenance: Provenance) -> Result<Training, ReportError> {
    let path = resolve(&provenance.path, "metrics.jsonl");
    let text = read_text(&path)?;
    let mut train = Vec::new();
    let mut valid = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |detail: String| ReportError::Format {
            path: path.clone(),
            what: "metrics.jsonl of a `finetune` step",
            detail: format!("line {}: {detail}", index + 1),
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        match value.get("type").and_then(|t| t.as_str()) {
            Some("train") => {
                let l: TrainLine = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
                train.push(TrainPoint {
                    epoch: l.epoch,
                    step: l.step,
                    loss: l.loss,
                });
            }
            Some("valid") => {
                let l: ValidLine = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
                valid.push(ValidPoint {
                    epoch: l.epoch,
                    loss: l.loss,
                    perplexity: l.perplexity,
                });
            }
            Some(_) => {}
            None => return Err(bad("no \"type\" field".into())),
        }
    }
    Ok(Training {
        provenance: Provenance { path, ..provenance },
        train,
        valid,
    })
}

/// The generation in an origin label: `synthesize@2.blocks` → 2. `None` for
/// labels outside a loop (`blocks.test`, a source name).
pub fn generation_of(label: &str) -> Option<u32> {
    let (_, after) = label.split_once('@')?;
    let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The label with its generation replaced by `*`: `synthesize@2.blocks` →
/// `synthesize@*.blocks`. Labels that differ only by generation group together.
pub fn generation_template(label: &str) -> String {
    match label.split_once('@') {
        Some((before, after)) => {
            let rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
            if rest.len() == after.len() {
                label.to_string()
            } else {
                format!("{before}@*{rest}")
            }
        }
        None => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_parse_from_labels() {
        assert_eq!(generation_of("synthesize@2.blocks"), Some(2));
        assert_eq!(generation_of("finetune@13.metrics"), Some(13));
        assert_eq!(generation_of("blocks.test"), None);
        assert_eq!(generation_of("weird@x.model"), None);
        assert_eq!(
            generation_template("synthesize@12.blocks"),
            "synthesize@*.blocks"
        );
        assert_eq!(generation_template("blocks.test"), "blocks.test");
        assert_eq!(generation_template("a@b.c"), "a@b.c");
    }

    #[test]
    fn metrics_lines_of_unknown_type_are_skipped_and_malformed_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"type\":\"train\",\"epoch\":1,\"step\":1,\"loss\":2.5,\"lr\":0.1,\"tokens_per_s\":9}\n\
             {\"type\":\"note\",\"text\":\"x\"}\n\
             {\"type\":\"valid\",\"epoch\":1,\"loss\":2.0,\"perplexity\":7.39}\n",
        )
        .unwrap();
        let provenance = Provenance {
            slot: "training".into(),
            label: "m".into(),
            step: None,
            key: None,
            path: dir.path().to_path_buf(),
        };
        let t = read_training(provenance.clone()).unwrap();
        assert_eq!(t.train.len(), 1);
        assert_eq!(t.valid[0].perplexity, 7.39);
        std::fs::write(&path, "{\"type\":\"train\",\"epoch\":1}\n").unwrap();
        let err = read_training(provenance).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("metrics.jsonl"),
            "{err}"
        );
    }
}
