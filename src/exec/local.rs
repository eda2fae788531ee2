//! The local executor: every step in this process, in plan order.
//!
//! Steps run one at a time: on CPU, burn's ndarray backend already uses every
//! core for one step, and on GPU one step owns the device.
//!
//! A step with `retry` runs as an `xp exec-step` child instead (as with
//! `--jobs N`): only a separate process can be started again after a signal
//! killed it.

use std::collections::HashMap;
use std::thread;
use std::time::Instant;

use super::parallel::{Ended, Next, after_attempt, spawn};
use super::{
    ExecError, Executor, RunOptions, RunSummary, SourceLocations, StepCommand, StepResult,
    answered_by_store, execute_step, known_key,
};
use crate::events::{EventSink, RunEvent};
use crate::plan::Plan;
use crate::store::{Attempt, Store};

pub struct LocalExecutor {
    /// How a step with `retry` is run in a child process.
    pub command: StepCommand,
}

impl LocalExecutor {
    /// Runs step `index` in `xp exec-step` children, one after the other, until
    /// one ends other than killed or the step's `retry` is used up.
    fn run_in_child(
        &self,
        plan: &Plan,
        index: usize,
        store: &Store,
        options: &RunOptions,
        events: &dyn EventSink,
    ) -> Result<StepResult, ExecError> {
        let step = &plan.steps[index];
        let (key, _) = known_key(step)?;
        let forced = options.forced(&step.name);
        // A cached step needs no process.
        if answered_by_store(store, &step.name, key, forced, events)? {
            return Ok(StepResult::Cached);
        }
        let mut attempts: Vec<Attempt> = Vec::new();
        loop {
            let args = self
                .command
                .args(store.root(), &step.name, key, forced, &attempts);
            // The only running step: its child has every core (no thread limit).
            let next = thread::scope(|scope| -> Result<Next, ExecError> {
                let running = spawn(&self.command, None, scope, index, key, args, false, events)?;
                Ok(after_attempt(plan, running, &mut attempts, events))
            })?;
            match next {
                Next::Retry => continue,
                Next::Done(Ended::Cached) => return Ok(StepResult::Cached),
                Next::Done(Ended::Executed) => return Ok(StepResult::Executed),
                Next::Done(Ended::Failed(message) | Ended::Killed { message, .. }) => {
                    return Err(ExecError::StepFailed {
                        step: step.name.clone(),
                        message,
                    });
                }
            }
        }
    }
}

impl Executor for LocalExecutor {
    fn run(
        &self,
        plan: &Plan,
        store: &Store,
        sources: &SourceLocations,
        options: &RunOptions,
        events: &dyn EventSink,
    ) -> Result<RunSummary, ExecError> {
        let clock = Instant::now();
        let mut summary = RunSummary::default();
        // For each step that did not complete: the failed step that stopped it.
        let mut blocked_by: HashMap<usize, String> = HashMap::new();
        for (index, step) in plan.steps.iter().enumerate() {
            if let Some(cause) = step.deps.iter().find_map(|d| blocked_by.get(d)).cloned() {
                events.emit(RunEvent::StepSkipped {
                    step: step.name.clone(),
                    failed_dependency: cause.clone(),
                });
                summary.skipped.push(step.name.clone());
                blocked_by.insert(index, cause);
                continue;
            }
            let result = if plan.decl(index).retry.max > 0 {
                self.run_in_child(plan, index, store, options, events)
            } else {
                execute_step(plan, index, store, sources, options, &[], events)
            };
            match result {
                Ok(StepResult::Cached) => summary.cached.push(step.name.clone()),
                Ok(StepResult::Executed) | Ok(StepResult::ByOtherProcess) => {
                    summary.executed.push(step.name.clone())
                }
                Err(ExecError::StepFailed {
                    step: name,
                    message,
                }) => {
                    summary.failed.push((name.clone(), message));
                    blocked_by.insert(index, name);
                }
                Err(other) => return Err(other),
            }
        }
        events.emit(RunEvent::RunFinished {
            executed: summary.executed.len(),
            cached: summary.cached.len(),
            failed: summary.failed.len(),
            skipped: summary.skipped.len(),
            duration: clock.elapsed(),
        });
        Ok(summary)
    }
}
