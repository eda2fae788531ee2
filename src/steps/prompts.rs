//! `prompts`: a model answers a fixed list of text prompts (the seed paper's Table 1:
//! each generation's answer to the same prompts), written to `answers.json`
//! ([`crate::artifacts::AnswersFile`]) for the report.

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::artifacts::{Answer, AnswersFile};

use super::context::{StepContext, StepError, StepOutcome};
use super::decoding::{Decoding, Length, generation_error};
use super::synthesize::decode;
use super::{InputRef, KindParams, ResourceHint};
use crate::generate::{GenerationConfig, check_fits};
use crate::tokenizer::load_tokenizer;
use crate::work::load_model;

/// The default prompts. The first is the one the seed paper names in its Table 1
/// ("The secret to eternal life lies hidden within"); the paper's other six were not
/// available to us, so these six are our own, in the same spirit (an open-ended
/// sentence start that invites a factual or narrative continuation).
pub const DEFAULT_PROMPTS: [&str; 7] = [
    "The secret to eternal life lies hidden within",
    "The history of the ancient city begins with",
    "Scientists have recently discovered that",
    "The most important lesson I have learned is",
    "In the middle of the night, the old lighthouse keeper",
    "The future of artificial intelligence will",
    "The river flows through the valley and",
];

/// A model answers a fixed list of text prompts (the seed paper's Table 1), for the
/// report.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The model that answers (HF model dir with its tokenizer files).
    pub model: InputRef,
    /// The prompts, as text; each is tokenized with the model's tokenizer (OPT's
    /// prepends `</s>`) and answered on its own (no padding, so no prompt affects
    /// another's answer).
    #[serde(default = "default_prompts")]
    pub prompts: Vec<String>,
    /// New tokens per answer. Default 32 rather than synthesize's 64: answers are read
    /// by people in a table per generation, and 32 tokens (~25 words) already show
    /// the drift, while halving the cost of the step.
    #[serde(default = "default_new_tokens")]
    pub new_tokens: usize,
    /// EOS is impossible before this many new tokens. Default = `new_tokens`, as in
    /// synthesize, so answers have a fixed length and differ only in content.
    #[serde(default = "default_new_tokens")]
    pub min_new_tokens: usize,
    /// How tokens are chosen, as in `synthesize` (same parameters, same defaults:
    /// its beam search): `beams`, `repetition_penalty`, `length_penalty`,
    /// `early_stopping`, `no_repeat_ngram_size`, `sample`, `temperature`, `top_k`, `top_p`.
    #[serde(flatten)]
    pub decoding: Decoding,
}

fn default_prompts() -> Vec<String> {
    DEFAULT_PROMPTS.iter().map(|s| s.to_string()).collect()
}
fn default_new_tokens() -> usize {
    32
}

impl KindParams for Params {
    const KIND: &'static str = "prompts";
    /// 2: decoding steps on the CPU sum weight products in `k` order (the streaming
    /// kernel of model/host_matmul.rs), which can change tokens on near-ties.
    /// 3: decoding steps on the CPU attend over the host KV cache
    /// (model/host_cache.rs: its own dot products and softmax sums).
    const VERSION: u32 = 3;
    const USES_SEED: bool = true;
    const USES_PRECISION: bool = true; // generates with a model
    const RESOURCES: ResourceHint = ResourceHint::MODEL;
    const WORK_PARAMS: &'static [&'static str] = &["beams", "new_tokens"];
    input_slots!(model);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![("answers".into(), AnswersFile::FILE_NAME.into())]
    }
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    let step = ctx.step;
    let length = Length {
        new_tokens: p.new_tokens,
        min_new_tokens: p.min_new_tokens,
    };
    let config = p.decoding.config(step, length, ctx.seed)?;
    let model = ctx.input("model")?;
    let tokenizer = load_tokenizer(&model.path)?;
    let mut prompt_ids = Vec::with_capacity(p.prompts.len());
    for text in &p.prompts {
        let encoding = tokenizer.encode(text.as_str(), true).map_err(|e| {
            StepError::Invalid(format!(
                "step `{step}`: cannot tokenize prompt {text:?}: {e}"
            ))
        })?;
        prompt_ids.push(encoding.get_ids().to_vec());
    }
    let answers_ids = answer(ctx, &config, &prompt_ids)?;
    let mut answers = Vec::new();
    for (text, ids) in p.prompts.iter().zip(&answers_ids) {
        let answer = tokenizer
            .decode(ids, true)
            .or_else(|_| decode(&tokenizer, ids, step))?;
        answers.push(Answer {
            prompt: text.clone(),
            answer,
            ids: ids.clone(),
        });
    }
    let file = AnswersFile {
        model: model.origin.label(),
        answers,
    };
    file.write(&ctx.out_path(AnswersFile::FILE_NAME))?;
    Ok(StepOutcome {
        metrics: serde_json::json!({"prompts": p.prompts.len()}),
    })
}

/// The answer to every prompt, one prompt at a time (each prompt's sampling seed is
/// its position), with progress.
fn answer(
    ctx: &StepContext<'_>,
    config: &GenerationConfig,
    prompts: &[Vec<u32>],
) -> Result<Vec<Vec<u32>>, StepError> {
    let step = ctx.step;
    let model = load_model(ctx.target()?, &ctx.input("model")?.path)??;
    check_fits(prompts, config, model.config().max_position_embeddings)
        .map_err(|e| generation_error(step, e))?;
    let total = prompts.len() as u64;
    let mut out = Vec::with_capacity(prompts.len());
    for (i, prompt) in prompts.iter().enumerate() {
        ctx.progress(i as u64, Some(total), "prompts", "answering");
        let started = Instant::now();
        let answer = model
            .generate(std::slice::from_ref(prompt), config, i as u64)
            .map_err(|e| generation_error(step, e))?;
        ctx.work
            .unit_took("prompts", started.elapsed().as_secs_f64());
        out.extend(answer);
    }
    ctx.progress(total, Some(total), "prompts", "done");
    Ok(out)
}
