//! Text generation outside the model: beam search, greedy and sampling, batched over
//! many prompts, with the model's caller-owned [`KvCache`] (reordered by beam index).
//!
//! Beam search and greedy follow transformers 4.46 `generate()` step by step (see
//! PARITY.md, "Synthesis"): the same logits processors in the same order, the same
//! candidate walk, finished-hypothesis bookkeeping, `length_penalty` and
//! `early_stopping` semantics, so outputs are token-identical on the fixtures
//! (`tests/generate_parity.rs`). Prompts of different lengths are left-padded with
//! `pad_token_id` and masked, as transformers expects.
//!
//! Every row's result is independent of the other prompts in its batch, so batching
//! changes speed, not tokens.

pub mod beam;
pub mod greedy;
pub mod processors;
pub mod sample;

use crate::backend::XpBackend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::{KvCache, ModelError, Opt};
use processors::{MinNewTokens, NoRepeatNGram, ProcessorList, RepetitionPenalty};

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// transformers' beam search (`num_beams > 1`, `do_sample=False`).
    Beam {
        num_beams: usize,
        /// Finished hypotheses score `sum_logprobs / generated_len^length_penalty`.
        length_penalty: f32,
        /// `true`: a prompt is done once it has `num_beams` finished hypotheses;
        /// `false`: transformers' heuristic (done when the best live beam, at the
        /// current length, cannot beat the worst kept hypothesis).
        early_stopping: bool,
    },
    /// Arg-max of the processed logits (`num_beams=1`, `do_sample=False`).
    Greedy,
    /// Multinomial sampling from the processed, warped logits, seeded per prompt.
    Sample {
        temperature: f32,
        /// 0 = no top-k filter.
        top_k: usize,
        /// 1.0 = no nucleus filter.
        top_p: f32,
        seed: u64,
    },
}

/// Everything that decides which tokens come out.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationConfig {
    pub strategy: Strategy,
    pub max_new_tokens: usize,
    /// EOS is masked until this many tokens were generated.
    pub min_new_tokens: usize,
    /// 1.0 = off.
    pub repetition_penalty: f32,
    /// 0 = off.
    pub no_repeat_ngram_size: usize,
    /// `None`: generation never stops early.
    pub eos_token_id: Option<u32>,
    /// Left padding of shorter prompts (and filler after a finished greedy row).
    pub pad_token_id: u32,
}

impl GenerationConfig {
    /// The paper's synthesis settings: `generate(num_beams=5, max_new_tokens=64,
    /// min_new_tokens=64, repetition_penalty=3.0)` with OPT's ids (eos 2, pad 1).
    pub fn paper() -> Self {
        GenerationConfig {
            strategy: Strategy::Beam {
                num_beams: 5,
                length_penalty: 1.0,
                early_stopping: false,
            },
            max_new_tokens: 64,
            min_new_tokens: 64,
            repetition_penalty: 3.0,
            no_repeat_ngram_size: 0,
            eos_token_id: Some(2),
            pad_token_id: 1,
        }
    }

