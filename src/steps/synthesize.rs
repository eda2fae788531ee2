//! `synthesize`: the next generation's training data. Every block of `prompts` is a
//! prompt; the model continues it (by default the paper's beam search:
//! `generate(num_beams=5, max_new_tokens=64, min_new_tokens=64, repetition_penalty=3.0)`)
//! and the continuation becomes the new block. A seeded `keep_real` share of the
//! blocks stays original data instead.
//!
//! Work is split into shards of `shard_size` prompts; each finished shard is
//! checkpointed in the step's scratch directory, so a killed run resumes at the first
//! unfinished shard and produces byte-identical outputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::decoding::{Decoding, Length, generation_error};
use super::{InputRef, KindParams, ResourceHint};
use crate::artifacts::Sample;
use crate::data::{Blocks, read_blocks, write_blocks};
use crate::generate::{GenerationConfig, check_fits};
use crate::tokenizer::load_tokenizer;
use crate::work::load_model;

/// The next generation's training data: the model continues every prompt block (by
/// default the paper's beam search); a seeded `keep_real` share of blocks stays
/// original data.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The model that writes (an HF model dir: a source or e.g. `finetune@0.model`);
    /// its tokenizer files are used for the readable `samples.jsonl`.
    pub model: InputRef,
    /// Blocks file whose blocks are the prompts (e.g. `blocks.train`, or the previous
    /// generation's `synthesize@g.blocks`).
    pub prompts: InputRef,
    /// Blocks file of original data for `keep_real` (block `i` replaces generated block
    /// `i`); required when `keep_real > 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<InputRef>,
    /// Tokens generated per prompt (`max_new_tokens`); also the output block size.
    #[serde(default = "default_new_tokens")]
    pub new_tokens: usize,
    /// EOS is impossible before this many new tokens (`min_new_tokens`). Continuations
    /// that end earlier with EOS are padded with `<pad>` (id 1) to `new_tokens`, as
    /// transformers pads a batch.
    #[serde(default = "default_new_tokens")]
    pub min_new_tokens: usize,
    /// How tokens are chosen: `beams`, `repetition_penalty`, `length_penalty`,
    /// `early_stopping`, `no_repeat_ngram_size`, `sample`, `temperature`, `top_k`,
    /// `top_p` (shared with `prompts`; written directly in the step's table).
    #[serde(flatten)]
    pub decoding: Decoding,
    /// Prompts generated together (rows = batch_size × beams). Changes speed, not tokens.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Prompts per checkpointed shard. Changes speed, not tokens.
    #[serde(default = "default_shard_size")]
    pub shard_size: usize,
    /// Share of blocks that stay original data (the authors' "x% of original data
    /// preserved"), in [0, 1]. Which blocks is drawn with the experiment seed and
    /// recorded per block (`real`) in `samples.jsonl`.
    #[serde(default)]
    pub keep_real: f64,
}

fn default_new_tokens() -> usize {
    64
}
fn default_batch_size() -> usize {
    8
}
fn default_shard_size() -> usize {
    256
}

impl KindParams for Params {
    const KIND: &'static str = "synthesize";
    /// 2: decoding steps on the CPU sum weight products in `k` order (the streaming
    /// kernel of model/host_matmul.rs), which can change tokens on near-ties.
    /// 3: decoding steps on the CPU attend over the host KV cache
    /// (model/host_cache.rs: its own dot products and softmax sums).
    const VERSION: u32 = 3;
    const USES_SEED: bool = true;
    const USES_PRECISION: bool = true; // generates with a model
    const RESOURCES: ResourceHint = ResourceHint::MODEL;
    const WORK_PARAMS: &'static [&'static str] = &["beams", "new_tokens"];
    input_slots!(model, prompts, real);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![
            ("blocks".into(), "synthetic.blocks".into()),
            ("samples".into(), Sample::FILE_NAME.into()),
        ]
    }
}

/// One checkpointed shard: which prompts (indices into the prompt blocks) and their
/// continuations.
#[derive(Serialize, Deserialize, PartialEq)]
struct Shard {
    indices: Vec<usize>,
    outputs: Vec<Vec<u32>>,
}

fn shard_path(scratch: &Path, shard: usize) -> PathBuf {
    scratch.join(format!("shard-{shard:06}.json"))
}

/// A finished shard from an earlier attempt, if it is there and covers `indices`.
fn load_shard(path: &Path, indices: &[usize]) -> Option<Shard> {
    let text = std::fs::read_to_string(path).ok()?;
    let shard: Shard = serde_json::from_str(&text).ok()?;
    (shard.indices == indices && shard.outputs.len() == indices.len()).then_some(shard)
}

