//! `tokenizer`: provide a tokenizer.json, either loaded from an HF model/tokenizer
//! (tokenizer.json, or vocab.json + merges.txt as OPT ships it) or trained as a
//! byte-level BPE on a dataset.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::dataset::{read_split, splits_of};
use super::{InputRef, KindParams, ResourceHint};
use crate::data::{LineMode, RowOptions};
use crate::tokenizer::{load_tokenizer, save_tokenizer, train_bpe};

/// A tokenizer: loaded from an HF model or tokenizer (`tokenizer.json`, or `vocab.json`
/// + `merges.txt` as OPT ships it), or a byte-level BPE trained on a dataset.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Load the tokenizer of this source or step output (an HF model repo or a
    /// directory with tokenizer files). Exactly one of `from` and `train_on`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<InputRef>,
    /// Train a byte-level BPE on the rows of this dataset (its `train` split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_on: Option<InputRef>,
    /// Vocabulary size when training (special tokens included).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// A pair must occur this often to be merged when training.
    #[serde(default = "default_min_frequency")]
    pub min_frequency: u64,
    /// The column or JSON field holding the text when training.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// How the lines of a local `.txt` / `.raw` file become rows when training (`.jsonl` and
    /// `.parquet` rows are taken as they are): `text` (default; `datasets`' `text`
    /// loader: line endings dropped), `keep_linebreaks` (each row keeps its `"\n"`)
    /// or `wikitext` (the `wikitext` loading script: rows keep their `"\n"`, a
    /// whitespace-only line is `""`), which makes a local `wiki.train.raw` give the
    /// same rows, and blocks, as the Hub's parquet files.
    #[serde(default, skip_serializing_if = "LineMode::is_default")]
    pub line_mode: LineMode,
}

fn default_vocab_size() -> usize {
    2048
}
fn default_min_frequency() -> u64 {
    2
}
pub(crate) fn default_text_field() -> String {
    "text".to_string()
}

impl KindParams for Params {
    const KIND: &'static str = "tokenizer";
    const VERSION: u32 = 1;
    const USES_SEED: bool = false;
    const REPLICATED: bool = false; // data: the replicates share it
    const USES_PRECISION: bool = false; // no model
    const RESOURCES: ResourceHint = ResourceHint::DATA;
    input_slots!(from, train_on);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![("tokenizer".into(), "tokenizer".into())]
    }
}

/// Files that travel with tokenizer.json so transformers' AutoTokenizer opens
/// the directory as OPT's (special tokens, bos handling).
const COMPANION_FILES: &[&str] = &["tokenizer_config.json", "special_tokens_map.json"];

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    let out_dir = ctx.out_path("tokenizer");
    std::fs::create_dir_all(&out_dir).map_err(StepError::io(&out_dir))?;
    let (tokenizer, how) = match (&p.from, &p.train_on) {
        (Some(_), None) => {
            let dir = &ctx.input("from")?.path;
            ctx.progress(0, None, "", format!("loading {}", dir.display()));
            for name in COMPANION_FILES {
                let src = dir.join(name);
                if src.is_file() {
                    let dst = out_dir.join(name);
                    std::fs::copy(&src, &dst).map_err(StepError::io(&dst))?;
                }
            }
            (load_tokenizer(dir)?, "loaded")
        }
        (None, Some(_)) => {
            let splits = splits_of(ctx.input("train_on")?)?;
            let options = RowOptions {
                text_field: p.text_field.clone(),
                line_mode: p.line_mode,
            };
            let rows = read_split(&splits, "train", &options, ctx.step)?;
            ctx.progress(
                0,
                None,
                "",
                format!(
                    "training a {}-token BPE on {} rows",
                    p.vocab_size,
                    rows.len()
                ),
            );
            (train_bpe(&rows, p.vocab_size, p.min_frequency)?, "trained")
        }
        _ => {
            return Err(StepError::Invalid(format!(
                "step `{}`: a tokenizer step needs exactly one of `from` (load) and `train_on` (train)",
                ctx.step
            )));
        }
    };
    save_tokenizer(&tokenizer, &out_dir.join("tokenizer.json"))?;
    Ok(StepOutcome {
        metrics: serde_json::json!({"vocab_size": tokenizer.get_vocab_size(true), "how": how}),
    })
}
