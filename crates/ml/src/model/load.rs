//! Loading HF OPT checkpoints: `model.safetensors` or `pytorch_model.bin`, fp16/bf16/f32
//! upcast to f32, keys with or without the `model.` prefix, no `lm_head.weight`.
//!
//! The file's keys go through [`REMAP`] (one rule per line, each with its reason), then
//! the model is built from them by HF key ([`super::Opt::build`]); every key the config
//! needs that is missing or wrongly shaped, and every key left over, is listed in one
//! [`ModelError::KeyMismatch`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use super::config::OptConfig;
use super::error::{KeyReport, ModelError, ShapeMismatch};
use super::opt::Opt;
use super::params::{Init, ParamSource};

/// What a remap rule does with a key that starts with its pattern.
enum Rule {
    /// Replace the pattern prefix with this.
    Rename(&'static str),
    /// Ignore the tensor.
    Drop,
}

/// The remap table, applied to every key in the file; the first matching prefix wins,
/// keys matching no rule are used as they are (the hub's `decoder.*` names).
const REMAP: &[(&str, Rule)] = &[
    // `OPTForCausalLM.save_pretrained` nests the decoder under `model.`; the opt-125m hub
    // file (saved from `OPTModel`) has no prefix. Both name the same parameters.
    ("model.decoder.", Rule::Rename("decoder.")),
    // The LM head is tied to `decoder.embed_tokens.weight`; transformers omits it when
    // saving, older or converted files may still carry the (identical) copy.
    ("lm_head.weight", Rule::Drop),
];

/// The HF key a file key stands for, or `None` when the tensor is to be ignored.
fn remap(key: &str) -> Option<String> {
    for (pattern, rule) in REMAP {
        if let Some(rest) = key.strip_prefix(pattern) {
            return match rule {
                Rule::Rename(to) => Some(format!("{to}{rest}")),
                Rule::Drop => None,
            };
        }
    }
    Some(key.to_string())
}

/// One tensor read from a checkpoint, upcast to f32, in HF layout.
#[derive(Debug, Clone)]
pub(crate) struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The two weight files `load_pretrained` looks for, in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Loads `dir/config.json` and the weights (`model.safetensors`, else `pytorch_model.bin`).
pub fn load_pretrained<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(Opt<B>, OptConfig), ModelError> {
    let config = OptConfig::from_hf_json(&dir.join("config.json"))?;
    let weights = WEIGHT_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| ModelError::NoWeights {
            dir: dir.to_path_buf(),
        })?;
    let model = load_weights(&weights, &config, device)?;
    Ok((model, config))
}

/// Builds a model for `config` from one weight file (format chosen by its extension:
/// `.safetensors`, anything else is read as a PyTorch pickle/zip).
pub fn load_weights<B: Backend>(
    path: &Path,
    config: &OptConfig,
    device: &B::Device,
) -> Result<Opt<B>, ModelError> {
    let file_tensors = if path.extension().is_some_and(|e| e == "safetensors") {
        read_safetensors(path)?
    } else {
        read_pytorch(path)?
    };
    let mut tensors: HashMap<String, (String, RawTensor)> = HashMap::new();
    for (file_key, tensor) in file_tensors {
        let Some(key) = remap(&file_key) else {
            continue;
        };
        if let Some((first, _)) = tensors.get(&key) {
            return Err(ModelError::DuplicateKey {
                path: path.to_path_buf(),
                key,
                first: first.clone(),
                second: file_key,
            });
        }
        tensors.insert(key, (file_key, tensor));
    }
    let mut source = CheckpointSource::<B> {
        tensors,
        report: KeyReport::default(),
        device: device.clone(),
    };
    let model = Opt::build(&mut source, config);
    let mut report = source.report;
    report.unexpected = source.tensors.into_values().map(|(k, _)| k).collect();
    report.unexpected.sort();
    if report.is_clean() {
        Ok(model)
    } else {
        Err(ModelError::KeyMismatch {
            path: path.to_path_buf(),
            report,
        })
    }
}

