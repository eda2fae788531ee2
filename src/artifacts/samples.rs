//! `samples.jsonl` of a `synthesize` step: one line per prompt block, the text
//! the model wrote for it (or the kept original, `real`), for people to read.
//! The blocks themselves are in `synthetic.blocks`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArtifactError, from_json_lines, read_text, to_json_lines, write_text};

/// One line of `samples.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The prompt block's index in the prompts file.
    pub index: usize,
    /// The prompt block's ids.
    pub prompt_ids: Vec<u32>,
    /// The continuation's ids (before padding to `new_tokens`), or the kept block's.
    pub ids: Vec<u32>,
    /// `prompt_ids` decoded (special tokens kept).
    pub prompt: String,
    /// `ids` decoded (special tokens kept).
    pub text: String,
    /// Whether the block is original data kept by `keep_real` rather than generated.
    pub real: bool,
}

impl Sample {
    pub const FILE_NAME: &'static str = "samples.jsonl";
    const WHAT: &'static str = "samples.jsonl of a `synthesize` step";

    /// One compact JSON object per line.
    pub fn write_all(samples: &[Sample], path: &Path) -> Result<(), ArtifactError> {
        write_text(path, &to_json_lines(samples))
    }

    pub fn read_all(path: &Path) -> Result<Vec<Sample>, ArtifactError> {
        from_json_lines(&read_text(path)?, path, Self::WHAT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_byte_for_byte() {
        let text = "{\"index\":0,\"prompt_ids\":[2,5],\"ids\":[7,8,9],\"prompt\":\"</s>the\",\"text\":\" model \\\"learns\\\"\",\"real\":false}\n\
                    {\"index\":1,\"prompt_ids\":[],\"ids\":[],\"prompt\":\"\",\"text\":\"\",\"real\":true}\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Sample::FILE_NAME);
        std::fs::write(&path, text).unwrap();
        let samples = Sample::read_all(&path).unwrap();
        assert_eq!(samples.len(), 2);
        assert!(samples[1].real && samples[1].ids.is_empty());
        Sample::write_all(&samples, &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn no_samples_is_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Sample::FILE_NAME);
        Sample::write_all(&[], &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        assert!(Sample::read_all(&path).unwrap().is_empty());
    }
}
