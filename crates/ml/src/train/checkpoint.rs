//! Resume checkpoints in the step's scratch directory, one per finished epoch:
//!
//! ```text
//! scratch/ckpt-E/model/{config.json, model.safetensors}   weights after epoch E
//! scratch/ckpt-E/optimizer.safetensors                     AdamW moments m.i, v.i (f32)
//! scratch/ckpt-E/state.json                                position, best, metrics so far
//! scratch/LATEST                                           "E", replaced atomically
//! ```
//!
//! A checkpoint is written under `ckpt-E.tmp` and renamed, then LATEST is replaced, then
//! older checkpoints are removed except the best one (kept for `select = "best"`).
//! The RNG needs no state: shuffles and dropout are reseeded from (seed, epoch).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use crate::backend::XpBackend;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::adamw::{AdamW, SavedMoments, export_moments, import_moments};
use crate::model::{Opt, OptConfig, save_pretrained};

/// Where training stands after an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished (counting from 1).
    pub epoch: usize,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Mean validation loss per finished epoch.
    pub valid_losses: Vec<f64>,
    /// The last optimizer step's training loss.
    pub last_train_loss: f64,
    /// Training tokens and seconds spent on them (for the mean tokens/s).
    pub train_tokens: u64,
    pub train_seconds: f64,
    /// metrics.jsonl lines written so far.
    pub metrics: Vec<String>,
}

impl TrainState {
    /// The epoch (from 1) with the lowest validation loss; ties go to the earlier one.
    pub fn best_epoch(&self) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, &loss) in self.valid_losses.iter().enumerate() {
            if best.is_none_or(|(_, b)| loss < b) {
                best = Some((i + 1, loss));
            }
        }
        best.map(|(e, _)| e)
    }
}

/// The checkpoint directory of epoch `epoch`.
pub fn checkpoint_dir(scratch: &Path, epoch: usize) -> PathBuf {
    scratch.join(format!("ckpt-{epoch}"))
}

/// The model directory inside a checkpoint.
pub fn checkpoint_model_dir(scratch: &Path, epoch: usize) -> PathBuf {
    checkpoint_dir(scratch, epoch).join("model")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes the checkpoint of `state.epoch` and makes it the latest.
pub fn save<B: Backend, IB: XpBackend>(
    scratch: &Path,
    model: &Opt<B>,
    config: &OptConfig,
    adamw: &AdamW<IB>,
    state: &TrainState,
) -> Result<(), TrainError> {
    let final_dir = checkpoint_dir(scratch, state.epoch);
    let tmp = scratch.join(format!("ckpt-{}.tmp", state.epoch));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    save_pretrained(model, config, &tmp.join("model"), None)?;
    write_moments(&tmp.join("optimizer.safetensors"), adamw)?;
    let state_path = tmp.join("state.json");
    let text = serde_json::to_string(state).map_err(|e| bad(&state_path, e.to_string()))?;
    std::fs::write(&state_path, text).map_err(io(&state_path))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;

    let latest = scratch.join("LATEST");
    let latest_tmp = scratch.join("LATEST.tmp");
    std::fs::write(&latest_tmp, state.epoch.to_string()).map_err(io(&latest_tmp))?;
    std::fs::rename(&latest_tmp, &latest).map_err(io(&latest))?;

    // Keep the latest and the best; the others are no longer needed.
    let keep = [Some(state.epoch), state.best_epoch()];
    for epoch in 1..state.epoch {
        let dir = checkpoint_dir(scratch, epoch);
        if !keep.contains(&Some(epoch)) && dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
    }
    Ok(())
}

/// The latest checkpoint's state and optimizer, if a checkpoint exists.
/// The model is loaded by the caller from [`checkpoint_model_dir`].
pub fn load_latest<IB: Backend>(
    scratch: &Path,
    adamw: &mut AdamW<IB>,
) -> Result<Option<TrainState>, TrainError> {
    let latest = scratch.join("LATEST");
    if !latest.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&latest).map_err(io(&latest))?;
    let epoch: usize = text
        .trim()
        .parse()
        .map_err(|_| bad(&latest, format!("expected an epoch number, found {text:?}")))?;
    let dir = checkpoint_dir(scratch, epoch);
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: TrainState =
        serde_json::from_str(&text).map_err(|e| bad(&state_path, e.to_string()))?;
    let (steps, moments) = read_moments(&dir.join("optimizer.safetensors"))?;
    adamw.steps = steps;
    adamw.moments = import_moments(moments);
    Ok(Some(state))
}

fn write_moments<B: XpBackend>(path: &Path, adamw: &AdamW<B>) -> Result<(), TrainError> {
    let moments = export_moments(adamw);
    let mut named: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (i, slot) in moments.iter().enumerate() {
        if let Some((m, v)) = slot {
            for (name, data) in [("m", m), ("v", v)] {
                let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
                named.push((format!("{name}.{i}"), bytes, data.len()));
            }
        }
    }
    let mut views = Vec::with_capacity(named.len());
    for (name, bytes, n) in &named {
        let view =
            TensorView::new(Dtype::F32, vec![*n], bytes).map_err(|e| bad(path, e.to_string()))?;
        views.push((name.clone(), view));
    }
    let metadata = HashMap::from([
        ("steps".to_string(), adamw.steps.to_string()),
        ("parameters".to_string(), moments.len().to_string()),
    ]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| bad(path, e.to_string()))
}

fn read_moments(path: &Path) -> Result<(u64, SavedMoments), TrainError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, e.to_string()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let number = |key: &str| -> Result<u64, TrainError> {
        meta.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad(path, format!("metadata `{key}` is missing")))
    };
    let steps = number("steps")?;
    let count = number("parameters")? as usize;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(path, e.to_string()))?;
    let read = |name: String| -> Result<Option<Vec<f32>>, TrainError> {
        match tensors.tensor(&name) {
            Ok(view) => Ok(Some(
                view.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )),
            Err(_) => Ok(None),
        }
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        match (read(format!("m.{i}"))?, read(format!("v.{i}"))?) {
            (Some(m), Some(v)) => out.push(Some((m, v))),
            (None, None) => out.push(None),
            _ => return Err(bad(path, format!("parameter {i} has only one moment"))),
        }
    }
    Ok((steps, out))
}