/// Writes a shard atomically (temp file + rename): a kill leaves it whole or absent.
fn save_shard(path: &Path, shard: &Shard) -> Result<(), StepError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string(shard).expect("shard serialises");
    std::fs::write(&tmp, text).map_err(StepError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(StepError::io(path))
}

/// The blocks that stay original data: `round(keep_real × n)` indices drawn with `seed`.
fn kept_real(n: usize, keep_real: f64, seed: u64) -> BTreeSet<usize> {
    let count = ((keep_real * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x6b65_6570_7265_616c));
    order.into_iter().take(count).collect()
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    let step = ctx.step;
    if !(0.0..=1.0).contains(&p.keep_real) {
        return Err(StepError::Invalid(format!(
            "step `{step}`: keep_real = {} must be in [0, 1]",
            p.keep_real
        )));
    }
    if p.batch_size == 0 || p.shard_size == 0 {
        return Err(StepError::Invalid(format!(
            "step `{step}`: batch_size and shard_size must be at least 1"
        )));
    }
    // Without `real`, the kept blocks would be copies of the prompts: the real data at
    // generation 0, but the previous generation's text from generation 1 on.
    if p.keep_real > 0.0 && ctx.optional_input("real").is_none() {
        return Err(StepError::Invalid(format!(
            "step `{step}`: keep_real = {} needs the `real` input, the original blocks to \
             keep (e.g. `real = \"blocks.train\"`); without it generations after the first \
             would keep the previous generation's text",
            p.keep_real
        )));
    }
    let length = Length {
        new_tokens: p.new_tokens,
        min_new_tokens: p.min_new_tokens,
    };
    let config = p.decoding.config(step, length, ctx.seed)?;
    let model_dir = ctx.input("model")?.path.clone();
    let tokenizer = load_tokenizer(&model_dir)?;
    let prompts = read_blocks(&ctx.input("prompts")?.path)?;
    let n = prompts.len();
    let kept = kept_real(n, p.keep_real, ctx.seed);
    let real = match ctx.optional_input("real") {
        Some(loc) => Some(read_blocks(&loc.path)?),
        None => None,
    };
    if !kept.is_empty() {
        let source = real
            .as_ref()
            .expect("checked above: keep_real needs `real`");
        if source.block_size() != p.new_tokens || source.len() < n {
            return Err(StepError::Invalid(format!(
                "step `{step}`: keep_real needs original blocks of new_tokens = {} tokens, at least \
                 one per prompt ({n}); got {} blocks of {} tokens",
                p.new_tokens,
                source.len(),
                source.block_size()
            )));
        }
    }

    let to_generate: Vec<usize> = (0..n).filter(|i| !kept.contains(i)).collect();
    let outputs = generate_in_shards(p, ctx, &config, &model_dir, &prompts, &to_generate)?;

    // Assemble: generated continuations padded to new_tokens, or the original block.
    let mut blocks = Blocks::empty(p.new_tokens)?;
    let mut samples = Vec::with_capacity(n);
    let mut generated = to_generate.iter().zip(&outputs.continuations);
    for i in 0..n {
        let prompt = prompts.block(i);
        let (ids, is_real): (Vec<u32>, bool) = if kept.contains(&i) {
            let source = real
                .as_ref()
                .expect("checked above: keep_real needs `real`");
            (source.block(i).to_vec(), true)
        } else {
            let (_, ids) = generated
                .next()
                .expect("one continuation per generated prompt");
            (ids.clone(), false)
        };
        let mut block = ids.clone();
        block.resize(p.new_tokens, config.pad_token_id);
        blocks.push(&block)?;
        samples.push(Sample {
            index: i,
            prompt_ids: prompt.to_vec(),
            prompt: decode(&tokenizer, prompt, step)?,
            text: decode(&tokenizer, &ids, step)?,
            ids,
            real: is_real,
        });
    }
    write_blocks(&ctx.out_path("synthetic.blocks"), &blocks)?;
    Sample::write_all(&samples, &ctx.out_path(Sample::FILE_NAME))?;
    Ok(StepOutcome {
        metrics: serde_json::json!({
            "blocks": n,
            "kept_real": kept.len(),
            "new_tokens_per_s": outputs.new_tokens_per_s,
        }),
    })
}

pub(crate) fn decode(
    tokenizer: &crate::tokenizer::Tokenizer,
    ids: &[u32],
    step: &str,
) -> Result<String, StepError> {
    tokenizer.decode(ids, false).map_err(|e| {
        StepError::Invalid(format!(
            "step `{step}`: the model's tokenizer cannot decode generated ids: {e}; \
             does the model dir hold the tokenizer it was trained with?"
        ))
    })
}

