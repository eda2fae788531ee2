//! `evaluate`: scores block sets with a model (perplexity per block, token-weighted over
//! the set, and the authors' batch-mean variant) and measures each set's diversity and,
//! given the real data as `reference`, its unigram divergence and rare-tail coverage.
//! Definitions: [`crate::eval`]. Output: `scores.json`, [`crate::artifacts::ScoresFile`].

use std::path::Path;
use std::time::Instant;

use crate::artifacts::{ScoresFile, SetScores};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{InputLocation, InputOrigin, StepContext, StepError, StepOutcome};
use super::{InputRef, KindParams, ResourceHint};
use crate::data::{Blocks, read_blocks};
use crate::eval::{
    EvalError, SetPerplexity, Summary, UnigramCounts, distinct_n, repetition_rate, tail_coverage,
    unigram_js, unigram_kl,
};
use crate::work::load_model;

/// Scores block sets with a model (perplexity per block and per set) and measures each
/// set's diversity and, given the real data, its unigram divergence and rare-tail
/// coverage.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The scoring model: an HF model directory (a source or a step output such as
    /// `finetune@0.model`).
    pub model: InputRef,
    /// The block sets to evaluate, each a blocks file (e.g. `synthesize@*.blocks`); each is
    /// one set in `scores.json`, labelled by its reference.
    pub data: Vec<InputRef>,
    /// The real data (a blocks file) that unigram KL/JS and tail coverage compare each set
    /// with; without it those metrics are null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<InputRef>,
    /// Blocks per batch of the authors' batch-mean perplexity, exp(mean over batches of
    /// each batch's mean loss), batches taken in order (the paper's batch size, 128).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Blocks per forward pass (memory and speed only; every number is per block).
    #[serde(default = "default_forward_batch")]
    pub forward_batch: usize,
    /// Repetition rate: a token repeats when it equals one of the `repetition_window`
    /// tokens before it in its block.
    #[serde(default = "default_repetition_window")]
    pub repetition_window: usize,
    /// Unigram KL(reference ‖ set): pseudo-count added to every token id occurring in
    /// either set (additive smoothing, so KL is finite); must be > 0.
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// Tail coverage: the share of the reference's distinct ids, rarest first (ties: higher
    /// id first), that forms its rare tail.
    #[serde(default = "default_tail_fraction")]
    pub tail_fraction: f64,
}

fn default_batch_size() -> usize {
    128
}
fn default_forward_batch() -> usize {
    16
}
fn default_repetition_window() -> usize {
    16
}
fn default_smoothing() -> f64 {
    1.0
}
fn default_tail_fraction() -> f64 {
    0.5
}

impl KindParams for Params {
    const KIND: &'static str = "evaluate";
    const VERSION: u32 = 1;
    const USES_SEED: bool = false;
    const USES_PRECISION: bool = true; // scores with a model
    const RESOURCES: ResourceHint = ResourceHint::MODEL;
    input_slots!(model, data, reference);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![("scores".into(), ScoresFile::FILE_NAME.into())]
    }
}

fn origin_key(origin: &InputOrigin) -> Option<String> {
    match origin {
        InputOrigin::Output { key, .. } => Some(key.to_hex()),
        InputOrigin::Source { .. } => None,
    }
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    check_params(p, ctx.step)?;
    let model = ctx.input("model")?;
    let data = ctx.input_list("data");
    if data.is_empty() {
        return Err(StepError::Invalid(format!(
            "step `{}`: `data` lists no block set to evaluate",
            ctx.step
        )));
    }
    let sets = data
        .iter()
        .map(|loc| read_set(loc, ctx.step))
        .collect::<Result<Vec<_>, _>>()?;
    let reference = match ctx.optional_input("reference") {
        Some(loc) => Some(UnigramCounts::of_blocks(&read_blocks(&loc.path)?)),
        None => None,
    };

    let perplexities = score_sets(ctx, &model.path, &sets, p.forward_batch, p.batch_size)?;

    let mut scores = Vec::with_capacity(sets.len());
    for ((label, loc, blocks), ppl) in sets.iter().zip(perplexities) {
        scores.push(set_scores(
            p,
            label,
            loc,
            blocks,
            &ppl,
            reference.as_ref(),
            ctx.step,
        )?);
    }
    let file = ScoresFile {
        model: model.origin.label(),
        model_key: origin_key(&model.origin),
        sets: scores,
    };
    file.write(&ctx.out_path(ScoresFile::FILE_NAME))?;
    Ok(StepOutcome {
        metrics: manifest_metrics(&file),
    })
}

