//! Training an OPT model on token blocks with the authors' protocol (PARITY.md,
//! "Fine-tuning"): AdamW with torch's formula, a per-epoch cosine schedule, seeded
//! shuffles, gradient accumulation over micro-batches, optional clipping, per-epoch
//! validation and resume checkpoints.

pub mod adamw;
pub mod batches;
pub mod checkpoint;
pub mod schedule;
mod trainer;

use std::path::PathBuf;

pub use adamw::{AdamW, AdamWConfig, Gradients};
pub use checkpoint::TrainState;
pub use trainer::{Select, TrainEvent, TrainReport, TrainSettings, train};

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// The loss became NaN or infinite; nothing is published.
    #[error(
        "the {what} loss is {loss} at epoch {epoch}, optimizer step {step} (batch {batch} of the epoch); \
         lower the learning rate or enable clipping (`clip_norm`)"
    )]
    NonFinite {
        what: &'static str,
        epoch: usize,
        step: u64,
        batch: usize,
        loss: f64,
    },
    /// A checkpoint in the scratch directory cannot be read; delete it to start over.
    #[error("checkpoint {path}: {reason} (delete the directory to start the step over)")]
    Checkpoint { path: PathBuf, reason: String },
    /// Settings or data that cannot be trained on; the message says what to change.
    #[error("{0}")]
    Invalid(String),
}