struct Generated {
    continuations: Vec<Vec<u32>>,
    /// New tokens per second of this attempt (shards loaded from scratch excluded).
    new_tokens_per_s: f64,
}

fn generate_in_shards(
    p: &Params,
    ctx: &StepContext<'_>,
    config: &GenerationConfig,
    model_dir: &Path,
    prompts: &Blocks,
    to_generate: &[usize],
) -> Result<Generated, StepError> {
    std::fs::create_dir_all(ctx.scratch_dir).map_err(StepError::io(ctx.scratch_dir))?;
    let shards: Vec<&[usize]> = to_generate.chunks(p.shard_size).collect();
    let mut results: Vec<Option<Shard>> = shards
        .iter()
        .enumerate()
        .map(|(s, indices)| load_shard(&shard_path(ctx.scratch_dir, s), indices))
        .collect();
    let resumed = results.iter().filter(|r| r.is_some()).count();
    let total = to_generate.len() as u64;
    if resumed > 0 {
        ctx.progress(
            results
                .iter()
                .flatten()
                .map(|s| s.indices.len() as u64)
                .sum(),
            Some(total),
            "prompts",
            format!(
                "resuming: {resumed} of {} shards already done",
                shards.len()
            ),
        );
    }
    let (new_tokens, seconds) =
        generate_shards(p, ctx, config, model_dir, prompts, &shards, &mut results)?;
    let continuations = results
        .into_iter()
        .flat_map(|s| s.expect("every shard finished").outputs)
        .collect();
    Ok(Generated {
        continuations,
        new_tokens_per_s: if seconds > 0.0 {
            new_tokens as f64 / seconds
        } else {
            0.0
        },
    })
}

/// Generates the unfinished shards of `results` on the step's backend (inference
/// only), checkpointing each; returns (new tokens generated, seconds spent).
fn generate_shards(
    p: &Params,
    ctx: &StepContext<'_>,
    config: &GenerationConfig,
    model_dir: &Path,
    prompts: &Blocks,
    shards: &[&[usize]],
    results: &mut [Option<Shard>],
) -> Result<(u64, f64), StepError> {
    let (step, batch_size, shard_size) = (ctx.step, p.batch_size, p.shard_size);
    if results.iter().all(Option::is_some) {
        return Ok((0, 0.0));
    }
    let total = shards.iter().map(|s| s.len() as u64).sum::<u64>();
    let model = load_model(ctx.target()?, model_dir)??;
    let max_positions = model.config().max_position_embeddings;
    let mut done: u64 = results
        .iter()
        .flatten()
        .map(|s| s.indices.len() as u64)
        .sum();
    let start = Instant::now();
    let mut new_tokens = 0u64;
    let mut generated_prompts = 0u64;
    for (s, indices) in shards.iter().enumerate() {
        if results[s].is_some() {
            continue;
        }
        let mut outputs = Vec::with_capacity(indices.len());
        for (b, batch) in indices.chunks(batch_size).enumerate() {
            let batch_prompts: Vec<Vec<u32>> =
                batch.iter().map(|&i| prompts.block(i).to_vec()).collect();
            check_fits(&batch_prompts, config, max_positions)
                .map_err(|e| generation_error(step, e))?;
            // Sampling seeds follow the position among the generated prompts, so
            // shards and batches do not matter.
            let first = (s * shard_size + b * batch_size) as u64;
            let batch_start = Instant::now();
            let out = model
                .generate(&batch_prompts, config, first)
                .map_err(|e| generation_error(step, e))?;
            ctx.work
                .unit_took("batches", batch_start.elapsed().as_secs_f64());
            new_tokens += out.iter().map(|o| o.len() as u64).sum::<u64>();
            generated_prompts += batch.len() as u64;
            done += batch.len() as u64;
            outputs.extend(out);
            let elapsed = start.elapsed().as_secs_f64();
            let rate = new_tokens as f64 / elapsed.max(1e-9);
            let eta = (total - done) as f64 * elapsed / generated_prompts as f64;
            ctx.progress(
                done,
                Some(total),
                "prompts",
                format!("{rate:.1} new tokens/s, ETA {eta:.0}s"),
            );
        }
        let shard = Shard {
            indices: indices.to_vec(),
            outputs,
        };
        save_shard(&shard_path(ctx.scratch_dir, s), &shard)?;
        results[s] = Some(shard);
        ctx.progress(
            done,
            Some(total),
            "prompts",
            format!("shard {}/{} finished", s + 1, shards.len()),
        );
    }
    Ok((new_tokens, start.elapsed().as_secs_f64()))
}
