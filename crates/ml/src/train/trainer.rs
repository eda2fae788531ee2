//! The training loop: epochs of shuffled batches, micro-batch accumulation, one AdamW
//! update per batch, validation and a checkpoint after every epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::backend::{XpAutodiffBackend, XpBackend};
use burn::module::AutodiffModule;
use burn::tensor::ElementConversion;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::adamw::{AdamW, AdamWConfig, Gradients};
use super::batches::{batch_ids, epoch_order, epoch_seed, steps_per_epoch};
use super::checkpoint::{self, TrainState, checkpoint_model_dir};
use super::schedule::cosine_lr;
use crate::data::Blocks;
use crate::model::score::{CorpusPerplexity, causal_lm_loss, perplexity, sequence_scores};
use crate::model::{Opt, OptConfig, load_pretrained};

/// Which epoch's weights become the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The epoch with the lowest validation loss (the seed paper).
    Best,
    /// The last epoch (what the authors' code generated from).
    Last,
}

/// Everything the loop needs besides the data.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub micro_batch: usize,
    pub lr: f64,
    pub eta_min: f64,
    pub t_max: usize,
    pub adamw: AdamWConfig,
    pub clip_norm: Option<f64>,
    pub select: Select,
    pub shuffle: bool,
    pub seed: u64,
}

/// Progress reports from the loop.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// After each optimizer step.
    Step {
        epoch: usize,
        step: u64,
        total_steps: u64,
        loss: f64,
        /// This optimizer step's own time (not validation's or a checkpoint's).
        seconds: f64,
        tokens_per_s: f64,
        eta_s: f64,
    },
    /// After validation and the checkpoint of an epoch.
    Epoch {
        epoch: usize,
        valid_loss: f64,
        checkpoint: PathBuf,
    },
    /// Training continues from a checkpoint.
    Resumed { epoch: usize },
}

/// The outcome: where the selected weights are and the key figures.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub selected_epoch: usize,
    /// The selected checkpoint's model directory (config.json, model.safetensors).
    pub selected_model_dir: PathBuf,
    pub state: TrainState,
}

impl TrainReport {
    pub fn best_epoch(&self) -> usize {
        self.state.best_epoch().unwrap_or(self.selected_epoch)
    }
    pub fn best_valid_loss(&self) -> f64 {
        self.state.valid_losses[self.best_epoch() - 1]
    }
    pub fn tokens_per_s(&self) -> f64 {
        if self.state.train_seconds > 0.0 {
            self.state.train_tokens as f64 / self.state.train_seconds
        } else {
            0.0
        }
    }
}

fn check(
    settings: &TrainSettings,
    train: &Blocks,
    valid: &Blocks,
    config: &OptConfig,
) -> Result<(), TrainError> {
    let invalid = |m: String| Err(TrainError::Invalid(m));
    if settings.epochs == 0 || settings.batch_size == 0 || settings.micro_batch == 0 {
        return invalid("epochs, batch_size and micro_batch must be at least 1".into());
    }
    if train.is_empty() || valid.is_empty() {
        return invalid(format!(
            "the train set has {} blocks and the validation set {}; both need at least one",
            train.len(),
            valid.len()
        ));
    }
    for (name, blocks) in [("train", train), ("validation", valid)] {
        if blocks.block_size() < 2 {
            return invalid(format!("{name} blocks have 1 token: nothing to predict"));
        }
        if blocks.block_size() > config.max_position_embeddings {
            return invalid(format!(
                "{name} blocks have {} tokens, the model takes at most {}",
                blocks.block_size(),
                config.max_position_embeddings
            ));
        }
        if let Some(max) = blocks.max_id()
            && max as usize >= config.vocab_size
        {
            return invalid(format!(
                "{name} blocks hold token id {max}, the model's vocabulary has {} entries: \
                 tokenize with the model's tokenizer",
                config.vocab_size
            ));
        }
    }
    if !(settings.lr.is_finite() && settings.lr > 0.0) {
        return invalid(format!("lr = {} must be positive", settings.lr));
    }
    Ok(())
}

