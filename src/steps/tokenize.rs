//! `tokenize`: dataset rows → token ids → fixed-size blocks, one block file per split.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::dataset::{read_split, splits_of};
use super::{InputRef, KindParams, ResourceHint};
use crate::data::{DataStats, GroupMode, group_into_blocks, write_blocks};
use crate::tokenizer::{encode_rows, load_tokenizer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// Concatenate all rows of a split, cut into blocks, drop the remainder.
    Global,
    /// As the authors' `datasets.map(batched=True)`: concatenate and drop the
    /// remainder per batch of `rows_per_batch` rows.
    Batched,
}

/// Dataset rows → token ids → fixed-size blocks, one block file per split.
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
    const USES_SEED: bool = false;
    const USES_PRECISION: bool = false; // no model
    const RESOURCES: ResourceHint = ResourceHint::DATA;
    input_slots!(data, tokenizer);

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

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    if p.block_size == 0 || (p.grouping == Grouping::Batched && p.rows_per_batch == 0) {
        return Err(StepError::Invalid(format!(
            "step `{}`: block_size and rows_per_batch must be at least 1",
            ctx.step
        )));
    }
    let tokenizer = load_tokenizer(&ctx.input("tokenizer")?.path)?;
    let splits = splits_of(ctx.input("data")?)?;
    let mode = match p.grouping {
        Grouping::Global => GroupMode::Global,
        Grouping::Batched => GroupMode::Batched {
            rows_per_batch: p.rows_per_batch,
        },
    };
    let mut stats = serde_json::Map::new();
    let mut metrics = serde_json::Map::new();
    for (i, split) in p.splits.iter().enumerate() {
        ctx.progress(
            i as u64,
            Some(p.splits.len() as u64),
            "splits",
            format!("tokenizing {split}"),
        );
        let rows = read_split(&splits, split, &p.text_field, ctx.step)?;
        let ids = encode_rows(&tokenizer, &rows)?;
        let blocks = group_into_blocks(&ids, p.block_size, mode)?;
        if blocks.is_empty() {
            return Err(StepError::Invalid(format!(
                "step `{}`: split `{split}` has fewer than block_size = {} tokens: no block would remain",
                ctx.step, p.block_size
            )));
        }
        write_blocks(&ctx.out_path(&format!("{split}.blocks")), &blocks)?;
        let split_stats = DataStats::compute(&rows, &ids, &blocks);
        metrics.insert(format!("{split}_blocks"), blocks.len().into());
        metrics.insert(format!("{split}_tokens"), split_stats.row_tokens.into());
        stats.insert(
            split.clone(),
            serde_json::to_value(&split_stats).expect("stats serialise"),
        );
    }
    ctx.progress(
        p.splits.len() as u64,
        Some(p.splits.len() as u64),
        "splits",
        "done",
    );
    let path = ctx.out_path("stats.json");
    let text = serde_json::to_string_pretty(&stats).expect("stats serialise");
    std::fs::write(&path, text + "\n").map_err(StepError::io(&path))?;
    Ok(StepOutcome {
        metrics: serde_json::Value::Object(metrics),
    })
}
