//! Writing an HF-compatible model directory that transformers' `from_pretrained` opens:
//! `config.json`, `model.safetensors` (f32, HF key names as `OPTForCausalLM` writes
//! them, no `lm_head.weight` since it is tied) and the tokenizer files.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use safetensors::{Dtype, tensor::TensorView};

use super::config::OptConfig;
use super::error::ModelError;
use super::opt::Opt;

/// Tokenizer files copied from the tokenizer directory when present.
pub const TOKENIZER_FILES: [&str; 6] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
];

/// Writes `dir/config.json`, `dir/model.safetensors` and, from `tokenizer_dir`, the
/// tokenizer files it has (see [`TOKENIZER_FILES`]). Creates `dir` if needed and
/// overwrites these files; nothing else in `dir` is touched.
pub fn save_pretrained<B: Backend>(
    model: &Opt<B>,
    config: &OptConfig,
    dir: &Path,
    tokenizer_dir: Option<&Path>,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_hf_json() + "\n")
        .map_err(|e| ModelError::io(&config_path, e))?;

    let tensors = model.export();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let weights_path = dir.join("model.safetensors");
    let write_err = |reason: String| ModelError::SafetensorsWrite {
        path: weights_path.clone(),
        reason,
    };
    let mut views = Vec::with_capacity(tensors.len());
    for (t, b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), b)
            .map_err(|e| write_err(e.to_string()))?;
        // `OPTForCausalLM` keeps the decoder under `model.`; its loader accepts both.
        views.push((format!("model.{}", t.key), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), &weights_path)
        .map_err(|e| write_err(e.to_string()))?;

    if let Some(tok) = tokenizer_dir {
        for name in TOKENIZER_FILES {
            let from = tok.join(name);
            if from.is_file() {
                std::fs::copy(&from, dir.join(name)).map_err(|e| ModelError::io(&from, e))?;
            }
        }
    }
    Ok(())
}
