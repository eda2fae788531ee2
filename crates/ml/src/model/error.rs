//! Errors of the model module: configuration, checkpoint files, weights, saving.

use std::path::PathBuf;

/// One tensor whose shape in the checkpoint differs from what the config implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The HF key (without the `model.` prefix), e.g. `decoder.layers.0.fc1.weight`.
    pub key: String,
    /// The shape the config implies, in HF layout (`[out, in]` for linear weights).
    pub expected: Vec<usize>,
    /// The shape found in the file.
    pub found: Vec<usize>,
}

/// Everything wrong with a checkpoint's key set, gathered so one error lists it all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReport {
    /// Keys the config needs that the file lacks.
    pub missing: Vec<String>,
    /// Keys in the file that no part of the model uses (after the remap table).
    pub unexpected: Vec<String>,
    /// Keys present with the wrong shape.
    pub wrong_shape: Vec<ShapeMismatch>,
}

impl KeyReport {
    /// True when the checkpoint matches the config exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.wrong_shape.is_empty()
    }
}

impl std::fmt::Display for KeyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.missing.is_empty() {
            write!(f, "\n  missing keys: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected keys: {}", self.unexpected.join(", "))?;
        }
        for m in &self.wrong_shape {
            write!(
                f,
                "\n  wrong shape: {} is {:?} in the file, the config needs {:?}",
                m.key, m.found, m.expected
            )?;
        }
        Ok(())
    }
}

/// Errors from building, loading, saving or scoring an OPT model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON for an OPT config.
    #[error("{path}: not a valid OPT config.json: {source}")]
    ConfigParse {
        /// The config file (or `<string>` when parsed from memory).
        path: PathBuf,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The config parses but describes a model this implementation cannot build.
    #[error("{path}: unsupported OPT config: {reason}")]
    UnsupportedConfig {
        /// The config file (or `<string>`).
        path: PathBuf,
        /// What is wrong and what is supported.
        reason: String,
    },
    /// The directory has neither weight file.
    #[error(
        "{dir}: no model weights found (expected model.safetensors or pytorch_model.bin; \
         sharded checkpoints are not supported)"
    )]
    NoWeights {
        /// The model directory.
        dir: PathBuf,
    },
    /// The weight file is damaged or not in the format its name says (e.g. truncated).
    #[error("{path}: cannot read the checkpoint: {reason}")]
    CorruptWeights {
        /// The weight file.
        path: PathBuf,
        /// What the reader reported.
        reason: String,
    },
    /// A tensor has a dtype that cannot be upcast to f32.
    #[error("{path}: tensor {key} has dtype {dtype}; only f16, bf16, f32 and f64 are supported")]
    UnsupportedDtype {
        /// The weight file.
        path: PathBuf,
        /// The key of the tensor.
        key: String,
        /// The dtype found.
        dtype: String,
    },
    /// Two keys in the file map to the same parameter (e.g. with and without `model.`).
    #[error("{path}: keys {first} and {second} both map to the parameter {key}")]
    DuplicateKey {
        /// The weight file.
        path: PathBuf,
        /// The parameter both map to.
        key: String,
        /// The first key in the file.
        first: String,
        /// The second key in the file.
        second: String,
    },
    /// The checkpoint's keys do not match the config.
    #[error("{path}: the checkpoint does not match config.json:{report}")]
    KeyMismatch {
        /// The weight file.
        path: PathBuf,
        /// Missing, unexpected and wrongly-shaped keys.
        report: KeyReport,
    },
    /// Writing model.safetensors failed.
    #[error("{path}: cannot write safetensors: {reason}")]
    SafetensorsWrite {
        /// The file being written.
        path: PathBuf,
        /// What the writer reported.
        reason: String,
    },
    /// Inputs to forward or scoring have inconsistent shapes.
    #[error("invalid model input: {0}")]
    InvalidInput(String),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}
