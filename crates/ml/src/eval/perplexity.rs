//! Perplexity of a block set under a model: blocks go through the scorer
//! ([`crate::model::score::sequence_scores`]) many at a time, and the per-block results
//! are summarised three ways.
//!
//! A block of `L` tokens is one sample: its loss is HF's `model(ids, labels=ids).loss`,
//! the mean NLL of its `L - 1` next-token predictions, and its perplexity `exp(loss)`.
//! - corpus perplexity (the main number): `exp(Σ nll / Σ predicted tokens)` over the set;
//! - the authors' batch-mean perplexity: the set cut, in order, into batches of
//!   `batch_size` blocks (the last may be smaller), `exp` of the mean over batches of each
//!   batch's mean loss;
//! - the distribution of per-sample perplexity: mean, median, p90, p99.

use crate::backend::XpBackend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;

use super::EvalError;
use crate::data::Blocks;
use crate::model::score::{
    CorpusPerplexity, SequenceScores, mean_of_batch_means_perplexity, sequence_scores,
};
use crate::model::{Opt, OptConfig};

/// The perplexity results of one block set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetPerplexity {
    /// Summed NLL and predicted-token count per block, in block order.
    pub scores: SequenceScores,
    /// `exp(Σ nll / Σ tokens)` over the set.
    pub corpus_perplexity: f64,
    /// `exp(mean over batches of batch mean loss)`, batches of `batch_size` blocks.
    pub batch_mean_perplexity: f64,
}

impl SetPerplexity {
    /// `exp(mean loss)` of every block, in block order.
    pub fn per_sample_perplexity(&self) -> Vec<f64> {
        self.scores.perplexities()
    }
}

/// Scores every block of `blocks` with `model` (call it on `model.valid()`; `config` is
/// the one it was loaded with), `forward_batch`
/// blocks per forward pass, and summarises (see the module doc) with the authors'
/// `batch_size`. `on_batch(blocks_done)` is called after each forward pass.
///
/// Errors: a block longer than the model's positions, an id outside its vocabulary, a block
/// of fewer than two tokens, a zero batch size, or a non-finite loss (naming the block).
pub fn score_blocks<B: XpBackend>(
    model: &Opt<B>,
    config: &OptConfig,
    blocks: &Blocks,
    forward_batch: usize,
    batch_size: usize,
    device: &B::Device,
    mut on_batch: impl FnMut(usize),
) -> Result<SetPerplexity, EvalError> {
    check_blocks(config, blocks, forward_batch, batch_size)?;
    let seq = blocks.block_size();
    let mut scores = SequenceScores {
        nll_sum: Vec::with_capacity(blocks.len()),
        tokens: Vec::with_capacity(blocks.len()),
    };
    for (chunk_index, chunk) in blocks.tokens().chunks(forward_batch * seq).enumerate() {
        let rows = chunk.len() / seq;
        let ids: Vec<i64> = chunk.iter().map(|&t| i64::from(t)).collect();
        let input: Tensor<B, 2, Int> = Tensor::from_data(TensorData::new(ids, [rows, seq]), device); // [rows, seq]
        let batch = sequence_scores(model, input, None)?;
        let first = chunk_index * forward_batch;
        if let Some(bad) = batch.nll_sum.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFiniteLoss {
                block: first + bad,
                value: batch.nll_sum[bad],
            });
        }
        scores.nll_sum.extend(batch.nll_sum);
        scores.tokens.extend(batch.tokens);
        on_batch(scores.nll_sum.len());
    }
    let mut corpus = CorpusPerplexity::default();
    corpus.add(&scores);
    let batch_mean_perplexity = batch_mean_perplexity(&scores, batch_size);
    Ok(SetPerplexity {
        corpus_perplexity: corpus.perplexity(),
        batch_mean_perplexity,
        scores,
    })
}

fn check_blocks(
    config: &OptConfig,
    blocks: &Blocks,
    forward_batch: usize,
    batch_size: usize,
) -> Result<(), EvalError> {
    if forward_batch == 0 || batch_size == 0 {
        return Err(EvalError::ZeroBatch);
    }
    if blocks.block_size() < 2 {
        return Err(EvalError::BlockTooShort {
            block_size: blocks.block_size(),
        });
    }
    if blocks.block_size() > config.max_position_embeddings {
        return Err(EvalError::BlockTooLong {
            block_size: blocks.block_size(),
            max_positions: config.max_position_embeddings,
        });
    }
    if let Some(id) = blocks.max_id()
        && id as usize >= config.vocab_size
    {
        return Err(EvalError::IdOutOfVocabulary {
            id,
            vocab_size: config.vocab_size,
        });
    }
    Ok(())
}

/// The authors' test perplexity over the blocks in order, cut into batches of
/// `batch_size` (the last may be smaller): `exp(mean_b(Σ_b nll / Σ_b tokens))`.
/// NaN when there is no block or `batch_size` is 0.
pub fn batch_mean_perplexity(scores: &SequenceScores, batch_size: usize) -> f64 {
    if batch_size == 0 {
        return f64::NAN;
    }
    let means: Vec<f64> = scores
        .nll_sum
        .chunks(batch_size)
        .zip(scores.tokens.chunks(batch_size))
        .map(|(nll, tokens)| nll.iter().sum::<f64>() / tokens.iter().sum::<usize>() as f64)
        .collect();
    mean_of_batch_means_perplexity(&means)
}

/// Mean, median and upper percentiles of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Summary {
    /// `None` for no values or any NaN.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            median: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
        })
    }
}

/// The `q`-th percentile (0–100) of ascending `sorted` values, interpolating linearly
/// between the two nearest ranks (numpy's default, `method="linear"`): position
/// `q / 100 × (n − 1)`. NaN for no values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = (q / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // numpy.percentile(range(1, 11), [50, 90, 99]) = 5.5, 9.1, 9.91
        assert!((percentile(&v, 50.0) - 5.5).abs() < 1e-12);
        assert!((percentile(&v, 90.0) - 9.1).abs() < 1e-12);
        assert!((percentile(&v, 99.0) - 9.91).abs() < 1e-12);
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.mean, s.median), (2.0, 2.0));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn batch_means_follow_the_authors_batches() {
        // Five blocks of 3 predicted tokens; mean losses 1, 1, 1, 4, 4 -> batches of 2:
        // [1, 1], [1, 4], [4] -> means 1, 2.5, 4 -> exp(2.5); corpus: exp(11 / 5).
        let scores = SequenceScores {
            nll_sum: vec![3.0, 3.0, 3.0, 12.0, 12.0],
            tokens: vec![3; 5],
        };
        assert!((batch_mean_perplexity(&scores, 2) - 2.5f64.exp()).abs() < 1e-9);
        assert!((batch_mean_perplexity(&scores, 5) - 2.2f64.exp()).abs() < 1e-9);
        assert!(batch_mean_perplexity(&scores, 0).is_nan());
    }
}