fn check_params(p: &Params, step: &str) -> Result<(), StepError> {
    let bad = |what: &str| Err(StepError::Invalid(format!("step `{step}`: {what}")));
    if p.batch_size == 0 || p.forward_batch == 0 {
        return bad("batch_size and forward_batch must be at least 1");
    }
    if !(p.smoothing > 0.0 && p.smoothing.is_finite()) {
        return bad("smoothing must be a positive number (it keeps unigram KL finite)");
    }
    if !(p.tail_fraction > 0.0 && p.tail_fraction <= 1.0) {
        return bad("tail_fraction must be in (0, 1]");
    }
    Ok(())
}

fn read_set<'a>(
    loc: &'a InputLocation,
    step: &str,
) -> Result<(String, &'a InputLocation, Blocks), StepError> {
    let label = loc.origin.label();
    let blocks = read_blocks(&loc.path)?;
    if blocks.is_empty() {
        return Err(StepError::Invalid(format!(
            "step `{step}`: set `{label}` ({}) has no blocks to evaluate",
            loc.path.display()
        )));
    }
    Ok((label, loc, blocks))
}

/// Perplexity of every set, with progress (also `select`'s scorer). `sets` holds
/// (label, input, blocks) of each set.
pub(super) fn score_sets(
    ctx: &StepContext<'_>,
    model_dir: &Path,
    sets: &[(String, &InputLocation, Blocks)],
    forward_batch: usize,
    batch_size: usize,
) -> Result<Vec<SetPerplexity>, StepError> {
    let total: usize = sets.iter().map(|(_, _, b)| b.len()).sum();
    ctx.progress(0, Some(total as u64), "blocks", "loading the model");
    let model = load_model(ctx.target()?, model_dir)??;
    let start = Instant::now();
    let mut batch_start = start;
    let mut before = 0usize;
    let mut results = Vec::with_capacity(sets.len());
    for (label, _, blocks) in sets {
        let mut on_batch = |done: usize| {
            let now = Instant::now();
            ctx.work
                .unit_took("batches", (now - batch_start).as_secs_f64());
            batch_start = now;
            let done = before + done;
            let elapsed = start.elapsed().as_secs_f64();
            let eta = elapsed / done as f64 * (total - done) as f64;
            ctx.progress(
                done as u64,
                Some(total as u64),
                "blocks",
                format!("scoring {label}, ETA {eta:.0}s"),
            );
        };
        let ppl = model
            .score_blocks(blocks, forward_batch, batch_size, &mut on_batch)
            .map_err(|e| eval_error(e, ctx.step, label))?;
        before += blocks.len();
        results.push(ppl);
    }
    Ok(results)
}

fn eval_error(e: EvalError, step: &str, label: &str) -> StepError {
    match e {
        EvalError::Model(m) => StepError::Model(m),
        other => StepError::Invalid(format!("step `{step}`: set `{label}`: {other}")),
    }
}

fn set_scores(
    p: &Params,
    label: &str,
    loc: &InputLocation,
    blocks: &Blocks,
    ppl: &SetPerplexity,
    reference: Option<&UnigramCounts>,
    step: &str,
) -> Result<SetScores, StepError> {
    let per_sample = ppl.per_sample_perplexity();
    let summary = Summary::of(&per_sample).ok_or_else(|| {
        StepError::Invalid(format!(
            "step `{step}`: set `{label}`: no per-sample perplexity to summarise"
        ))
    })?;
    let counts = UnigramCounts::of_blocks(blocks);
    let tail = reference.and_then(|r| tail_coverage(r, &counts, p.tail_fraction));
    Ok(SetScores {
        label: label.to_string(),
        key: origin_key(&loc.origin),
        blocks: blocks.len(),
        tokens: blocks.tokens().len(),
        per_sample_perplexity: per_sample,
        corpus_perplexity: ppl.corpus_perplexity,
        batch_mean_perplexity: ppl.batch_mean_perplexity,
        mean: summary.mean,
        median: summary.median,
        p90: summary.p90,
        p99: summary.p99,
        distinct_1: distinct_n(blocks, 1),
        distinct_2: distinct_n(blocks, 2),
        distinct_3: distinct_n(blocks, 3),
        repetition_rate: repetition_rate(blocks, p.repetition_window),
        unigram_kl: reference.and_then(|r| unigram_kl(r, &counts, p.smoothing)),
        unigram_js: reference.and_then(|r| unigram_js(r, &counts)),
        tail_coverage: tail.map(|t| t.coverage),
        tail_mass: tail.map(|t| t.mass),
    })
}

/// The manifest's metrics: per set label, every scalar of `scores.json` (not the
/// per-sample list).
fn manifest_metrics(file: &ScoresFile) -> serde_json::Value {
    let mut metrics = serde_json::Map::new();
    for set in &file.sets {
        let mut value = serde_json::to_value(set).expect("scores serialise");
        if let Some(map) = value.as_object_mut() {
            map.remove("per_sample_perplexity");
            map.remove("label");
            map.remove("key");
        }
        metrics.insert(set.label.clone(), value);
    }
    serde_json::Value::Object(metrics)
}
