//! Run events: the only way the executor talks to whoever shows progress.
//! The progress bars, the plain log and the JSON reporter are all consumers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::digest::StepKey;

/// Why a step is executed rather than taken from the cache.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RunReason {
    /// No entry with this key (the plan explains the difference).
    NotCached,
    /// `--rerun STEP` or `--rerun-all`.
    Forced,
    /// The cached entry failed its integrity check and was moved to quarantine.
    Corrupt { files: Vec<String> },
}

/// Serialised as the JSON reporter's lines, which `xp run --jobs N` reads back
/// from each step's `xp exec-step --json` child.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// The step's process was killed (a signal, a preempted cluster job...) and
    /// the step is started again: attempt `attempt` of at most `max_attempts`.
    StepRetrying {
        step: String,
        key: StepKey,
        attempt: u32,
        max_attempts: u32,
        /// How the previous attempt ended.
        why: String,
    },
    /// The step's entry was downloaded from the remote cache, verified against
    /// its manifest's digests and published here (a `StepCached` follows).
    StepPulled {
        step: String,
        key: StepKey,
        bytes: u64,
        #[serde(with = "secs")]
        duration: Duration,
    },
    /// The step's entry was uploaded to the remote cache.
    StepPushed {
        step: String,
        key: StepKey,
        files: usize,
        bytes: u64,
    },
    /// The remote cache could not be asked for the step, or held an entry that
    /// failed its check (nothing of it was kept), or took no upload: the run
    /// goes on without it.
    RemoteProblem {
        step: String,
        key: StepKey,
        problem: String,
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

/// When a step's units of work (optimizer steps, generation or scoring batches)
/// ran, so that its manifest gives the first unit apart from the steady state: on a
/// GPU the first unit also compiles and autotunes every kernel it is the first to
/// use, which can take minutes, and a step's duration alone hides that.
pub struct WorkClock {
    started: Instant,
    units: Mutex<Option<Units>>,
}

struct Units {
    unit: &'static str,
    setup_s: f64,
    seconds: Vec<f64>,
}

impl WorkClock {
    /// A clock for a step that starts now.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            units: Mutex::new(None),
        }
    }

    /// One unit of work (`unit` names them, e.g. "training steps") just ended
    /// after `seconds`. What ran before the first unit is the step's setup.
    pub fn unit_took(&self, unit: &'static str, seconds: f64) {
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        let units = units.get_or_insert_with(|| Units {
            unit,
            setup_s: (self.started.elapsed().as_secs_f64() - seconds).max(0.0),
            seconds: Vec::new(),
        });
        units.seconds.push(seconds);
    }

    /// The summary for the manifest; `None` for a step without units of work.
    pub fn timing(&self) -> Option<WorkTiming> {
        let units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        let units = units.as_ref()?;
        let (&first, rest) = units.seconds.split_first()?;
        let steady = median(rest);
        Some(WorkTiming {
            unit: units.unit.to_string(),
            units: units.seconds.len() as u64,
            setup_s: units.setup_s,
            first_unit_s: first,
            steady_unit_s: steady,
            warmup_s: steady.map(|s| (first - s).max(0.0)),
        })
    }
}

/// A step's time split by what it was spent on; in the manifest as `timing`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkTiming {
    /// What a unit of work is: "training steps", "batches".
    pub unit: String,
    /// Units of work this process ran (a resumed step counts only its own).
    pub units: u64,
    /// From the step's start to its first unit: reading inputs, loading the model.
    pub setup_s: f64,
    /// The first unit, compilation and autotuning included.
    pub first_unit_s: f64,
    /// The median of the other units: the steady state. `None` with one unit.
    pub steady_unit_s: Option<f64>,
    /// `first_unit_s - steady_unit_s` (at least 0): the time spent compiling and
    /// tuning kernels, and whatever else only the first unit does.
    pub warmup_s: Option<f64>,
}

/// The median (the mean of the middle two for an even count); `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(d)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_unit_is_apart_from_the_median_of_the_others() {
        let clock = WorkClock::start();
        assert_eq!(clock.timing(), None, "no units, no timing");
        for seconds in [9.0, 1.0, 3.0, 2.0, 100.0] {
            clock.unit_took("batches", seconds);
        }
        let timing = clock.timing().unwrap();
        assert_eq!(timing.unit, "batches");
        assert_eq!(timing.units, 5);
        assert_eq!(timing.first_unit_s, 9.0);
        // The median of 1, 2, 3, 100: an outlier (a validation pass) does not move it.
        assert_eq!(timing.steady_unit_s, Some(2.5));
        assert_eq!(timing.warmup_s, Some(6.5));
        assert!(timing.setup_s >= 0.0);
    }

    #[test]
    fn one_unit_has_no_steady_state_and_a_fast_first_unit_no_negative_warmup() {
        let clock = WorkClock::start();
        clock.unit_took("training steps", 4.0);
        let timing = clock.timing().unwrap();
        assert_eq!((timing.steady_unit_s, timing.warmup_s), (None, None));

        let clock = WorkClock::start();
        for seconds in [1.0, 2.0, 2.0] {
            clock.unit_took("training steps", seconds);
        }
        assert_eq!(clock.timing().unwrap().warmup_s, Some(0.0));
    }

    #[test]
    fn setup_is_the_time_before_the_first_unit_began() {
        let clock = WorkClock::start();
        std::thread::sleep(Duration::from_millis(30));
        clock.unit_took("batches", 0.0);
        let setup = clock.timing().unwrap().setup_s;
        assert!((0.03..1.0).contains(&setup), "setup {setup}");
    }
}