/// Trains the model in `model_dir` on `train`, validating on `valid` after every epoch,
/// with checkpoints in `scratch` (resumes from the latest one found there).
pub fn train<B: XpAutodiffBackend>(
    device: &B::Device,
    model_dir: &Path,
    train: &Blocks,
    valid: &Blocks,
    settings: &TrainSettings,
    scratch: &Path,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<TrainReport, TrainError> {
    std::fs::create_dir_all(scratch).map_err(|source| TrainError::Io {
        path: scratch.to_path_buf(),
        source,
    })?;
    let mut adamw = AdamW::<B::InnerBackend>::new(settings.adamw);
    let resumed = checkpoint::load_latest(scratch, &mut adamw)?;
    let (mut model, config, mut state) = match resumed {
        Some(state) => {
            let (model, config) =
                load_pretrained::<B>(&checkpoint_model_dir(scratch, state.epoch), device)?;
            on_event(TrainEvent::Resumed { epoch: state.epoch });
            (model, config, state)
        }
        None => {
            let (model, config) = load_pretrained::<B>(model_dir, device)?;
            let state = TrainState {
                epoch: 0,
                steps: 0,
                valid_losses: Vec::new(),
                last_train_loss: f64::NAN,
                train_tokens: 0,
                train_seconds: 0.0,
                metrics: Vec::new(),
            };
            (model, config, state)
        }
    };
    check(settings, train, valid, &config)?;

    let per_epoch = steps_per_epoch(train.len(), settings.batch_size) as u64;
    let total_steps = per_epoch * settings.epochs as u64;
    let tokens_per_block = train.block_size() as u64;
    let run_start_steps = state.steps;
    let run_start = Instant::now();

    for epoch in state.epoch..settings.epochs {
        let epoch1 = epoch + 1;
        // Dropout masks and the shuffle depend only on (seed, epoch): a resumed run
        // draws exactly what an uninterrupted one does.
        B::seed(device, epoch_seed(settings.seed, epoch, 2));
        let lr = cosine_lr(settings.lr, settings.eta_min, settings.t_max, epoch);
        let order = epoch_order(train.len(), settings.seed, epoch, settings.shuffle);
        for (batch_index, batch) in order.chunks(settings.batch_size).enumerate() {
            let started = Instant::now();
            let step = state.steps + 1;
            let mut grads = Gradients::<B::InnerBackend>::default();
            let mut loss_value = 0.0f64;
            for micro in batch.chunks(settings.micro_batch) {
                let ids = batch_ids::<B>(train, micro, device); // [micro, block]
                let logits = model.forward(ids.clone(), None, None)?; // [micro, block, vocab]
                let loss = causal_lm_loss(logits, ids, None)?; // [1], mean over micro × (block-1)
                // Each micro-batch's share of the batch mean (1.0 when unsplit).
                let loss = if micro.len() == batch.len() {
                    loss
                } else {
                    loss.mul_scalar(micro.len() as f64 / batch.len() as f64)
                };
                let value: f64 = loss.clone().into_scalar().elem();
                if !value.is_finite() {
                    return Err(TrainError::NonFinite {
                        what: "training",
                        epoch: epoch1,
                        step,
                        batch: batch_index + 1,
                        loss: value,
                    });
                }
                loss_value += value;
                let g = loss.backward();
                grads.accumulate::<B, _>(&model, &g);
            }
            if let Some(max_norm) = settings.clip_norm {
                grads.clip_by_global_norm(max_norm);
            }
            model = adamw.step::<B, _>(lr, model, grads);
            state.steps = step;
            state.last_train_loss = loss_value;
            let seconds = started.elapsed().as_secs_f64();
            let tokens = batch.len() as u64 * tokens_per_block;
            state.train_tokens += tokens;
            state.train_seconds += seconds;
            let tokens_per_s = tokens as f64 / seconds.max(1e-9);
            state.metrics.push(
                serde_json::json!({"type": "train", "epoch": epoch1, "step": step,
                    "loss": loss_value, "lr": lr, "tokens_per_s": tokens_per_s})
                .to_string(),
            );
            let done_here = (step - run_start_steps) as f64;
            let eta_s = run_start.elapsed().as_secs_f64() / done_here
                * (total_steps.saturating_sub(step)) as f64;
            on_event(TrainEvent::Step {
                epoch: epoch1,
                step,
                total_steps,
                loss: loss_value,
                seconds,
                tokens_per_s,
                eta_s,
            });
        }

        let valid_loss = validate(&model.valid(), valid, settings.micro_batch, device)?;
        if !valid_loss.is_finite() {
            return Err(TrainError::NonFinite {
                what: "validation",
                epoch: epoch1,
                step: state.steps,
                batch: 0,
                loss: valid_loss,
            });
        }
        state.valid_losses.push(valid_loss);
        state.metrics.push(
            serde_json::json!({"type": "valid", "epoch": epoch1, "loss": valid_loss,
                "perplexity": perplexity(valid_loss)})
            .to_string(),
        );
        state.epoch = epoch1;
        checkpoint::save(scratch, &model, &config, &adamw, &state)?;
        on_event(TrainEvent::Epoch {
            epoch: epoch1,
            valid_loss,
            checkpoint: checkpoint::checkpoint_dir(scratch, epoch1),
        });
    }

    let selected_epoch = match settings.select {
        Select::Best => state.best_epoch().unwrap_or(state.epoch),
        Select::Last => state.epoch,
    };
    Ok(TrainReport {
        selected_epoch,
        selected_model_dir: checkpoint_model_dir(scratch, selected_epoch),
        state,
    })
}

/// Token-weighted mean loss over `blocks`, in chunks of `batch` (no dropout, no graph).
pub fn validate<B: XpBackend>(
    model: &Opt<B>,
    blocks: &Blocks,
    batch: usize,
    device: &B::Device,
) -> Result<f64, TrainError> {
    let mut corpus = CorpusPerplexity::default();
    let indices: Vec<usize> = (0..blocks.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let ids = batch_ids::<B>(blocks, chunk, device); // [chunk, block]
        corpus.add(&sequence_scores(model, ids, None)?);
    }
    Ok(corpus.mean_loss())
}
