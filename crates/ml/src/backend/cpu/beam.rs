//! One beam-search step's candidates on the host: the logits are already in host
//! memory, so the whole step is one pass per row (log-softmax, penalty, bans, running
//! score) and a partial selection per prompt, no tensor op.

use std::collections::BTreeSet;

use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{Cpu, values};
use crate::backend::BeamStep;

/// See `XpBackend::beam_candidates`; the same f32 operations in the same order as
/// transformers' processors, row by row.
pub(super) fn beam_candidates(
    logits: Tensor<Cpu, 2>,
    step: &BeamStep<'_>,
) -> Vec<Vec<(f32, usize)>> {
    let [rows, vocab] = logits.dims();
    let mut scores = values(logits); // [rows * vocab]
    scores
        .par_chunks_mut(vocab)
        .enumerate()
        .for_each(|(r, scores)| {
            log_softmax_in_place(scores);
            if step.repetition_penalty != 1.0 {
                let seen: BTreeSet<u32> = step.sequences[r].iter().copied().collect();
                for id in seen {
                    if let Some(s) = scores.get_mut(id as usize) {
                        *s = if *s < 0.0 {
                            *s * step.repetition_penalty
                        } else {
                            *s / step.repetition_penalty
                        };
                    }
                }
            }
            let running = step.running[r];
            for s in scores.iter_mut() {
                *s += running;
            }
        });
    // Bans after the running score: -inf either way.
    for &(row, token) in step.banned {
        if let Some(s) = scores.get_mut(row * vocab + token as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
    scores
        .par_chunks(step.beams * vocab)
        .map(|prompt| top_k(prompt, step.keep))
        .collect::<Vec<_>>()
        .into_iter()
        .take(rows / step.beams)
        .collect()
}

/// `scores - max - ln Σ exp(scores - max)`, the sum in order.
pub fn log_softmax_in_place(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = scores.iter().map(|&s| (s - max).exp()).sum();
    let log_sum = sum.ln();
    for s in scores.iter_mut() {
        *s = *s - max - log_sum;
    }
}

/// The `k` largest `(score, index)` of `scores`, best first; ties keep the lower index.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(f32, usize)> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        if best.len() == k && s.partial_cmp(&best[k - 1].0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= s);
        best.insert(at, (s, i));
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises() {
        let mut s = vec![1.0, 2.0, 3.0];
        log_softmax_in_place(&mut s);
        let total: f32 = s.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_is_best_first_and_ties_keep_the_lower_index() {
        assert_eq!(
            top_k(&[1.0, 3.0, 3.0, 0.5, 2.0], 3),
            vec![(3.0, 1), (3.0, 2), (2.0, 4)]
        );
    }
}

#[cfg(test)]
mod generic_tests {
    use burn::tensor::backend::Backend;
    use burn::tensor::{Distribution, Tensor};

    use super::Cpu;
    use crate::backend::{BeamStep, beam_candidates_with_tensors};

    /// The host step and the tensor-op step (what GPUs run) pick the same candidates
    /// with scores equal to a few ulps (their log-softmax sums in different orders).
    #[test]
    fn the_host_step_equals_the_tensor_step() {
        let device = Default::default();
        let _rng = crate::backend::seeded_rng_lock();
        <Cpu as Backend>::seed(&device, 21);
        let (prompts, beams, vocab) = (3, 4, 97);
        let rows = prompts * beams;
        let logits =
            Tensor::<Cpu, 2>::random([rows, vocab], Distribution::Normal(0.0, 4.0), &device);
        let sequences: Vec<Vec<u32>> = (0..rows)
            .map(|r| (0..9).map(|i| ((r * 13 + i * 7) % vocab) as u32).collect())
            .collect();
        let running: Vec<f32> = (0..rows).map(|r| -(r as f32) * 0.37).collect();
        let banned = vec![(0, 2), (5, 2), (5, 11), (rows - 1, 96)];
        for penalty in [1.0, 3.0] {
            let step = BeamStep {
                running: &running,
                beams,
                keep: 2 * beams,
                repetition_penalty: penalty,
                sequences: &sequences,
                banned: &banned,
            };
            let host = super::beam_candidates(logits.clone(), &step);
            let generic = beam_candidates_with_tensors(logits.clone(), &step);
            for (h, g) in host.iter().zip(&generic) {
                let ids = |c: &Vec<(f32, usize)>| c.iter().map(|x| x.1).collect::<Vec<_>>();
                assert_eq!(ids(h), ids(g), "penalty {penalty}");
                for (a, b) in h.iter().zip(g) {
                    assert!(
                        (a.0 - b.0).abs() <= 1e-6 * (1.0 + a.0.abs()),
                        "{a:?} vs {b:?}"
                    );
                }
            }
            assert_eq!(host.len(), generic.len());
        }
    }
}