/// Hands out checkpoint tensors by HF key, noting missing and wrongly-shaped ones
/// (those get zeros so the build can go on and every problem is found in one pass).
struct CheckpointSource<B: Backend> {
    /// HF key -> (key as written in the file, tensor); what is left at the end is unexpected.
    tensors: HashMap<String, (String, RawTensor)>,
    report: KeyReport,
    device: B::Device,
}

impl<B: Backend> ParamSource<B> for CheckpointSource<B> {
    fn tensor<const D: usize>(
        &mut self,
        key: &str,
        hf_shape: [usize; D],
        _init: Init,
        transpose: bool,
    ) -> Tensor<B, D> {
        let mut shape = hf_shape;
        if transpose {
            shape.reverse();
        }
        let Some((_, raw)) = self.tensors.remove(key) else {
            self.report.missing.push(key.to_string());
            return Tensor::zeros(shape, &self.device);
        };
        if raw.shape != hf_shape {
            self.report.wrong_shape.push(ShapeMismatch {
                key: key.to_string(),
                expected: hf_shape.to_vec(),
                found: raw.shape,
            });
            return Tensor::zeros(shape, &self.device);
        }
        let data = if transpose {
            transpose_2d(&raw.data, hf_shape[0], hf_shape[1])
        } else {
            raw.data
        };
        Tensor::from_data(TensorData::new(data, shape), &self.device)
    }

    fn device(&self) -> B::Device {
        self.device.clone()
    }
}

/// `[rows, cols]` row-major -> `[cols, rows]` row-major.
fn transpose_2d(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::CorruptWeights {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads every tensor of a safetensors file, upcast to f32.
pub(crate) fn read_safetensors(path: &Path) -> Result<Vec<(String, RawTensor)>, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e))?;
    let mut out = Vec::new();
    for (key, view) in file.iter() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            other => {
                return Err(ModelError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let shape = view.shape().to_vec();
        out.push((key.to_string(), RawTensor { shape, data }));
    }
    Ok(out)
}

/// Reads every tensor of a PyTorch `pytorch_model.bin` (zip or legacy pickle), upcast to f32.
pub(crate) fn read_pytorch(path: &Path) -> Result<Vec<(String, RawTensor)>, ModelError> {
    // burn-store's reader parses the pickle; a damaged archive is an error, and tensor
    // data is read (lazily) below, where a short file is reported with the key.
    let reader = burn_store::pytorch::PytorchReader::new(path).map_err(|e| corrupt(path, e))?;
    let mut keys = reader.keys();
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(snapshot) = reader.get(&key) else {
            continue;
        };
        let data = snapshot
            .to_data()
            .map_err(|e| corrupt(path, format!("tensor {key}: {e}")))?;
        let dtype = data.dtype;
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
            return Err(ModelError::UnsupportedDtype {
                path: PathBuf::from(path),
                key,
                dtype: format!("{dtype:?}"),
            });
        }
        let shape = data.shape.to_vec();
        let values = data
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| corrupt(path, format!("tensor {key}: {e:?}")))?;
        if values.len() != shape.iter().product::<usize>() {
            return Err(corrupt(
                path,
                format!("tensor {key}: {} values for shape {shape:?}", values.len()),
            ));
        }
        out.push((
            key,
            RawTensor {
                shape,
                data: values,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remap_table() {
        let cases = [
            (
                "model.decoder.layers.0.fc1.weight",
                Some("decoder.layers.0.fc1.weight"),
            ),
            (
                "decoder.embed_tokens.weight",
                Some("decoder.embed_tokens.weight"),
            ),
            ("lm_head.weight", None),
            ("something.else", Some("something.else")),
        ];
        for (from, to) in cases {
            assert_eq!(remap(from).as_deref(), to, "{from}");
        }
    }

    #[test]
    fn transpose_is_exact() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(
            transpose_2d(&[1., 2., 3., 4., 5., 6.], 2, 3),
            vec![1., 4., 2., 5., 3., 6.]
        );
    }
}
