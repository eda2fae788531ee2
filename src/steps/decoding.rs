//! How `synthesize` and `prompts` choose tokens: one set of decoding parameters,
//! flattened into both kinds' tables (the experiment file writes `beams = 5`, not
//! `decoding.beams = 5`). How many tokens to write stays with each kind: its
//! defaults differ (a synthesized block is 64 tokens, an answer 32).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::StepError;
use crate::generate::{GenerateError, GenerationConfig, Strategy};

/// transformers' `generate` options, with the seed paper's beam search as default
/// (`num_beams=5, repetition_penalty=3.0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decoding {
    /// Beams of the beam search (`num_beams`); 1 = greedy (or sampling with `sample`).
    #[serde(default = "default_beams")]
    pub beams: usize,
    /// transformers' `repetition_penalty` (1.0 = off).
    #[serde(default = "default_repetition_penalty")]
    pub repetition_penalty: f32,
    /// transformers' `length_penalty` for finished beam hypotheses.
    #[serde(default = "default_one")]
    pub length_penalty: f32,
    /// transformers' `early_stopping` (true, or false = its heuristic).
    #[serde(default)]
    pub early_stopping: bool,
    /// transformers' `no_repeat_ngram_size` (0 = off).
    #[serde(default)]
    pub no_repeat_ngram_size: usize,
    /// Sample instead of beam/greedy search (needs `beams = 1`); seeded by the experiment seed.
    #[serde(default)]
    pub sample: bool,
    /// Sampling temperature.
    #[serde(default = "default_one")]
    pub temperature: f32,
    /// Sampling: keep the k most likely tokens (0 = all).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Sampling: nucleus mass (1.0 = off).
    #[serde(default = "default_one")]
    pub top_p: f32,
}

fn default_beams() -> usize {
    5
}
fn default_repetition_penalty() -> f32 {
    3.0
}
fn default_one() -> f32 {
    1.0
}
fn default_top_k() -> usize {
    50
}

impl Default for Decoding {
    fn default() -> Self {
        Decoding {
            beams: default_beams(),
            repetition_penalty: default_repetition_penalty(),
            length_penalty: default_one(),
            early_stopping: false,
            no_repeat_ngram_size: 0,
            sample: false,
            temperature: default_one(),
            top_k: default_top_k(),
            top_p: default_one(),
        }
    }
}

/// How many tokens to write per prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Length {
    /// `max_new_tokens`.
    pub new_tokens: usize,
    /// `min_new_tokens`: EOS is impossible before this many.
    pub min_new_tokens: usize,
}

impl Decoding {
    /// The [`GenerationConfig`] for step `step` (for its messages), with OPT's
    /// special ids (eos 2, pad 1); `seed` seeds sampling.
    pub fn config(
        &self,
        step: &str,
        length: Length,
        seed: u64,
    ) -> Result<GenerationConfig, StepError> {
        let strategy = match (self.sample, self.beams) {
            (_, 0) => {
                return Err(StepError::Invalid(format!(
                    "step `{step}`: beams must be at least 1"
                )));
            }
            (true, b) if b > 1 => {
                return Err(StepError::Invalid(format!(
                    "step `{step}`: sampling with beams = {b} (beam sampling) is not implemented; set beams = 1"
                )));
            }
            (true, _) => Strategy::Sample {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                seed,
            },
            (false, 1) => Strategy::Greedy,
            (false, num_beams) => Strategy::Beam {
                num_beams,
                length_penalty: self.length_penalty,
                early_stopping: self.early_stopping,
            },
        };
        let config = GenerationConfig {
            strategy,
            max_new_tokens: length.new_tokens,
            min_new_tokens: length.min_new_tokens,
            repetition_penalty: self.repetition_penalty,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            eos_token_id: Some(2),
            pad_token_id: 1,
        };
        config.validate().map_err(|e| generation_error(step, e))?;
        Ok(config)
    }
}

/// A generation error as a step error: model errors keep their type.
pub(crate) fn generation_error(step: &str, e: GenerateError) -> StepError {
    match e {
        GenerateError::Model(m) => StepError::Model(m),
        other => StepError::Invalid(format!("step `{step}`: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LENGTH: Length = Length {
        new_tokens: 8,
        min_new_tokens: 8,
    };

    #[test]
    fn defaults_are_the_papers_beam_search() {
        let config = Decoding::default().config("s", LENGTH, 0).unwrap();
        assert_eq!(
            config.strategy,
            Strategy::Beam {
                num_beams: 5,
                length_penalty: 1.0,
                early_stopping: false
            }
        );
        assert_eq!(config.repetition_penalty, 3.0);
        assert_eq!((config.max_new_tokens, config.min_new_tokens), (8, 8));
    }

    #[test]
    fn beams_choose_the_strategy() {
        let greedy = Decoding {
            beams: 1,
            ..Decoding::default()
        };
        assert_eq!(
            greedy.config("s", LENGTH, 0).unwrap().strategy,
            Strategy::Greedy
        );
        let sample = Decoding {
            beams: 1,
            sample: true,
            ..Decoding::default()
        };
        assert!(matches!(
            sample.config("s", LENGTH, 7).unwrap().strategy,
            Strategy::Sample {
                seed: 7,
                top_k: 50,
                ..
            }
        ));
        let beam_sampling = Decoding {
            sample: true,
            ..Decoding::default()
        };
        assert!(beam_sampling.config("s", LENGTH, 0).is_err());
        let none = Decoding {
            beams: 0,
            ..Decoding::default()
        };
        assert!(none.config("s", LENGTH, 0).is_err());
    }
}

#[cfg(test)]
mod flatten_tests {
    use crate::steps::{prompts, synthesize};

    /// Flattened, the decoding parameters are written in the step's table as before
    /// (`beams = 5`, not `decoding.beams`), and serialise as before, so the keys of
    /// existing `synthesize` and `prompts` steps are unchanged.
    #[test]
    fn decoding_parameters_stay_top_level_keys() {
        let p: synthesize::Params = serde_json::from_value(
            serde_json::json!({"model": "m", "prompts": "p.blocks", "beams": 1, "sample": true}),
        )
        .unwrap();
        assert_eq!((p.decoding.beams, p.decoding.sample), (1, true));
        let value = serde_json::to_value(&p).unwrap();
        assert!(value.get("decoding").is_none());
        for key in [
            "beams",
            "repetition_penalty",
            "length_penalty",
            "early_stopping",
        ] {
            assert!(value.get(key).is_some(), "{key}");
        }
        assert_eq!(value["top_k"], 50);
        assert_eq!(value["new_tokens"], 64);
        let p: prompts::Params = serde_json::from_value(serde_json::json!({"model": "m"})).unwrap();
        let value = serde_json::to_value(&p).unwrap();
        assert_eq!(value["beams"], 5);
        assert_eq!(value["new_tokens"], 32);
        // An unknown key is still an error.
        let unknown = serde_json::from_value::<prompts::Params>(
            serde_json::json!({"model": "m", "beamz": 2}),
        );
        assert!(unknown.is_err());
    }
}
