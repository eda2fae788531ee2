//! `finetune`: trains an OPT model on token blocks with the authors' protocol
//! (PARITY.md, "Fine-tuning"): AdamW (torch's formula and defaults), a cosine
//! schedule stepped per epoch, seeded shuffles, validation after every epoch, and
//! the checkpoint with the lowest validation loss as output. Checkpoints in the
//! step's scratch directory let a killed run resume with identical results.

use std::path::Path;

use crate::artifacts::TrainingMetrics;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::{InputRef, KindParams, ResourceHint};
use crate::data::{Blocks, read_blocks};
use crate::model::TOKENIZER_FILES;
use crate::model::score::perplexity;
use crate::train::{AdamWConfig, Select, TrainError, TrainEvent, TrainReport, TrainSettings};
use crate::work::train_model;

/// Trains an OPT model on token blocks with the authors' protocol: AdamW as torch's, a
/// cosine schedule per epoch, seeded shuffles, validation every epoch, the best (or
/// last) checkpoint; resumes after a crash.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The model to train: an HF model directory (a source, another step's `model`
    /// output, or `init.model`).
    pub model: InputRef,
    /// Training blocks (e.g. `blocks.train` or a synthetic generation).
    pub train: InputRef,
    /// Validation blocks: the loss after each epoch selects the output.
    pub valid: InputRef,
    /// Passes over the training blocks.
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Blocks per optimizer step.
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// Blocks per forward/backward pass; gradients of `batch / micro_batch` passes are
    /// summed into one update, the same update as the full batch with less memory.
    /// Also the validation batch size. Default: `batch`.
    #[serde(default)]
    pub micro_batch: Option<usize>,
    /// AdamW learning rate of the first epoch.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// The cosine schedule's floor (`eta_min`).
    #[serde(default = "d_lr_min")]
    pub lr_min: f64,
    /// The cosine schedule's period in epochs (`T_max`). Default: `epochs`.
    #[serde(default)]
    pub t_max: Option<usize>,
    /// AdamW beta1.
    #[serde(default = "d_beta1")]
    pub beta1: f64,
    /// AdamW beta2.
    #[serde(default = "d_beta2")]
    pub beta2: f64,
    /// AdamW epsilon.
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// AdamW decoupled weight decay, applied to every parameter.
    #[serde(default = "d_weight_decay")]
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm (torch's `clip_grad_norm_`); none by default.
    #[serde(default)]
    pub clip_norm: Option<f64>,
    /// Shuffle the training blocks each epoch (seeded by the experiment seed).
    #[serde(default = "d_true")]
    pub shuffle: bool,
    /// Which epoch's weights to publish: `best` (lowest validation loss) or `last`.
    #[serde(default = "d_select")]
    pub select: Select,
}

fn d_epochs() -> usize {
    5
}
fn d_batch() -> usize {
    128
}
fn d_lr() -> f64 {
    2e-5
}
fn d_lr_min() -> f64 {
    1e-6
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_weight_decay() -> f64 {
    0.01
}
fn d_true() -> bool {
    true
}
fn d_select() -> Select {
    Select::Best
}

impl KindParams for Params {
    const KIND: &'static str = "finetune";
    /// 2: on the CPU the loss and its gradient are one fused operation
    /// (model/host_loss.rs), which rounds differently in the last bits.
    const VERSION: u32 = 2;
    const USES_SEED: bool = true;
    const USES_PRECISION: bool = true; // trains a model
    const RESOURCES: ResourceHint = ResourceHint::MODEL;
    const WORK_PARAMS: &'static [&'static str] = &["epochs"];
    input_slots!(model, train, valid);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![
            ("model".into(), "model".into()),
            ("metrics".into(), TrainingMetrics::FILE_NAME.into()),
        ]
    }
}

impl Params {
    fn settings(&self, seed: u64) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            batch_size: self.batch,
            micro_batch: self
                .micro_batch
                .unwrap_or(self.batch)
                .min(self.batch.max(1)),
            lr: self.lr,
            eta_min: self.lr_min,
            t_max: self.t_max.unwrap_or(self.epochs),
            adamw: AdamWConfig {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
            },
            clip_norm: self.clip_norm,
            select: self.select,
            shuffle: self.shuffle,
            seed,
        }
    }
}

