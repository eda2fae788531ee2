//! Greedy decoding as transformers' `_sample` with `do_sample=False`: processors on the
//! raw last-position logits (not log-probabilities), arg-max (first index on ties); a
//! row that produced EOS is finished and receives `pad_token_id` from then on; stops
//! when every row is finished or at `max_new_tokens`.

use crate::backend::XpBackend;

use super::processors::ProcessorList;
use super::{GenerateError, GenerationConfig, Rows};
use crate::model::Opt;

/// Greedy decoding over `prompts`; the new tokens per prompt (up to and including EOS).
pub fn greedy<B: XpBackend>(
    model: &Opt<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    device: &B::Device,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    let processors = config.processors();
    one_path_per_row(model, prompts, config, &processors, device, |_, scores| {
        argmax(scores)
    })
}

/// Index of the largest score, the first one on ties (as torch's argmax).
pub fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}

/// The decoding loop shared by greedy and sampling: one live sequence per prompt;
/// `choose(row, processed_scores)` picks each next token.
pub(crate) fn one_path_per_row<B: XpBackend>(
    model: &Opt<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    processors: &ProcessorList,
    device: &B::Device,
    mut choose: impl FnMut(usize, &mut [f32]) -> u32,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    let batch = prompts.len();
    let mut rows = Rows::new(model, prompts, config, device);
    let mut logits = rows.prefill()?;
    let vocab = logits.len() / batch;
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); batch];
    let mut finished = vec![false; batch];
    for new_tokens in 0..config.max_new_tokens {
        let mut tokens = vec![config.pad_token_id; batch];
        for (r, scores) in logits.chunks_mut(vocab).enumerate() {
            if finished[r] {
                continue;
            }
            processors.apply(&rows.sequences[r], new_tokens, scores);
            let token = choose(r, scores);
            tokens[r] = token;
            out[r].push(token);
            if Some(token) == config.eos_token_id {
                finished[r] = true;
            }
        }
        if new_tokens + 1 == config.max_new_tokens || finished.iter().all(|&f| f) {
            break;
        }
        logits = rows.step(&tokens)?;
    }
    Ok(out)
}
