//! Beam search as transformers 4.46 `_beam_search` + `BeamSearchScorer` do it, batched
//! over prompts: rows are `prompt × beam`, prompt-major.
//!
//! Per step: last-position logits → log_softmax → processors (repetition penalty,
//! no-repeat-ngram, min-new-tokens) → + the beam's running score (f32) → per prompt,
//! flatten `[beams × vocab]` and take the top `max(2, 1 + #eos) × beams` → walk them
//! in order: an EOS candidate ranked within the first `beams` becomes a finished
//! hypothesis (scored `sum_logprobs / generated_len^length_penalty`, generated_len
//! counting the EOS), a non-EOS candidate becomes the next beam until `beams` are
//! chosen → the prompt is done when its hypotheses cannot improve (`early_stopping`)
//! → reorder sequences and KV cache by beam index. At `max_new_tokens` the live beams
//! join the hypotheses and the best-scoring hypothesis is returned.
//!
//! Scores of hypotheses and the done test are computed in f64, as transformers does
//! them on Python floats.
//!
//! Each step's scores and top-k are one backend operation (`XpBackend::beam_candidates`):
//! on a GPU they stay on the device and only `[prompts, keep]` candidates come back.

use burn::tensor::{Int, Tensor, TensorData};

use super::{GenerateError, GenerationConfig, Rows};
use crate::backend::{BeamStep, XpBackend};
use crate::model::Opt;

/// The beam-specific settings of [`super::Strategy::Beam`].
#[derive(Clone, Copy, Debug)]
pub struct BeamSettings {
    pub num_beams: usize,
    pub length_penalty: f32,
    pub early_stopping: bool,
}

/// transformers' `BeamHypotheses`: the best `num_beams` finished sequences of a prompt.
struct Hypotheses {
    /// (score, generated ids after the padded prompt, ended by EOS), in insertion order.
    beams: Vec<(f64, Vec<u32>, bool)>,
    worst_score: f64,
    num_beams: usize,
    length_penalty: f64,
    early_stopping: bool,
}

impl Hypotheses {
    fn new(settings: BeamSettings) -> Self {
        Hypotheses {
            beams: Vec::new(),
            worst_score: 1e9,
            num_beams: settings.num_beams,
            length_penalty: settings.length_penalty as f64,
            early_stopping: settings.early_stopping,
        }
    }

    fn add(&mut self, ids: Vec<u32>, sum_logprobs: f32, generated_len: usize, eos: bool) {
        let score = sum_logprobs as f64 / (generated_len as f64).powf(self.length_penalty);
        if self.beams.len() < self.num_beams || score > self.worst_score {
            self.beams.push((score, ids, eos));
            if self.beams.len() > self.num_beams {
                // Python sorts (score, index) pairs: drop the lowest score (first index
                // on ties); the next one becomes the worst.
                let mut order: Vec<(f64, usize)> = self
                    .beams
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (b.0, i))
                    .collect();
                order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                self.beams.remove(order[0].1);
                self.worst_score = order[1].0;
            } else {
                self.worst_score = self.worst_score.min(score);
            }
        }
    }

    /// `generated_len`: tokens generated so far + 1 (transformers' `cur_len - prompt_len`).
    fn is_done(&self, best_sum_logprobs: f32, generated_len: usize) -> bool {
        if self.beams.len() < self.num_beams {
            return false;
        }
        if self.early_stopping {
            return true;
        }
        let highest = best_sum_logprobs as f64 / (generated_len as f64).powf(self.length_penalty);
        self.worst_score >= highest
    }

    /// The best hypothesis; on equal scores the one added last (Python's stable sort
    /// followed by `pop()`).
    fn best(mut self) -> Option<(Vec<u32>, bool)> {
        let mut best: Option<usize> = None;
        for (i, b) in self.beams.iter().enumerate() {
            if best.is_none_or(|j| b.0 >= self.beams[j].0) {
                best = Some(i);
            }
        }
        best.map(|i| {
            let (_, ids, eos) = self.beams.swap_remove(i);
            (ids, eos)
        })
    }
}

