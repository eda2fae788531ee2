//! The local executor: every step in this process, in plan order.
//!
//! Steps run one at a time: on CPU, burn's ndarray backend already uses every
//! core for one step, and on GPU one step owns the device.

use std::collections::HashMap;
use std::time::Instant;

use super::{
    ExecError, Executor, RunOptions, RunSummary, SourceLocations, StepResult, execute_step,
};
use crate::events::{EventSink, RunEvent};
use crate::plan::Plan;
use crate::store::Store;

pub struct LocalExecutor;

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
            match execute_step(plan, index, store, sources, options, events) {
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
