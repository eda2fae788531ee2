//! What a step kind gets to run with, and what it gives back. A kind sees its
//! inputs as paths and writes into `out_dir`; it never sees the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backend::{BackendKind, Precision, Target};
use crate::digest::StepKey;
use crate::events::{EventSink, RunEvent, WorkClock};

/// One resolved input: a path (file or directory). A dataset source from the Hub
/// also lists its files by split, since its snapshot directory may hold others.
#[derive(Clone, Debug)]
pub struct InputLocation {
    pub path: PathBuf,
    pub splits: Option<BTreeMap<String, Vec<PathBuf>>>,
    /// Where it came from: for labels and provenance (e.g. a report naming the
    /// generation and the key behind each number).
    pub origin: InputOrigin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputOrigin {
    /// A `[sources]` entry.
    Source { name: String },
    /// Output `output` of step `step` (e.g. `synthesize@2`), whose key is `key`.
    Output {
        step: String,
        output: String,
        key: StepKey,
        /// The output's path relative to the store's root, for people to read (a
        /// report prints it rather than this machine's absolute path).
        store_path: PathBuf,
    },
}

impl InputOrigin {
    /// `source` or `step.output`, as references are written in the file.
    pub fn label(&self) -> String {
        match self {
            InputOrigin::Source { name } => name.clone(),
            InputOrigin::Output { step, output, .. } => format!("{step}.{output}"),
        }
    }
}

pub struct StepContext<'a> {
    pub step: &'a str,
    pub key: StepKey,
    /// Empty private directory; everything written here is published atomically.
    pub out_dir: &'a Path,
    /// Survives a crash of this step (same key), removed once it is published.
    pub scratch_dir: &'a Path,
    pub inputs: BTreeMap<&'static str, Vec<InputLocation>>,
    pub seed: u64,
    /// The experiment's backend (`[experiment] backend`, or `--backend`).
    pub backend: BackendKind,
    /// How f32 matrix products are computed (`[experiment] precision`); for
    /// [`crate::backend::dispatch`]. It is in the key of every kind that uses it.
    pub precision: Precision,
    pub events: &'a dyn EventSink,
    /// Steps with units of work (training steps, batches) report each one here.
    pub work: WorkClock,
}

impl StepContext<'_> {
    /// The single input of a scalar slot.
    pub fn input(&self, slot: &str) -> Result<&InputLocation, StepError> {
        match self.inputs.get(slot).map(Vec::as_slice) {
            Some([one]) => Ok(one),
            _ => Err(StepError::Invalid(format!(
                "step `{}`: input `{slot}` is missing",
                self.step
            ))),
        }
    }

    pub fn optional_input(&self, slot: &str) -> Option<&InputLocation> {
        self.inputs.get(slot).and_then(|v| v.first())
    }

    /// Every input of a list slot, in order (empty when the slot is unset).
    pub fn input_list(&self, slot: &str) -> &[InputLocation] {
        self.inputs.get(slot).map(Vec::as_slice).unwrap_or_default()
    }

    /// Where the step's tensor work runs: the experiment's backend (checked to be
    /// runnable here: `xp run` checked it before starting, a cluster job's node may
    /// still lack it) with its precision.
    pub fn target(&self) -> Result<Target, StepError> {
        self.backend.check_runnable()?;
        Ok(Target {
            precision: self.precision,
            ..Target::new(self.backend)
        })
    }

    /// Reports progress; the reporters rate-limit what they show.
    pub fn progress(&self, done: u64, total: Option<u64>, unit: &str, message: impl Into<String>) {
        self.events.emit(RunEvent::StepProgress {
            step: self.step.to_string(),
            done,
            total,
            unit: unit.to_string(),
            message: message.into(),
        });
    }

    pub fn out_path(&self, relative: &str) -> PathBuf {
        self.out_dir.join(relative)
    }
}

/// What a finished step reports besides its files.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    /// Key figures shown by `xp show` and kept in the manifest.
    pub metrics: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// An output file that could not be written, or an input file not in its format.
    #[error(transparent)]
    Artifact(#[from] crate::artifacts::ArtifactError),
    /// Input that is well-formed but unusable; the message says what to do.
    #[error("{0}")]
    Invalid(String),
}

impl StepError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StepError {
        let path = path.into();
        move |source| StepError::Io { path, source }
    }
}
