//! Multinomial sampling: processors, then transformers' warpers in its order
//! (temperature → top-k → top-p), softmax, one draw per row. Each prompt has its own
//! ChaCha8 stream seeded from (`seed`, the prompt's index in the whole job), so the
//! tokens do not depend on how prompts are batched. (The draws cannot match torch's
//! RNG; reproducibility is within xp.)

use crate::backend::XpBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::greedy::one_path_per_row;
use super::processors::{Temperature, TopK, TopP, softmax};
use super::{GenerateError, GenerationConfig};
use crate::model::Opt;

/// The sampling-specific settings of [`super::Strategy::Sample`].
#[derive(Clone, Copy, Debug)]
pub struct SampleSettings {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub seed: u64,
    /// Index of the first prompt in the whole job (seeds stay per prompt).
    pub first_index: u64,
}

/// The random stream of prompt `index` under `seed`.
pub fn prompt_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&index.to_le_bytes());
    key[16..24].copy_from_slice(b"xp-sampl");
    ChaCha8Rng::from_seed(key)
}

/// Sampling over `prompts`; the new tokens per prompt (up to and including EOS).
pub fn sample<B: XpBackend>(
    model: &Opt<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    settings: SampleSettings,
    device: &B::Device,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    let mut processors = config.processors();
    if settings.temperature != 1.0 {
        processors.push(Temperature {
            temperature: settings.temperature,
        });
    }
    if settings.top_k > 0 {
        processors.push(TopK { k: settings.top_k });
    }
    if settings.top_p < 1.0 {
        processors.push(TopP { p: settings.top_p });
    }
    let mut rngs: Vec<ChaCha8Rng> = (0..prompts.len() as u64)
        .map(|i| prompt_rng(settings.seed, settings.first_index + i))
        .collect();
    one_path_per_row(model, prompts, config, &processors, device, |r, scores| {
        draw(&softmax(scores), &mut rngs[r])
    })
}

/// One draw from `probs` by inverse CDF; the last token with mass if rounding leaves
/// the draw past the total.
fn draw(probs: &[f32], rng: &mut ChaCha8Rng) -> u32 {
    let u: f32 = rng.random::<f32>();
    let mut cumulative = 0.0f32;
    let mut last = 0usize;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last = i;
            cumulative += p;
            if u < cumulative {
                return i as u32;
            }
        }
    }
    last as u32
}
