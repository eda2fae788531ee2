//! Executing a plan. `execute_step` runs one step in this process against the
//! store (the local executor calls it for every step; a cluster executor would
//! call it through `xp exec-step` on another node). Executors decide only
//! where and in which order steps run.

mod command;
pub mod local;
pub mod parallel;
pub mod slurm;

pub use command::StepCommand;

use std::collections::{BTreeMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use chrono::Utc;

use crate::digest::StepKey;
use crate::events::{EventSink, RunEvent, RunReason, WorkClock};
use crate::plan::{KeyState, Plan, PlannedInput};
use crate::steps::context::{InputLocation, InputOrigin, StepContext};
use crate::store::{
    Attempt, Begin, LookupOutcome, ManifestInfo, Outcome, Pulled, Pushed, Store, StoreError,
};

/// Which steps to execute even when cached.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub rerun: HashSet<String>,
    pub rerun_all: bool,
    /// Upload every step executed here to the store's remote cache (`--push`).
    pub push: bool,
}

impl RunOptions {
    pub(crate) fn forced(&self, step: &str) -> bool {
        self.rerun_all || self.rerun.contains(step)
    }
}

/// The local files behind each source, resolved (and downloaded) before a run.
pub type SourceLocations = BTreeMap<String, InputLocation>;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Slurm(#[from] slurm::SlurmError),
    #[error("step `{step}` cannot run yet: its key depends on sources that must be fetched first: {}", .missing.join(", "))]
    UnknownKey { step: String, missing: Vec<String> },
    #[error("cannot start {}: {source}", .program.display())]
    Spawn {
        program: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("step `{step}` failed: {message}")]
    StepFailed { step: String, message: String },
    #[error(
        "step `{step}`: input `{input}` of step `{producer}` is not in the store (it must run first)"
    )]
    MissingInput {
        step: String,
        producer: String,
        input: String,
    },
}

/// How a step ended in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepResult {
    Cached,
    Executed,
    /// Another `xp` published the same key while we waited for its lock.
    ByOtherProcess,
}

/// What a run did, for the summary line and the exit code.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub executed: Vec<String>,
    pub cached: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
}

/// Runs every step of a plan that is not cached, in an order that respects
/// dependencies. A failed step's dependents are skipped; independent steps go on.
pub trait Executor {
    fn run(
        &self,
        plan: &Plan,
        store: &Store,
        sources: &SourceLocations,
        options: &RunOptions,
        events: &dyn EventSink,
    ) -> Result<RunSummary, ExecError>;
}

/// A planned step's key and what it hashes; an error when sources it depends on
/// are not resolved yet.
pub(crate) fn known_key(
    planned: &crate::plan::PlannedStep,
) -> Result<(StepKey, &crate::plan::key::KeyInputs), ExecError> {
    match &planned.key {
        KeyState::Known { key, inputs } => Ok((*key, inputs)),
        KeyState::Unknown { missing_sources } => Err(ExecError::UnknownKey {
            step: planned.name.clone(),
            missing: missing_sources.clone(),
        }),
    }
}

/// Whether an executor can answer the step from the store without starting it
/// anywhere (not forced, entry sound); says so when it can. A corrupt entry is
/// left to `execute_step`, which quarantines and recomputes it.
pub(crate) fn answered_by_store(
    store: &Store,
    step: &str,
    key: StepKey,
    forced: bool,
    events: &dyn EventSink,
) -> Result<bool, ExecError> {
    if forced
        || !matches!(
            lookup_through(store, step, key, events)?,
            LookupOutcome::Hit(_)
        )
    {
        return Ok(false);
    }
    events.emit(RunEvent::StepCached {
        step: step.to_string(),
        key,
    });
    Ok(true)
}

/// The store's answer for `key`, reading through to its remote cache on a
/// miss: an entry there is downloaded, checked against its manifest's digests
/// and published here, and is then a hit. A remote that cannot be reached, or
/// whose entry fails the check, is reported and the step left to compute.
pub(crate) fn lookup_through(
    store: &Store,
    step: &str,
    key: StepKey,
    events: &dyn EventSink,
) -> Result<LookupOutcome, ExecError> {
    let outcome = store.lookup(&key)?;
    if !matches!(outcome, LookupOutcome::Miss) || store.remote().is_none() {
        return Ok(outcome);
    }
    let clock = Instant::now();
    match store.pull(&key) {
        Ok(Pulled::Fetched { entry, bytes }) => {
            events.emit(RunEvent::StepPulled {
                step: step.to_string(),
                key,
                bytes,
                duration: clock.elapsed(),
            });
            Ok(LookupOutcome::Hit(entry))
        }
        Ok(Pulled::Present(entry)) => Ok(LookupOutcome::Hit(entry)),
        Ok(Pulled::Absent) => Ok(LookupOutcome::Miss),
        Err(e @ (StoreError::Remote(_) | StoreError::RemoteRejected { .. })) => {
            events.emit(RunEvent::RemoteProblem {
                step: step.to_string(),
                key,
                problem: format!("{e}; the remote's entry is not used"),
            });
            Ok(LookupOutcome::Miss)
        }
        Err(other) => Err(other.into()),
    }
}

/// Uploads a step just published here to the store's remote cache. A failed
/// upload is reported, not a failed step: the entry is sound here.
fn push_executed(store: &Store, step: &str, key: StepKey, events: &dyn EventSink) {
    match store.push(&key, false) {
        Ok(Pushed::Uploaded { files, bytes }) => events.emit(RunEvent::StepPushed {
            step: step.to_string(),
            key,
            files,
            bytes,
        }),
        Ok(Pushed::AlreadyThere) => {}
        Err(e) => events.emit(RunEvent::RemoteProblem {
            step: step.to_string(),
            key,
            problem: format!("not pushed: {e}"),
        }),
    }
}