/// Beam search over `prompts`; see the module docs. Returns the new tokens per prompt.
pub fn beam_search<B: XpBackend>(
    model: &Opt<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    settings: BeamSettings,
    device: &B::Device,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    let nb = settings.num_beams;
    let batch = prompts.len();
    let eos = config.eos_token_id;
    let keep = 2.max(1 + usize::from(eos.is_some())) * nb;

    let mut rows = Rows::new(model, prompts, config, device);
    let width = rows.prompt_width;
    let prompt_logits = rows.prefill_on_device()?; // [batch, vocab]
    let vocab = prompt_logits.dims()[1];
    // Every prompt's row repeated once per beam (transformers expands before the
    // first forward; the rows are identical, so expanding after it is the same).
    let expand: Vec<usize> = (0..batch * nb).map(|r| r / nb).collect();
    rows.reorder(&expand)?;
    let index: Vec<i64> = expand.iter().map(|&p| p as i64).collect();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [batch * nb]), device);
    let mut logits = prompt_logits.select(0, index); // [batch * nb, vocab]

    let mut beam_scores: Vec<f32> = (0..batch * nb)
        .map(|r| if r % nb == 0 { 0.0 } else { -1e9 })
        .collect();
    let mut hyps: Vec<Hypotheses> = (0..batch).map(|_| Hypotheses::new(settings)).collect();
    let mut done = vec![false; batch];
    let mut new_tokens = 0usize;
    loop {
        let banned = config.banned(&rows.sequences, new_tokens);
        let step = BeamStep {
            running: &beam_scores,
            beams: nb,
            keep,
            repetition_penalty: config.repetition_penalty,
            sequences: &rows.sequences,
            banned: &banned,
        };
        let candidates = B::beam_candidates(logits, &step); // [batch][keep]
        let mut next_scores = vec![0f32; batch * nb];
        let mut next_tokens = vec![config.pad_token_id; batch * nb];
        let mut next_rows = vec![0usize; batch * nb];
        for b in 0..batch {
            if done[b] {
                continue; // transformers pads it: score 0, token pad, row 0
            }
            let candidates = &candidates[b];
            let mut chosen = 0usize;
            for (rank, &(score, index)) in candidates.iter().enumerate() {
                let (beam, token) = (index / vocab, (index % vocab) as u32);
                let row = b * nb + beam;
                if Some(token) == eos {
                    if rank >= nb {
                        continue;
                    }
                    let ids = rows.sequences[row][width..].to_vec();
                    hyps[b].add(ids, score, new_tokens + 1, true);
                } else {
                    next_scores[b * nb + chosen] = score;
                    next_tokens[b * nb + chosen] = token;
                    next_rows[b * nb + chosen] = row;
                    chosen += 1;
                }
                if chosen == nb {
                    break;
                }
            }
            if chosen < nb {
                return Err(GenerateError::InvalidConfig(format!(
                    "beam search found fewer than {nb} non-EOS candidates; \
                     the vocabulary is too small for this many beams"
                )));
            }
            let best = candidates.first().map_or(f32::NEG_INFINITY, |c| c.0);
            done[b] = hyps[b].is_done(best, new_tokens + 1);
        }
        beam_scores = next_scores;
        rows.reorder(&next_rows)?;
        new_tokens += 1;
        if new_tokens >= config.max_new_tokens || done.iter().all(|&d| d) {
            rows.push(&next_tokens);
            break;
        }
        logits = rows.step_on_device(&next_tokens)?;
    }

    // Finalize: live beams of unfinished prompts join their hypotheses.
    let mut out = Vec::with_capacity(batch);
    for (b, mut h) in hyps.into_iter().enumerate() {
        if !done[b] {
            let live = b * nb..(b + 1) * nb;
            for (sequence, &score) in rows.sequences[live.clone()].iter().zip(&beam_scores[live]) {
                let ids = sequence[width..].to_vec();
                let len = ids.len();
                h.add(ids, score, len, false);
            }
        }
        let (mut ids, ended_by_eos) = h.best().ok_or_else(|| {
            GenerateError::InvalidConfig("beam search ended without a hypothesis".into())
        })?;
        if ended_by_eos && let Some(e) = eos {
            ids.push(e);
        }
        out.push(ids);
    }
    Ok(out)
}
