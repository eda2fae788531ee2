//! `tokenize`: dataset rows → token ids → fixed-size blocks, one block file per split.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::dataset::{read_split, splits_of};
use super::{InputRef, KindParams, ResourceHint};
use crate::data::{DataStats, GroupMode, LineMode, RowOptions, group_into_blocks, write_blocks};
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
    /// How the lines of a local `.txt` / `.raw` file become rows (`.jsonl` and
    /// `.parquet` rows are taken as they are): `text` (default; `datasets`' `text`
    /// loader: line endings dropped), `keep_linebreaks` (each row keeps its `"\n"`)
    /// or `wikitext` (the `wikitext` loading script: rows keep their `"\n"`, a
    /// whitespace-only line is `""`), which makes a local `wiki.train.raw` give the
    /// same rows, and blocks, as the Hub's parquet files.
    #[serde(default, skip_serializing_if = "LineMode::is_default")]
    pub line_mode: LineMode,
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

impl Params {
    fn row_options(&self) -> RowOptions {
        RowOptions {
            text_field: self.text_field.clone(),
            line_mode: self.line_mode,
        }
    }
}

impl KindParams for Params {
    const KIND: &'static str = "tokenize";
    const VERSION: u32 = 1;
    const USES_SEED: bool = false;
    const REPLICATED: bool = false; // data: the replicates share it
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
        let rows = read_split(&splits, split, &p.row_options(), ctx.step)?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::data::Blocks;
    use crate::data::test_support::write_string_parquet;

    /// A miniature WikiText split: a title, a paragraph, blank lines (" \n" in the
    /// raw files, as WikiText writes them).
    const RAW: &str = " \n = Valkyria Chronicles = \n \n Senjō no Valkyria is a game .\n \n It was released in 2011 .\n";

    fn blocks(splits: &BTreeMap<String, Vec<PathBuf>>, line_mode: LineMode) -> Blocks {
        let p: Params = serde_json::from_value(serde_json::json!({
            "data": "wikitext",
            "tokenizer": "opt",
            "block_size": 4,
            "line_mode": line_mode,
        }))
        .unwrap();
        let rows = read_split(splits, "train", &p.row_options(), "blocks").unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/opt-mini");
        let tokenizer = load_tokenizer(&dir).unwrap();
        let ids = encode_rows(&tokenizer, &rows).unwrap();
        group_into_blocks(&ids, p.block_size, GroupMode::Global).unwrap()
    }

    /// The same data as a local `.raw` file and as the Hub's parquet rows (each row
    /// ends with "\n", a whitespace-only line is ""): with `line_mode = "wikitext"`
    /// the raw file gives exactly the Hub's blocks; the default (`text`) does not.
    #[test]
    fn a_raw_file_in_wikitext_mode_gives_the_hubs_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("wiki.train.raw");
        std::fs::write(&raw, RAW).unwrap();
        let hub_rows: Vec<&str> = RAW
            .split_inclusive('\n')
            .map(|l| if l.trim().is_empty() { "" } else { l })
            .collect();
        assert_eq!(hub_rows[1], " = Valkyria Chronicles = \n");
        let parquet = dir.path().join("train-00000-of-00001.parquet");
        let values: Vec<Option<&str>> = hub_rows.iter().map(|r| Some(*r)).collect();
        write_string_parquet(&parquet, "text", &values, 3);
        let split = |path: &Path| BTreeMap::from([("train".to_string(), vec![path.to_path_buf()])]);

        let hub = blocks(&split(&parquet), LineMode::Text);
        let local = blocks(&split(&raw), LineMode::Wikitext);
        assert_eq!(local, hub);
        // Parquet rows are taken as they are, whatever the line mode.
        assert_eq!(blocks(&split(&parquet), LineMode::Wikitext), hub);
        // The `text` loader's default drops the line endings: different blocks.
        assert_ne!(blocks(&split(&raw), LineMode::Text), hub);
    }

    /// The default line mode stays out of the parameters (and so out of keys made
    /// before the parameter existed); another mode is in them.
    #[test]
    fn the_default_line_mode_is_not_in_the_key_params() {
        let params = |extra: serde_json::Value| -> serde_json::Value {
            let mut table = serde_json::json!({"data": "d", "tokenizer": "t"});
            table
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let p: Params = serde_json::from_value(table).unwrap();
            serde_json::to_value(p).unwrap()
        };
        assert!(params(serde_json::json!({})).get("line_mode").is_none());
        assert!(
            params(serde_json::json!({"line_mode": "text"}))
                .get("line_mode")
                .is_none()
        );
        assert_eq!(
            params(serde_json::json!({"line_mode": "wikitext"}))["line_mode"],
            "wikitext"
        );
    }
}