    /// Checks the settings before any work.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |what: String| Err(GenerateError::InvalidConfig(what));
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1".into());
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition_penalty = {} must be a positive number",
                self.repetition_penalty
            ));
        }
        match &self.strategy {
            Strategy::Beam { num_beams, .. } if *num_beams < 2 => {
                bad("beam search needs at least 2 beams (use greedy for 1)".into())
            }
            Strategy::Sample {
                temperature, top_p, ..
            } if !(*temperature > 0.0 && *top_p > 0.0 && *top_p <= 1.0) => bad(format!(
                "sampling needs temperature > 0 and 0 < top_p <= 1 (got {temperature}, {top_p})"
            )),
            _ => Ok(()),
        }
    }

    /// The `(row, token)` pairs whose next-token score is -inf for rows with these
    /// `sequences` after `new_tokens` generated tokens: no-repeat-ngram bans, and EOS
    /// before `min_new_tokens` (what [`GenerationConfig::processors`] sets to -inf).
    pub(crate) fn banned(&self, sequences: &[Vec<u32>], new_tokens: usize) -> Vec<(usize, u32)> {
        let mut banned = Vec::new();
        if self.no_repeat_ngram_size > 0 {
            let ngram = NoRepeatNGram {
                size: self.no_repeat_ngram_size,
            };
            for (row, sequence) in sequences.iter().enumerate() {
                banned.extend(ngram.banned(sequence).into_iter().map(|t| (row, t)));
            }
        }
        if let Some(eos) = self.eos_token_id
            && new_tokens < self.min_new_tokens
        {
            banned.extend((0..sequences.len()).map(|row| (row, eos)));
        }
        banned
    }

    /// The processors transformers applies before the strategy's own warpers.
    pub(crate) fn processors(&self) -> ProcessorList {
        let mut list = ProcessorList::new();
        if self.repetition_penalty != 1.0 {
            list.push(RepetitionPenalty {
                penalty: self.repetition_penalty,
            });
        }
        if self.no_repeat_ngram_size > 0 {
            list.push(NoRepeatNGram {
                size: self.no_repeat_ngram_size,
            });
        }
        if let Some(eos) = self.eos_token_id
            && self.min_new_tokens > 0
        {
            list.push(MinNewTokens {
                min_new_tokens: self.min_new_tokens,
                eos_token_id: eos,
            });
        }
        list
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid generation settings: {0}")]
    InvalidConfig(String),
    #[error("prompt {index} is empty: every prompt needs at least one token")]
    EmptyPrompt { index: usize },
    #[error(
        "prompt {index} ({prompt_len} tokens) + {new_tokens} new tokens exceeds the model's \
         {max_positions} positions; shorten the prompts or lower the new-token count"
    )]
    TooLong {
        index: usize,
        prompt_len: usize,
        new_tokens: usize,
        max_positions: usize,
    },
    #[error("prompt {index} has token id {id}, outside the model's vocabulary of {vocab}")]
    TokenOutOfRange { index: usize, id: u32, vocab: usize },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The new tokens of every prompt, in order. A continuation that ended with EOS
/// includes that EOS and is shorter than `max_new_tokens`; no batch padding.
///
/// `first_index` is the index of `prompts[0]` in the whole job: sampling seeds each
/// prompt from (`seed`, its index), so results do not depend on batching.
pub fn generate<B: XpBackend>(
    model: &Opt<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    first_index: u64,
    device: &B::Device,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    config.validate()?;
    check_prompts(model, prompts)?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    match &config.strategy {
        Strategy::Beam {
            num_beams,
            length_penalty,
            early_stopping,
        } => beam::beam_search(
            model,
            prompts,
            config,
            beam::BeamSettings {
                num_beams: *num_beams,
                length_penalty: *length_penalty,
                early_stopping: *early_stopping,
            },
            device,
        ),
        Strategy::Greedy => greedy::greedy(model, prompts, config, device),
        Strategy::Sample {
            temperature,
            top_k,
            top_p,
            seed,
        } => sample::sample(
            model,
            prompts,
            config,
            sample::SampleSettings {
                temperature: *temperature,
                top_k: *top_k,
                top_p: *top_p,
                seed: *seed,
                first_index,
            },
            device,
        ),
    }
}

fn check_prompts<B: XpBackend>(model: &Opt<B>, prompts: &[Vec<u32>]) -> Result<(), GenerateError> {
    let vocab = model.token_embedding().dims()[0];
    for (index, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(GenerateError::EmptyPrompt { index });
        }
        if let Some(&id) = p.iter().find(|&&id| id as usize >= vocab) {
            return Err(GenerateError::TokenOutOfRange { index, id, vocab });
        }
    }
    Ok(())
}

/// Checks that every prompt plus `config.max_new_tokens` fits the model's learned
/// positions (`max_position_embeddings` of its config); call it before [`generate`].
pub fn check_fits(
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    max_positions: usize,
) -> Result<(), GenerateError> {
    for (index, p) in prompts.iter().enumerate() {
        // Positions come from the mask, so only the real tokens count.
        if p.len() + config.max_new_tokens > max_positions {
            return Err(GenerateError::TooLong {
                index,
                prompt_len: p.len(),
                new_tokens: config.max_new_tokens,
                max_positions,
            });
        }
    }
    Ok(())
}

/// Rows of a batch on their way through the model: the token sequences (left-padded
/// prompt + generated), the attention mask and the KV cache, kept in step.
pub(crate) struct Rows<'m, B: XpBackend> {
    model: &'m Opt<B>,
    device: B::Device,
    cache: KvCache<B>,
    /// Per row: every id so far, padding included (what transformers' `input_ids` holds).
    pub sequences: Vec<Vec<u32>>,
    /// Per row: 1 for real tokens, 0 for left padding; covers `sequences`.
    masks: Vec<Vec<i64>>,
    /// Width of the padded prompt.
    pub prompt_width: usize,
}

