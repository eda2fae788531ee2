//! Run events: the only way the executor talks to whoever shows progress.
//! The progress bars, the plain log and the JSON reporter are all consumers.

use std::time::Duration;

use serde::Serialize;

use crate::digest::StepKey;

/// Why a step is executed rather than taken from the cache.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RunReason {
    /// No entry with this key (the plan explains the difference).
    NotCached,
    /// `--rerun STEP` or `--rerun-all`.
    Forced,
    /// The cached entry failed its integrity check and was moved to quarantine.
    Corrupt { files: Vec<String> },
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run starts: how many steps, how many will execute.
    RunStarted {
        experiment: String,
        steps: usize,
        to_run: usize,
    },
    /// The step's result is in the store already.
    StepCached { step: String, key: StepKey },
    /// Another process holds this key's lock; we wait for it.
    StepWaiting {
        step: String,
        key: StepKey,
        holder: String,
    },
    StepStarted {
        step: String,
        key: StepKey,
        kind: String,
        reason: RunReason,
    },
    /// Progress inside a step. `total` is None when unknown.
    StepProgress {
        step: String,
        done: u64,
        total: Option<u64>,
        unit: String,
        message: String,
    },
    StepFinished {
        step: String,
        key: StepKey,
        #[serde(with = "secs")]
        duration: Duration,
        /// Another process published it while we waited for the lock.
        by_other_process: bool,
    },
    StepFailed {
        step: String,
        key: StepKey,
        error: String,
    },
    /// Not executed because a step it depends on failed.
    StepSkipped {
        step: String,
        failed_dependency: String,
    },
    RunFinished {
        executed: usize,
        cached: usize,
        failed: usize,
        skipped: usize,
        #[serde(with = "secs")]
        duration: Duration,
    },
}

/// Receives events; must be cheap (called from inside steps for progress).
pub trait EventSink: Sync {
    fn emit(&self, event: RunEvent);
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
