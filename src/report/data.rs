//! The report's inputs, read from the files other kinds write (their types
//! are in [`crate::artifacts`]): `scores.json` of `evaluate`, `metrics.jsonl`
//! of `finetune`, `answers.json` of `prompts`. Each input keeps where it came
//! from, so every number in the report can name its step and key.

use std::path::PathBuf;

use super::ReportError;
use crate::artifacts::{AnswersFile, ArtifactError, ScoresFile, TrainingMetrics};

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
    /// The file read (absolute, this machine's).
    pub path: PathBuf,
    /// For a step output: the file's path relative to the store's root
    /// (`entries/<key>/out/scores.json`), what the report prints.
    pub store_path: Option<PathBuf>,
}

impl Provenance {
    /// The file as the report prints it: relative to the store for a step
    /// output; for a source, its file name (the experiment file says where it is).
    pub fn shown_path(&self) -> String {
        match &self.store_path {
            Some(p) => p.display().to_string(),
            None => self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.path.display().to_string()),
        }
    }

    /// The provenance of `file_name` inside this input, when the input is a directory.
    fn resolved(self, file_name: &str) -> Provenance {
        if !self.path.is_dir() {
            return self;
        }
        Provenance {
            path: self.path.join(file_name),
            store_path: self.store_path.map(|p| p.join(file_name)),
            ..self
        }
    }
}

#[derive(Clone, Debug)]
pub struct Scores {
    pub provenance: Provenance,
    pub file: ScoresFile,
}

/// The training curves of one `finetune` step.
#[derive(Clone, Debug)]
pub struct Training {
    pub provenance: Provenance,
    pub metrics: TrainingMetrics,
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

fn report_error(e: ArtifactError) -> ReportError {
    match e {
        ArtifactError::Io { path, source } => ReportError::Io { path, source },
        ArtifactError::Format { path, what, detail } => ReportError::Format { path, what, detail },
    }
}

pub fn read_scores(provenance: Provenance) -> Result<Scores, ReportError> {
    // A directory input (a step output that is a folder) holds the file by its
    // artifact name; a file input is the file itself.
    let provenance = provenance.resolved(ScoresFile::FILE_NAME);
    let file = ScoresFile::read(&provenance.path).map_err(report_error)?;
    Ok(Scores { provenance, file })
}

pub fn read_answers(provenance: Provenance) -> Result<Answers, ReportError> {
    let provenance = provenance.resolved(AnswersFile::FILE_NAME);
    let file = AnswersFile::read(&provenance.path).map_err(report_error)?;
    Ok(Answers { provenance, file })
}

/// Reads a `metrics.jsonl`; lines of other types are skipped (the format may
/// grow), malformed lines are errors naming the line.
pub fn read_training(provenance: Provenance) -> Result<Training, ReportError> {
    let provenance = provenance.resolved(TrainingMetrics::FILE_NAME);
    let metrics = TrainingMetrics::read(&provenance.path).map_err(report_error)?;
    Ok(Training {
        provenance,
        metrics,
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
            store_path: Some("entries/k/out".into()),
        };
        let t = read_training(provenance.clone()).unwrap();
        assert_eq!(t.provenance.shown_path(), "entries/k/out/metrics.jsonl");
        assert_eq!(t.metrics.train().count(), 1);
        assert_eq!(t.metrics.valid().next().unwrap().perplexity, 7.39);
        std::fs::write(&path, "{\"type\":\"train\",\"epoch\":1}\n").unwrap();
        let err = read_training(provenance).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("metrics.jsonl"),
            "{err}"
        );
    }
}
