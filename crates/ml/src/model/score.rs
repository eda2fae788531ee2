//! Scoring text with a causal LM, as HF computes the loss: logits at position t predict
//! token t + 1 (shift by one), cross-entropy averaged over the predicted positions.
//!
//! With an attention mask, a target position t + 1 counts when both it and its context
//! position t are real tokens (mask 1). With an all-ones mask this is exactly HF's
//! `model(ids, labels=ids).loss` per row; with left padding it leaves out the first real
//! token, whose prediction would come from a padded position.

use burn::tensor::{Int, Tensor};

use super::error::ModelError;
use super::opt::Opt;
use crate::backend::XpBackend;

/// Summed negative log-likelihood and number of predicted tokens, per sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceScores {
    /// Σ −log p(target) over the counted positions of each sequence (nats).
    pub nll_sum: Vec<f64>,
    /// Number of counted target positions of each sequence.
    pub tokens: Vec<usize>,
}

impl SequenceScores {
    /// Mean loss per sequence (NaN for a sequence with no counted position).
    pub fn mean_losses(&self) -> Vec<f64> {
        self.nll_sum
            .iter()
            .zip(&self.tokens)
            .map(|(s, &n)| if n == 0 { f64::NAN } else { s / n as f64 })
            .collect()
    }

    /// Perplexity per sequence, `exp(mean loss)`.
    pub fn perplexities(&self) -> Vec<f64> {
        self.mean_losses().into_iter().map(perplexity).collect()
    }
}

/// `exp(mean loss)`.
pub fn perplexity(mean_loss: f64) -> f64 {
    mean_loss.exp()
}

/// Token-weighted corpus perplexity: `exp(Σ nll / Σ tokens)` over everything added.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CorpusPerplexity {
    /// Σ −log p over all counted positions so far.
    pub nll_sum: f64,
    /// Number of counted positions so far.
    pub tokens: u64,
}

impl CorpusPerplexity {
    /// Adds one batch's scores.
    pub fn add(&mut self, scores: &SequenceScores) {
        self.nll_sum += scores.nll_sum.iter().sum::<f64>();
        self.tokens += scores.tokens.iter().map(|&n| n as u64).sum::<u64>();
    }

    /// The token-weighted mean loss (NaN before any token).
    pub fn mean_loss(&self) -> f64 {
        if self.tokens == 0 {
            f64::NAN
        } else {
            self.nll_sum / self.tokens as f64
        }
    }

    /// `exp(mean_loss())`.
    pub fn perplexity(&self) -> f64 {
        perplexity(self.mean_loss())
    }
}

/// The authors' test perplexity: `exp` of the mean over batches of each batch's mean loss
/// (differs from the token-weighted number when batches differ in size).
pub fn mean_of_batch_means_perplexity(batch_mean_losses: &[f64]) -> f64 {
    if batch_mean_losses.is_empty() {
        return f64::NAN;
    }
    perplexity(batch_mean_losses.iter().sum::<f64>() / batch_mean_losses.len() as f64)
}

/// Per-position NLL `[batch, seq - 1]` and the weights of the counted positions
/// `[batch, seq - 1]` (1.0 or 0.0). Differentiable.
fn shifted_nll<B: XpBackend>(
    logits: Tensor<B, 3>,
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Option<Tensor<B, 2, Int>>,
) -> Result<(Tensor<B, 2>, Tensor<B, 2>), ModelError> {
    let [batch, seq, vocab] = logits.dims();
    if input_ids.dims() != [batch, seq] {
        return Err(ModelError::InvalidInput(format!(
            "input_ids {:?} do not match logits [{batch}, {seq}, {vocab}]",
            input_ids.dims()
        )));
    }
    if seq < 2 {
        return Err(ModelError::InvalidInput(format!(
            "sequences of length {seq} have no next token to predict"
        )));
    }
    let (nll, _) = B::shifted_nll(logits, input_ids); // [b, seq-1]
    let weights = match attention_mask {
        Some(mask) => {
            if mask.dims() != [batch, seq] {
                return Err(ModelError::InvalidInput(format!(
                    "attention_mask {:?} does not match input_ids [{batch}, {seq}]",
                    mask.dims()
                )));
            }
            (mask.clone().narrow(1, 1, seq - 1) * mask.narrow(1, 0, seq - 1)).float()
        }
        None => Tensor::ones([batch, seq - 1], &nll.device()),
    };
    Ok((nll, weights))
}

