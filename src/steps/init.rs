//! `init`: a freshly initialised OPT (HF's random init) from a config, for training
//! from scratch. The vocabulary size comes from the tokenizer (or from the model
//! whose tokenizer is given); the tokenizer files are copied into the model directory.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::{InputRef, KindParams, ResourceHint};
use crate::model::OptConfig;
use crate::tokenizer::load_tokenizer;
use crate::work::init_model;

/// A freshly initialised OPT (as HF initialises one, seeded), with the tokenizer's
/// vocabulary: for training from scratch.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The tokenizer: a tokenizer directory (e.g. `tokenizer.tokenizer`) or a model
    /// source. Its vocabulary size (a model's `config.json` `vocab_size` when present)
    /// sets the embedding rows.
    pub tokenizer: InputRef,
    /// Width of the residual stream (opt-125m: 768).
    #[serde(default = "d_hidden")]
    pub hidden: usize,
    /// Decoder layers.
    #[serde(default = "d_layers")]
    pub layers: usize,
    /// Attention heads; `hidden` must be a multiple of it.
    #[serde(default = "d_heads")]
    pub heads: usize,
    /// Inner width of the feed-forward block.
    #[serde(default = "d_ffn")]
    pub ffn: usize,
    /// Longest sequence the model takes (the position table has 2 more rows).
    #[serde(default = "d_max_positions")]
    pub max_positions: usize,
    /// Dropout on attention output and FFN output while training.
    #[serde(default = "d_dropout")]
    pub dropout: f64,
    /// Dropout on attention probabilities while training.
    #[serde(default)]
    pub attention_dropout: f64,
    /// Dropout after the FFN activation (OPT: 0; only 0 is implemented).
    #[serde(default)]
    pub activation_dropout: f64,
    /// Std of the normal init of weights (HF's `init_std`).
    #[serde(default = "d_init_std")]
    pub init_std: f64,
}

fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_ffn() -> usize {
    3072
}
fn d_max_positions() -> usize {
    2048
}
fn d_dropout() -> f64 {
    0.1
}
fn d_init_std() -> f64 {
    0.02
}

impl KindParams for Params {
    const KIND: &'static str = "init";
    const VERSION: u32 = 1;
    const USES_SEED: bool = true;
    const USES_PRECISION: bool = false; // initialises weights; no products
    const RESOURCES: ResourceHint = ResourceHint::MODEL;
    input_slots!(tokenizer);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![("model".into(), "model".into())]
    }
}

/// The vocabulary size and special ids the new model gets from the tokenizer input.
fn vocab_of(dir: &Path) -> Result<(usize, Option<u32>, Option<u32>), StepError> {
    let config_path = dir.join("config.json");
    let tokenizer = load_tokenizer(dir)?;
    let pad = tokenizer.token_to_id("<pad>");
    let eos = tokenizer.token_to_id("</s>");
    if config_path.is_file() {
        let config = OptConfig::from_hf_json(&config_path)?;
        return Ok((config.vocab_size, pad, eos));
    }
    Ok((tokenizer.get_vocab_size(true), pad, eos))
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    if p.activation_dropout != 0.0 {
        return Err(StepError::Invalid(format!(
            "step `{}`: activation_dropout = {} is not implemented (OPT uses 0); remove it",
            ctx.step, p.activation_dropout
        )));
    }
    let tokenizer_dir = &ctx.input("tokenizer")?.path;
    let (vocab, pad, eos) = vocab_of(tokenizer_dir)?;
    let mut config = OptConfig::tiny(vocab, p.hidden, p.layers, p.heads, p.ffn, p.max_positions);
    config.dropout = p.dropout;
    config.attention_dropout = p.attention_dropout;
    config.init_std = p.init_std;
    config.pad_token_id = pad;
    config.bos_token_id = eos;
    config.eos_token_id = eos;
    config.validate().map_err(|reason| {
        StepError::Invalid(format!(
            "step `{}`: {reason}; change the init parameters",
            ctx.step
        ))
    })?;
    if let Some(pad) = pad
        && pad as usize >= vocab
    {
        return Err(StepError::Invalid(format!(
            "step `{}`: the tokenizer's <pad> id {pad} is outside the vocabulary ({vocab})",
            ctx.step
        )));
    }
    ctx.progress(0, Some(1), "models", "initialising");
    let dir = ctx.out_path("model");
    let params = init_model(ctx.target()?, &config, ctx.seed, &dir, tokenizer_dir)??;
    ctx.progress(1, Some(1), "models", "done");
    Ok(StepOutcome {
        metrics: serde_json::json!({"parameters": params, "vocab_size": vocab}),
    })
}
