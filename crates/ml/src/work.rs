//! The ML work the runner's steps ask for, as plain functions of a [`Target`]: load a
//! model to score or continue token blocks, train one, initialise one.
//!
//! Each picks the backend at run time ([`crate::backend::dispatch`]) and returns
//! something that no longer names it (a boxed [`LoadedModel`], a report, a count),
//! so every backend-generic instance of the model code is compiled in this crate,
//! once, and the runner compiles none. A step's progress reaches it through the
//! callbacks, never through a backend type.

use std::path::Path;

use crate::backend::{BackendError, BackendTask, Target, XpAutodiffBackend, XpBackend, dispatch};
use crate::data::Blocks;
use crate::eval::{EvalError, SetPerplexity, score_blocks};
use crate::generate::{GenerateError, GenerationConfig, generate};
use crate::model::{ModelError, Opt, OptConfig, load_pretrained, save_pretrained};
use crate::train::{TrainError, TrainEvent, TrainReport, TrainSettings, train};

/// A model loaded on the target's device for inference (no autodiff, no dropout).
pub trait LoadedModel: Send {
    /// The model's configuration (`config.json`).
    fn config(&self) -> &OptConfig;

    /// Perplexity of every block ([`crate::eval::score_blocks`]); `on_batch` gets the
    /// number of blocks scored so far after every forward batch.
    fn score_blocks(
        &self,
        blocks: &Blocks,
        forward_batch: usize,
        batch_size: usize,
        on_batch: &mut (dyn FnMut(usize) + Send),
    ) -> Result<SetPerplexity, EvalError>;

    /// Continues every prompt ([`crate::generate::generate`]); `first_index` is the
    /// position of the first prompt among all the prompts of a run (sampling seeds
    /// follow it).
    fn generate(
        &self,
        prompts: &[Vec<u32>],
        config: &GenerationConfig,
        first_index: u64,
    ) -> Result<Vec<Vec<u32>>, GenerateError>;
}

struct Loaded<B: XpBackend> {
    model: Opt<B>,
    config: OptConfig,
    device: B::Device,
}

impl<B: XpBackend> LoadedModel for Loaded<B> {
    fn config(&self) -> &OptConfig {
        &self.config
    }

    fn score_blocks(
        &self,
        blocks: &Blocks,
        forward_batch: usize,
        batch_size: usize,
        on_batch: &mut (dyn FnMut(usize) + Send),
    ) -> Result<SetPerplexity, EvalError> {
        B::run_on_compute_thread(|| {
            score_blocks(
                &self.model,
                &self.config,
                blocks,
                forward_batch,
                batch_size,
                &self.device,
                on_batch,
            )
        })
    }

    fn generate(
        &self,
        prompts: &[Vec<u32>],
        config: &GenerationConfig,
        first_index: u64,
    ) -> Result<Vec<Vec<u32>>, GenerateError> {
        B::run_on_compute_thread(|| {
            generate(&self.model, prompts, config, first_index, &self.device)
        })
    }
}

/// Loads the HF model directory `dir` on `target` for inference.
pub fn load_model(
    target: Target,
    dir: &Path,
) -> Result<Result<Box<dyn LoadedModel>, ModelError>, BackendError> {
    struct Load<'a>(&'a Path);
    impl BackendTask for Load<'_> {
        type Output = Result<Box<dyn LoadedModel>, ModelError>;
        fn run<B: XpAutodiffBackend>(self, device: B::Device) -> Self::Output {
            let (model, config) = load_pretrained::<B::InnerBackend>(self.0, &device)?;
            Ok(Box::new(Loaded::<B::InnerBackend> {
                model,
                config,
                device,
            }))
        }
    }
    dispatch(target, Load(dir))
}