impl<'m, B: XpBackend> Rows<'m, B> {
    /// Left-pads the prompts to a common width; the cache makes room for the prompt
    /// and `config.max_new_tokens`.
    pub fn new(
        model: &'m Opt<B>,
        prompts: &[Vec<u32>],
        config: &GenerationConfig,
        device: &B::Device,
    ) -> Self {
        let pad = config.pad_token_id;
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let sequences = prompts
            .iter()
            .map(|p| {
                let mut row = vec![pad; width - p.len()];
                row.extend_from_slice(p);
                row
            })
            .collect();
        let masks = prompts
            .iter()
            .map(|p| {
                let mut row = vec![0i64; width - p.len()];
                row.resize(width, 1);
                row
            })
            .collect();
        Rows {
            model,
            device: device.clone(),
            cache: KvCache::for_decoding(model, width + config.max_new_tokens),
            sequences,
            masks,
            prompt_width: width,
        }
    }

    pub fn len(&self) -> usize {
        self.sequences.len()
    }

    /// Runs the prompts through the model; last-position logits `[rows * vocab]`.
    pub fn prefill(&mut self) -> Result<Vec<f32>, GenerateError> {
        Ok(B::to_host_f32(self.prefill_on_device()?))
    }

    /// [`Rows::prefill`] with the logits left on the device, `[rows, vocab]`.
    pub fn prefill_on_device(&mut self) -> Result<Tensor<B, 2>, GenerateError> {
        let rows = self.len();
        let width = self.prompt_width;
        let ids: Vec<i64> = self.sequences.iter().flatten().map(|&i| i as i64).collect();
        let mask: Vec<i64> = self.masks.iter().flatten().copied().collect();
        self.forward_last(ids, mask, rows, width)
    }

    /// Row `i` becomes old row `indices[i]` (sequence, mask and cache), so the row
    /// count may change (e.g. repeating each prompt once per beam).
    pub fn reorder(&mut self, indices: &[usize]) -> Result<(), GenerateError> {
        self.sequences = indices.iter().map(|&i| self.sequences[i].clone()).collect();
        self.masks = indices.iter().map(|&i| self.masks[i].clone()).collect();
        let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        self.cache.reorder_rows(&index)?;
        Ok(())
    }

    /// Appends one token per row and runs it through the model; logits `[rows * vocab]`.
    pub fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>, GenerateError> {
        Ok(B::to_host_f32(self.step_on_device(tokens)?))
    }

    /// [`Rows::step`] with the logits left on the device, `[rows, vocab]`.
    pub fn step_on_device(&mut self, tokens: &[u32]) -> Result<Tensor<B, 2>, GenerateError> {
        let rows = self.len();
        for ((seq, mask), &t) in self.sequences.iter_mut().zip(&mut self.masks).zip(tokens) {
            seq.push(t);
            mask.push(1);
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let mask: Vec<i64> = self.masks.iter().flatten().copied().collect();
        self.forward_last(ids, mask, rows, 1)
    }

    /// Appends one token per row without running the model (the last step).
    pub fn push(&mut self, tokens: &[u32]) {
        for ((seq, mask), &t) in self.sequences.iter_mut().zip(&mut self.masks).zip(tokens) {
            seq.push(t);
            mask.push(1);
        }
    }

    fn forward_last(
        &mut self,
        ids: Vec<i64>,
        mask: Vec<i64>,
        rows: usize,
        seq: usize,
    ) -> Result<Tensor<B, 2>, GenerateError> {
        let total = mask.len() / rows;
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [rows, seq]), &self.device);
        let mask =
            Tensor::<B, 2, Int>::from_data(TensorData::new(mask, [rows, total]), &self.device);
        let h = self
            .model
            .hidden_states(ids, Some(mask), Some(&mut self.cache))?; // [rows, seq, e]
        let last = h.narrow(1, seq - 1, 1); // [rows, 1, e]
        let logits = self.model.decoding_logits(last, &self.cache); // [rows, 1, vocab]
        Ok(logits.squeeze_dim(1)) // [rows, vocab]
    }
}