/// Runs step `index` of the plan here, unless the store has it.
/// `earlier_attempts` are the starts of this step whose processes were killed
/// (a parent retrying it knows them); the manifest lists them before this one.
pub fn execute_step(
    plan: &Plan,
    index: usize,
    store: &Store,
    sources: &SourceLocations,
    options: &RunOptions,
    earlier_attempts: &[Attempt],
    events: &dyn EventSink,
) -> Result<StepResult, ExecError> {
    let planned = &plan.steps[index];
    let decl = plan.decl(index);
    let (key, key_inputs) = known_key(planned)?;
    let step = planned.name.clone();
    let waiting = |wait: &crate::store::LockWait| {
        events.emit(RunEvent::StepWaiting {
            step: step.clone(),
            key,
            holder: wait.to_string(),
        })
    };
    let (staging, reason) = if options.forced(&step) {
        (store.begin_rerun(&key, waiting)?, RunReason::Forced)
    } else {
        let reason = match lookup_through(store, &step, key, events)? {
            LookupOutcome::Hit(_) => {
                events.emit(RunEvent::StepCached { step, key });
                return Ok(StepResult::Cached);
            }
            LookupOutcome::Corrupt(corruption) => RunReason::Corrupt {
                files: corruption.problems.iter().map(|p| p.to_string()).collect(),
            },
            LookupOutcome::Miss => RunReason::NotCached,
        };
        match store.begin(&key, waiting)? {
            Begin::Published(_) => {
                events.emit(RunEvent::StepFinished {
                    step,
                    key,
                    duration: Default::default(),
                    by_other_process: true,
                });
                return Ok(StepResult::ByOtherProcess);
            }
            Begin::Staging(staging) => (staging, reason),
        }
    };

    let inputs = input_locations(plan, index, store, sources, events)?;
    events.emit(RunEvent::StepStarted {
        step: step.clone(),
        key,
        kind: decl.params.kind().into(),
        reason,
    });
    let started_at = Utc::now();
    let clock = Instant::now();
    let ctx = StepContext {
        step: &step,
        key,
        out_dir: staging.out_dir(),
        scratch_dir: staging.scratch_dir(),
        inputs,
        seed: decl.seed,
        backend: plan.experiment.meta.backend,
        precision: plan.experiment.meta.precision,
        events,
        work: WorkClock::start(),
    };
    // A panic in a step is a bug, but it must fail the step, not the store.
    let result = catch_unwind(AssertUnwindSafe(|| decl.params.run(&ctx)));
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => return Err(fail(events, &step, key, error.to_string())),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            return Err(fail(
                events,
                &step,
                key,
                format!("internal error (a bug in xp, please report it): {message}"),
            ));
        }
    };
    let duration = clock.elapsed();
    let timing = ctx.work.timing();
    drop(ctx);
    staging.publish(ManifestInfo {
        step: step.clone(),
        kind: decl.params.kind().to_string(),
        kind_version: decl.params.version(),
        experiment: plan.experiment.meta.name.clone(),
        key_inputs: serde_json::to_value(key_inputs).expect("key inputs serialise"),
        metrics: outcome.metrics,
        backend: plan.experiment.meta.backend,
        precision: plan.experiment.meta.precision,
        started_at,
        timing,
        outcome: Outcome::Completed,
        earlier_attempts: earlier_attempts.to_vec(),
    })?;
    events.emit(RunEvent::StepFinished {
        step: step.clone(),
        key,
        duration,
        by_other_process: false,
    });
    if options.push {
        push_executed(store, &step, key, events);
    }
    Ok(StepResult::Executed)
}

fn fail(events: &dyn EventSink, step: &str, key: StepKey, message: String) -> ExecError {
    events.emit(RunEvent::StepFailed {
        step: step.to_string(),
        key,
        error: message.clone(),
    });
    ExecError::StepFailed {
        step: step.to_string(),
        message,
    }
}

fn input_locations(
    plan: &Plan,
    index: usize,
    store: &Store,
    sources: &SourceLocations,
    events: &dyn EventSink,
) -> Result<BTreeMap<&'static str, Vec<InputLocation>>, ExecError> {
    let mut out = BTreeMap::new();
    for (slot, inputs) in &plan.steps[index].inputs {
        let mut locations = Vec::new();
        for input in inputs {
            match input {
                PlannedInput::Source { name } => {
                    let mut location = sources[name].clone();
                    location.origin = InputOrigin::Source { name: name.clone() };
                    locations.push(location);
                }
                PlannedInput::Output { step, output, path } => {
                    let producer = &plan.steps[*step];
                    let missing = || ExecError::MissingInput {
                        step: plan.steps[index].name.clone(),
                        producer: producer.name.clone(),
                        input: output.clone(),
                    };
                    let key = producer.key.key().ok_or_else(missing)?;
                    // On a node with a store of its own, the producer ran elsewhere.
                    let entry = lookup_through(store, &producer.name, key, events)?
                        .hit()
                        .ok_or_else(missing)?;
                    let path = entry.out_dir().join(path);
                    let store_path = path
                        .strip_prefix(store.root())
                        .unwrap_or(&path)
                        .to_path_buf();
                    locations.push(InputLocation {
                        path,
                        splits: None,
                        origin: InputOrigin::Output {
                            step: producer.name.clone(),
                            output: output.clone(),
                            key,
                            store_path,
                        },
                    });
                }
            }
        }
        out.insert(*slot, locations);
    }
    Ok(out)
}