/// Trains the model in `model_dir` on `target` ([`crate::train::train`]): checkpoints
/// in `scratch`, progress through `on_event`.
pub fn train_model(
    target: Target,
    model_dir: &Path,
    train_blocks: &Blocks,
    valid_blocks: &Blocks,
    settings: &TrainSettings,
    scratch: &Path,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<Result<TrainReport, TrainError>, BackendError> {
    struct Train<'a> {
        model_dir: &'a Path,
        train: &'a Blocks,
        valid: &'a Blocks,
        settings: &'a TrainSettings,
        scratch: &'a Path,
        on_event: &'a mut (dyn FnMut(TrainEvent) + Send),
    }
    impl BackendTask for Train<'_> {
        type Output = Result<TrainReport, TrainError>;
        fn run<B: XpAutodiffBackend>(self, device: B::Device) -> Self::Output {
            train::<B>(
                &device,
                self.model_dir,
                self.train,
                self.valid,
                self.settings,
                self.scratch,
                self.on_event,
            )
        }
    }
    dispatch(
        target,
        Train {
            model_dir,
            train: train_blocks,
            valid: valid_blocks,
            settings,
            scratch,
            on_event,
        },
    )
}

/// A new model of `config` with weights drawn from the backend's generator seeded with
/// `seed`, saved as an HF model directory in `dir` with the tokenizer files of
/// `tokenizer_dir`. Returns its number of parameters.
pub fn init_model(
    target: Target,
    config: &OptConfig,
    seed: u64,
    dir: &Path,
    tokenizer_dir: &Path,
) -> Result<Result<usize, ModelError>, BackendError> {
    struct Init<'a> {
        config: &'a OptConfig,
        seed: u64,
        dir: &'a Path,
        tokenizer_dir: &'a Path,
    }
    impl BackendTask for Init<'_> {
        type Output = Result<usize, ModelError>;
        fn run<B: XpAutodiffBackend>(self, device: B::Device) -> Self::Output {
            B::seed(&device, self.seed);
            let model = Opt::<B::InnerBackend>::init(self.config, &device);
            save_pretrained(&model, self.config, self.dir, Some(self.tokenizer_dir))?;
            Ok(burn::module::Module::num_params(&model))
        }
    }
    dispatch(
        target,
        Init {
            config,
            seed,
            dir,
            tokenizer_dir,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendKind;

    /// A model made by `init_model` loads again, scores, and continues a prompt, all on
    /// the CPU target, through the functions the runner calls.
    #[test]
    fn an_initialised_model_loads_scores_and_generates() {
        let _rng = crate::backend::seeded_rng_lock();
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/data/opt-mini");
        let dir = tempfile::tempdir().unwrap();
        // Any vocabulary covering the ids below; the fixture's tokenizer files are
        // only copied next to the weights.
        let vocab = 64;
        let config = OptConfig::tiny(vocab, 16, 1, 2, 32, 32);
        let target = Target::new(BackendKind::Ndarray);
        let params = init_model(target, &config, 7, dir.path(), &fixture)
            .unwrap()
            .unwrap();
        assert!(params > vocab * 16, "{params} parameters");

        let model = load_model(target, dir.path()).unwrap().unwrap();
        assert_eq!(model.config().vocab_size, vocab);
        let blocks = Blocks::new(4, vec![2, 10, 11, 12, 2, 13, 14, 15]).unwrap();
        let mut seen = Vec::new();
        let ppl = model
            .score_blocks(&blocks, 1, 2, &mut |done| seen.push(done))
            .unwrap();
        assert_eq!(seen, [1, 2]);
        assert_eq!(ppl.per_sample_perplexity().len(), 2);
        assert!(ppl.per_sample_perplexity().iter().all(|p| p.is_finite()));

        let mut config = GenerationConfig::paper();
        config.max_new_tokens = 3;
        config.min_new_tokens = 3;
        config.strategy = crate::generate::Strategy::Beam {
            num_beams: 2,
            length_penalty: 1.0,
            early_stopping: false,
        };
        let out = model.generate(&[vec![2, 10, 11]], &config, 0).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 3);
    }
}