/// The training loss: mean NLL over every counted position of the batch (HF's
/// `CrossEntropyLoss` over `logits[:, :-1]` and `labels[:, 1:]`), a scalar `[1]`.
pub fn causal_lm_loss<B: XpBackend>(
    logits: Tensor<B, 3>,
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Option<Tensor<B, 2, Int>>,
) -> Result<Tensor<B, 1>, ModelError> {
    let (nll, weights) = shifted_nll(logits, input_ids, attention_mask)?;
    let count = weights.clone().sum().clamp_min(1.0);
    Ok((nll * weights).sum() / count)
}

/// Summed NLL and counted tokens per sequence for `input_ids` `[batch, seq]`.
/// Runs one forward pass; call it on `model.valid()` (no dropout, no autodiff graph).
pub fn sequence_scores<B: XpBackend>(
    model: &Opt<B>,
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Option<Tensor<B, 2, Int>>,
) -> Result<SequenceScores, ModelError> {
    let logits = model.forward(input_ids.clone(), attention_mask.clone(), None)?;
    let (nll, weights) = shifted_nll(logits, input_ids, attention_mask)?;
    let sums = (nll * weights.clone()).sum_dim(1); // [b, 1]
    let counts = weights.sum_dim(1); // [b, 1]
    let to_vec = |t: Tensor<B, 2>| -> Result<Vec<f64>, ModelError> {
        t.into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .map_err(|e| ModelError::InvalidInput(format!("reading scores: {e:?}")))
    };
    Ok(SequenceScores {
        nll_sum: to_vec(sums)?,
        tokens: to_vec(counts)?.into_iter().map(|c| c as usize).collect(),
    })
}

/// Mean NLL per sequence (see the module doc for which positions count).
pub fn sequence_losses<B: XpBackend>(
    model: &Opt<B>,
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Option<Tensor<B, 2, Int>>,
) -> Result<Vec<f64>, ModelError> {
    Ok(sequence_scores(model, input_ids, attention_mask)?.mean_losses())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_perplexity_weights_by_tokens() {
        // Two batches: mean loss 1.0 over 1 token, mean loss 3.0 over 3 tokens.
        let mut corpus = CorpusPerplexity::default();
        corpus.add(&SequenceScores {
            nll_sum: vec![1.0],
            tokens: vec![1],
        });
        corpus.add(&SequenceScores {
            nll_sum: vec![9.0],
            tokens: vec![3],
        });
        // Token-weighted: 10 nats / 4 tokens = 2.5; the authors' mean of batch means: 2.0.
        assert!((corpus.mean_loss() - 2.5).abs() < 1e-12);
        assert!((corpus.perplexity() - 2.5f64.exp()).abs() < 1e-9);
        assert!((mean_of_batch_means_perplexity(&[1.0, 3.0]) - 2.0f64.exp()).abs() < 1e-9);
    }

    #[test]
    fn mean_losses_and_perplexities_per_sequence() {
        let scores = SequenceScores {
            nll_sum: vec![6.0, 0.0],
            tokens: vec![3, 0],
        };
        let means = scores.mean_losses();
        assert_eq!(means[0], 2.0);
        assert!(means[1].is_nan(), "no counted position -> NaN");
        assert!((scores.perplexities()[0] - 2.0f64.exp()).abs() < 1e-12);
    }
}
