//! `answers.json` of a `prompts` step: one model's answers to the fixed prompts
//! (seed Table 1). Read by the report.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArtifactError, read_json, write_json};

/// `answers.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswersFile {
    /// The answering model's label (`finetune@2.model`, or a source name).
    pub model: String,
    /// One per prompt, in the step's order; empty when the step had no prompts.
    pub answers: Vec<Answer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The prompt as written in the experiment file.
    pub prompt: String,
    /// The new tokens, decoded (special tokens skipped).
    pub answer: String,
    /// The new tokens' ids.
    #[serde(default)]
    pub ids: Vec<u32>,
}

impl AnswersFile {
    pub const FILE_NAME: &'static str = "answers.json";
    const WHAT: &'static str = "answers.json of a `prompts` step";

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

    #[test]
    fn answers_round_trip_in_the_written_order() {
        let file = AnswersFile {
            model: "finetune@1.model".into(),
            answers: vec![Answer {
                prompt: "The river | flows".into(),
                answer: " and <joins>\nthe sea".into(),
                ids: vec![2, 7, 9],
            }],
        };
        let text = round_trip(&file);
        let model = text.find("\"model\"").unwrap();
        let prompt = text.find("\"prompt\"").unwrap();
        let answer = text.find("\"answer\"").unwrap();
        let ids = text.find("\"ids\"").unwrap();
        assert!(model < prompt && prompt < answer && answer < ids, "{text}");
    }

    /// A generation with no answers (a step with an empty prompt list).
    #[test]
    fn a_generation_with_no_answers_round_trips() {
        let file = AnswersFile {
            model: "finetune@3.model".into(),
            answers: Vec::new(),
        };
        let text = round_trip(&file);
        assert!(text.contains("\"answers\": []"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AnswersFile::FILE_NAME);
        file.write(&path).unwrap();
        assert_eq!(AnswersFile::read(&path).unwrap(), file);
    }
}
