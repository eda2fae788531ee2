//! Logits processors: small pieces that rewrite one row's next-token scores in place,
//! composed in transformers' order (`_get_logits_processor`): repetition penalty →
//! no-repeat-ngram → min-new-tokens (EOS masking) → temperature → top-k → top-p.
//!
//! Each sees the row's whole sequence so far (prompt, including left padding, as
//! transformers' `input_ids` does, plus the generated tokens) and how many tokens
//! were generated.

use std::collections::BTreeSet;

/// Rewrites the scores `[vocab]` of one row for its next token.
pub trait LogitsProcessor: Send + Sync {
    /// `sequence`: the row's ids so far (padded prompt + generated);
    /// `new_tokens`: how many of them were generated.
    fn process(&self, sequence: &[u32], new_tokens: usize, scores: &mut [f32]);
}

/// transformers' `RepetitionPenaltyLogitsProcessor`: every distinct id already in the
/// sequence has its score multiplied by `penalty` when negative, divided when positive.
/// (In beam search the scores are log-probabilities, so they are always multiplied.)
pub struct RepetitionPenalty {
    pub penalty: f32,
}

impl LogitsProcessor for RepetitionPenalty {
    fn process(&self, sequence: &[u32], _new_tokens: usize, scores: &mut [f32]) {
        let seen: BTreeSet<u32> = sequence.iter().copied().collect();
        for id in seen {
            if let Some(s) = scores.get_mut(id as usize) {
                *s = if *s < 0.0 {
                    *s * self.penalty
                } else {
                    *s / self.penalty
                };
            }
        }
    }
}

/// transformers' `NoRepeatNGramLogitsProcessor`: a token that would complete an
/// n-gram already present in the sequence (prompt included) gets -inf.
pub struct NoRepeatNGram {
    pub size: usize,
}

impl NoRepeatNGram {
    /// The tokens that would complete an n-gram already in `sequence`.
    pub fn banned(&self, sequence: &[u32]) -> Vec<u32> {
        let n = self.size;
        let len = sequence.len();
        if n == 0 || len + 1 < n {
            return Vec::new();
        }
        let prefix = &sequence[len + 1 - n..];
        sequence
            .windows(n)
            .filter(|window| &window[..n - 1] == prefix)
            .map(|window| window[n - 1])
            .collect()
    }
}

impl LogitsProcessor for NoRepeatNGram {
    fn process(&self, sequence: &[u32], _new_tokens: usize, scores: &mut [f32]) {
        for token in self.banned(sequence) {
            if let Some(s) = scores.get_mut(token as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// transformers' `MinNewTokensLengthLogitsProcessor`: EOS gets -inf while fewer than
/// `min_new_tokens` tokens have been generated.
pub struct MinNewTokens {
    pub min_new_tokens: usize,
    pub eos_token_id: u32,
}

impl LogitsProcessor for MinNewTokens {
    fn process(&self, _sequence: &[u32], new_tokens: usize, scores: &mut [f32]) {
        if new_tokens < self.min_new_tokens
            && let Some(s) = scores.get_mut(self.eos_token_id as usize)
        {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// transformers' `TemperatureLogitsWarper`: scores / temperature.
pub struct Temperature {
    pub temperature: f32,
}

impl LogitsProcessor for Temperature {
    fn process(&self, _sequence: &[u32], _new_tokens: usize, scores: &mut [f32]) {
        for s in scores.iter_mut() {
            *s /= self.temperature;
        }
    }
}

/// transformers' `TopKLogitsWarper`: scores below the k-th largest become -inf
/// (ties with the k-th are kept).
pub struct TopK {
    pub k: usize,
}

impl LogitsProcessor for TopK {
    fn process(&self, _sequence: &[u32], _new_tokens: usize, scores: &mut [f32]) {
        let k = self.k.max(1).min(scores.len());
        if k == scores.len() {
            return;
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        for s in scores.iter_mut() {
            if *s < kth {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// transformers' `TopPLogitsWarper`: keeps the smallest set of most likely tokens
/// whose probability mass exceeds `p` (at least one token).
pub struct TopP {
    pub p: f32,
}

impl LogitsProcessor for TopP {
    fn process(&self, _sequence: &[u32], _new_tokens: usize, scores: &mut [f32]) {
        if self.p >= 1.0 {
            return;
        }
        // Ascending order, as transformers sorts; drop the low tail whose cumulative
        // probability is <= 1 - p, but never the most likely token.
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let probs = softmax(scores);
        let mut cumulative = 0.0f32;
        for (rank, &i) in order.iter().enumerate() {
            cumulative += probs[i];
            if cumulative <= 1.0 - self.p && rank + 1 < order.len() {
                scores[i] = f32::NEG_INFINITY;
            } else {
                break;
            }
        }
    }
}

/// Processors applied in order.
#[derive(Default)]
pub struct ProcessorList {
    processors: Vec<Box<dyn LogitsProcessor>>,
}

impl ProcessorList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a processor (it runs after those already in the list).
    pub fn push(&mut self, p: impl LogitsProcessor + 'static) {
        self.processors.push(Box::new(p));
    }

    pub fn is_empty(&self) -> bool {
        self.processors.is_empty()
    }

    /// Runs every processor on one row's scores.
    pub fn apply(&self, sequence: &[u32], new_tokens: usize, scores: &mut [f32]) {
        for p in &self.processors {
            p.process(sequence, new_tokens, scores);
        }
    }
}

/// Probabilities of `scores` (softmax in f32).
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores.iter().map(|&s| (s - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_multiplies_negatives_and_divides_positives_once_per_id() {
        let mut s = vec![-1.0, 2.0, 3.0, -4.0];
        RepetitionPenalty { penalty: 2.0 }.process(&[0, 1, 1, 3], 0, &mut s);
        assert_eq!(s, vec![-2.0, 1.0, 3.0, -8.0]);
    }

    #[test]
    fn no_repeat_ngram_bans_completions_of_seen_ngrams() {
        let mut s = vec![0.0; 6];
        // bigrams seen: (1,2), (2,3), (3,1); the last token is 1 so 2 is banned.
        NoRepeatNGram { size: 2 }.process(&[1, 2, 3, 1], 0, &mut s);
        assert_eq!(s[2], f32::NEG_INFINITY);
        assert_eq!(s.iter().filter(|v| v.is_infinite()).count(), 1);
    }

    #[test]
    fn min_new_tokens_masks_eos_until_reached() {
        let p = MinNewTokens {
            min_new_tokens: 2,
            eos_token_id: 1,
        };
        let mut s = vec![0.0; 3];
        p.process(&[], 1, &mut s);
        assert_eq!(s[1], f32::NEG_INFINITY);
        let mut s = vec![0.0; 3];
        p.process(&[], 2, &mut s);
        assert_eq!(s[1], 0.0);
    }

    #[test]
    fn top_k_and_top_p_keep_the_most_likely() {
        let mut s = vec![1.0, 3.0, 2.0, 0.0];
        TopK { k: 2 }.process(&[], 0, &mut s);
        assert_eq!(s, vec![f32::NEG_INFINITY, 3.0, 2.0, f32::NEG_INFINITY]);
        let mut s = vec![0.0, 10.0, 0.0, 0.0];
        TopP { p: 0.9 }.process(&[], 0, &mut s);
        assert_eq!(s[1], 10.0);
        assert!(s.iter().filter(|v| v.is_infinite()).count() == 3);
    }
}
