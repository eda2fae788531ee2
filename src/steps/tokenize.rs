//! `tokenize`: dataset rows → token ids → fixed-size blocks, one block file per split.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{InputRef, InputSlot, KindParams};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// Concatenate all rows of a split, cut into blocks, drop the remainder.
    Global,
    /// As the authors' `datasets.map(batched=True)`: concatenate and drop the
    /// remainder per batch of `rows_per_batch` rows.
    Batched,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The dataset: a source (`hf:datasets/...` or a local file/directory) or a
    /// step output with splits.
    pub data: InputRef,
    /// The tokenizer: a model source, a tokenizer directory, or `tokenizer.tokenizer`.
    pub tokenizer: InputRef,
    /// Tokens per block.
    #[serde(default = "default_block_size")]
    pub block_size: usize,
    /// The splits to tokenize; each becomes an output of the same name.
    #[serde(default = "default_splits")]
    pub splits: Vec<String>,
    #[serde(default = "default_grouping")]
    pub grouping: Grouping,
    /// Rows per group when `grouping = "batched"` (HF datasets' default batch size).
    #[serde(default = "default_rows_per_batch")]
    pub rows_per_batch: usize,
    /// The column or JSON field holding the text.
    #[serde(default = "super::tokenizer::default_text_field")]
    pub text_field: String,
}

fn default_block_size() -> usize {
    64
}
fn default_splits() -> Vec<String> {
    vec!["train".into(), "validation".into(), "test".into()]
}
fn default_grouping() -> Grouping {
    Grouping::Global
}
fn default_rows_per_batch() -> usize {
    1000
}

impl KindParams for Params {
    const KIND: &'static str = "tokenize";
    const VERSION: u32 = 1;
    const INPUT_SLOTS: &'static [&'static str] = &["data", "tokenizer"];
    const USES_SEED: bool = false;

    fn inputs(&self) -> Vec<InputSlot<'_>> {
        vec![
            InputSlot { slot: "data", refs: vec![&self.data] },
            InputSlot { slot: "tokenizer", refs: vec![&self.tokenizer] },
        ]
    }

    fn outputs(&self) -> Vec<(String, String)> {
        let mut outputs: Vec<(String, String)> = self
            .splits
            .iter()
            .map(|split| (split.clone(), format!("{split}.blocks")))
            .collect();
        outputs.push(("stats".into(), "stats.json".into()));
        outputs
    }
}