/// Trains on `target` with progress: a bar over steps, a line per checkpoint.
fn train_with_progress(
    ctx: &StepContext<'_>,
    settings: &TrainSettings,
    model_dir: &Path,
    train_blocks: &Blocks,
    valid_blocks: &Blocks,
) -> Result<TrainReport, StepError> {
    let epochs = settings.epochs;
    let mut on_event = |event: TrainEvent| match event {
        TrainEvent::Step {
            epoch,
            step,
            total_steps,
            loss,
            seconds,
            tokens_per_s,
            eta_s,
        } => {
            ctx.work.unit_took("training steps", seconds);
            ctx.progress(
                step,
                Some(total_steps),
                "steps",
                format!(
                    "epoch {epoch}/{epochs} loss {loss:.4} {tokens_per_s:.0} tok/s ETA {eta_s:.0}s"
                ),
            )
        }
        TrainEvent::Epoch {
            epoch, valid_loss, ..
        } => ctx.progress(
            epoch as u64,
            Some(epochs as u64),
            "epochs",
            format!("checkpoint epoch {epoch} written (validation loss {valid_loss:.4})"),
        ),
        TrainEvent::Resumed { epoch } => ctx.progress(
            epoch as u64,
            Some(epochs as u64),
            "epochs",
            format!("resumed from the epoch {epoch} checkpoint"),
        ),
    };
    train_model(
        ctx.target()?,
        model_dir,
        train_blocks,
        valid_blocks,
        settings,
        ctx.scratch_dir,
        &mut on_event,
    )?
    .map_err(|e| step_error(ctx.step, e))
}

fn step_error(step: &str, err: TrainError) -> StepError {
    match err {
        TrainError::Io { path, source } => StepError::Io { path, source },
        TrainError::Model(e) => StepError::Model(e),
        other => StepError::Invalid(format!("step `{step}`: {other}")),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), StepError> {
    std::fs::copy(from, to).map_err(StepError::io(from))?;
    Ok(())
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    let model_dir = &ctx.input("model")?.path;
    let train_blocks = read_blocks(&ctx.input("train")?.path)?;
    let valid_blocks = read_blocks(&ctx.input("valid")?.path)?;
    let settings = p.settings(ctx.seed);
    let report = train_with_progress(ctx, &settings, model_dir, &train_blocks, &valid_blocks)?;

    // The selected weights; config.json and the tokenizer files as the input had them.
    let out = ctx.out_path("model");
    std::fs::create_dir_all(&out).map_err(StepError::io(&out))?;
    copy(
        &report.selected_model_dir.join("model.safetensors"),
        &out.join("model.safetensors"),
    )?;
    let input_config = model_dir.join("config.json");
    if input_config.is_file() {
        copy(&input_config, &out.join("config.json"))?;
    } else {
        copy(
            &report.selected_model_dir.join("config.json"),
            &out.join("config.json"),
        )?;
    }
    for name in TOKENIZER_FILES {
        let from = model_dir.join(name);
        if from.is_file() {
            copy(&from, &out.join(name))?;
        }
    }
    // The trainer keeps its lines as text (they live in its resumable state);
    // parsing them here holds them to the artifact's type before they are written.
    let metrics_path = ctx.out_path(TrainingMetrics::FILE_NAME);
    let text: String = report
        .state
        .metrics
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    TrainingMetrics::parse(&text, &metrics_path)?.write(&metrics_path)?;

    let best_loss = report.best_valid_loss();
    Ok(StepOutcome {
        metrics: serde_json::json!({
            "best_epoch": report.best_epoch(),
            "best_valid_loss": best_loss,
            "best_valid_perplexity": perplexity(best_loss),
            "selected_epoch": report.selected_epoch,
            "final_train_loss": report.state.last_train_loss,
            "epochs": report.state.epoch,
            "tokens_per_s": report.tokens_per_s(),
        }),
    })
}
