//! Following submitted jobs until every one has ended, turning what Slurm
//! reports into the same run events the local executor emits. Slurm says
//! whether a job ended; the store says whether its step succeeded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::commands::{JobId, JobState, SlurmCommands};
use super::progress;
use super::retry::{self, Decision};
use super::submit::{log_path, submit_one};
use super::{Step, StepJob};
use crate::events::{EventSink, RunEvent, RunReason};
use crate::exec::{ExecError, RunSummary, StepCommand};
use crate::plan::Plan;
use crate::store::{Attempt, LookupOutcome, Store};

/// Consecutive failed `squeue` calls tolerated while following.
const MAX_SQUEUE_FAILURES: u32 = 10;

/// Lines of a failed job's log shown with the failure.
pub const LOG_TAIL_LINES: usize = 20;

/// How a followed step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    Done,
    Failed,
    /// Never ran because this failed step (transitively) was a parent.
    Skipped {
        cause: String,
    },
}

/// What following needs besides the jobs: to read the store and Slurm, and to
/// submit a step again.
struct Context<'a> {
    plan: &'a Plan,
    store: &'a Store,
    command: &'a StepCommand,
    slurm: &'a SlurmCommands,
    experiment: String,
    events: &'a dyn EventSink,
}

/// Polls Slurm every `poll` until all jobs in `steps` have ended; fills `summary`.
#[allow(clippy::too_many_arguments)]
pub(super) fn follow(
    plan: &Plan,
    store: &Store,
    command: &StepCommand,
    steps: &mut [Step],
    slurm: &SlurmCommands,
    poll: Duration,
    events: &dyn EventSink,
    summary: &mut RunSummary,
) -> Result<(), ExecError> {
    let mut ended: HashMap<usize, End> = HashMap::new();
    let cx = Context {
        plan,
        store,
        command,
        slurm,
        experiment: plan.experiment.meta.name.clone(),
        events,
    };
    let mut squeue_failures = 0;
    loop {
        let open: Vec<&StepJob> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Job(job) if !ended.contains_key(&job.index) => Some(job),
                _ => None,
            })
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = open.iter().map(|j| j.id.clone()).collect();
        // A controller restarting or busy makes squeue fail for a while:
        // the jobs go on meanwhile, so ask again before giving up.
        let states = match slurm.states(&ids) {
            Ok(states) => {
                squeue_failures = 0;
                states
            }
            Err(_) if squeue_failures < MAX_SQUEUE_FAILURES => {
                squeue_failures += 1;
                std::thread::sleep(poll.max(Duration::from_secs(1)));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let mut updates = Vec::new();
        for job in open {
            let state = match states.get(&job.id) {
                Some(state) => state.clone(),
                // Slurm forgot it (it ended a while ago): accounting, else the store.
                None => slurm
                    .accounted_state(&job.id)
                    .unwrap_or_else(|| forgotten_state(store, job)),
            };
            updates.push((job.index, state));
        }
        for (index, state) in updates {
            // The parents' jobs now: a parent submitted again has a new id.
            let parents: Vec<JobId> = plan.steps[index]
                .deps
                .iter()
                .filter_map(|&d| match &steps[d] {
                    Step::Job(parent) => Some(parent.id.clone()),
                    Step::Cached => None,
                })
                .collect();
            // Those still to end: a resubmitted child waits only for them.
            let unfinished: Vec<JobId> = plan.steps[index]
                .deps
                .iter()
                .filter_map(|&d| match (&steps[d], ended.get(&d)) {
                    (Step::Job(parent), None) => Some(parent.id.clone()),
                    _ => None,
                })
                .collect();
            let Step::Job(job) = &mut steps[index] else {
                continue;
            };
            let parents = Parents {
                now: parents,
                unfinished,
            };
            if let Some(end) = observe(&cx, job, &state, &parents, &ended)? {
                let name = plan.steps[index].name.clone();
                match &end {
                    End::Done => summary.executed.push(name),
                    End::Failed => summary
                        .failed
                        .push((name, job.failure.clone().unwrap_or_default())),
                    End::Skipped { .. } => summary.skipped.push(name),
                }
                ended.insert(index, end);
            }
        }
        std::thread::sleep(poll);
    }
}

/// A job squeue and sacct no longer know: it ended; the store tells how.
fn forgotten_state(store: &Store, job: &StepJob) -> JobState {
    match store.lookup(&job.key) {
        Ok(LookupOutcome::Hit(_)) => JobState::Completed,
        _ => JobState::Failed {
            state: "ENDED (no longer listed by Slurm; its step is not in the store)".into(),
        },
    }
}

/// A job's parents' current jobs, all of them and those that have not ended.
struct Parents {
    now: Vec<JobId>,
    unfinished: Vec<JobId>,
}

/// Reacts to one job's current state; returns how the step ended, if it did.
fn observe(
    cx: &Context<'_>,
    job: &mut StepJob,
    state: &JobState,
    parents: &Parents,
    ended: &HashMap<usize, End>,
) -> Result<Option<End>, ExecError> {
    let (plan, store, events) = (cx.plan, cx.store, cx.events);
    let experiment = cx.experiment.as_str();
    let planned = &plan.steps[job.index];
    let step = planned.name.clone();
    let key = job.key;
    // A parent that failed or was skipped: Slurm cancels this job (or already did).
    let failed_parent = planned.deps.iter().find_map(|d| match ended.get(d) {
        Some(End::Failed) => Some(plan.steps[*d].name.clone()),
        Some(End::Skipped { cause }) => Some(cause.clone()),
        _ => None,
    });
    let started = |job: &mut StepJob| {
        if job.started.is_none() {
            job.started = Some(Instant::now());
            job.started_at = Utc::now();
            events.emit(RunEvent::StepStarted {
                step: step.clone(),
                key,
                kind: plan.decl(job.index).params.kind().into(),
                reason: if job.forced {
                    RunReason::Forced
                } else {
                    RunReason::NotCached
                },
            });
        }
    };
    match state {
        JobState::Pending { .. } => Ok(None),
        JobState::Running => {
            started(job);
            let log = log_path(store, experiment, &step, key, &job.id);
            progress::forward(&log, &mut job.log_offset, &step, events);
            Ok(None)
        }
        JobState::Cancelled { .. } if failed_parent.is_some() => {
            let cause = failed_parent.unwrap_or_default();
            events.emit(RunEvent::StepSkipped {
                step,
                failed_dependency: cause.clone(),
            });
            Ok(Some(End::Skipped { cause }))
        }
        // A parent was submitted again (a retry), so Slurm cancelled this job,
        // which waited for the parent's old job: submit it again after the new one.
        JobState::Cancelled { .. } if parents.now != job.parents => {
            let id = submit_one(
                plan,
                store,
                cx.command,
                cx.slurm,
                job.index,
                &parents.unfinished,
                job.time.as_deref(),
                job.forced,
                &job.attempts,
                events,
            )?;
            job.id = id;
            job.parents = parents.now.clone();
            Ok(None)
        }
        // The parent's failure shows up in a later poll: wait for it.
        JobState::Cancelled { reason } if reason == "DependencyNeverSatisfied" => Ok(None),
        // With node stores of their own, the job pushed its step to the remote.
        JobState::Completed => match crate::exec::lookup_through(store, &step, key, events)? {
            LookupOutcome::Hit(entry) => {
                started(job);
                let log = log_path(store, experiment, &step, key, &job.id);
                progress::forward(&log, &mut job.log_offset, &step, events);
                events.emit(RunEvent::StepFinished {
                    step,
                    key,
                    duration: Duration::from_secs_f64(entry.manifest.duration_s.max(0.0)),
                    by_other_process: false,
                });
                Ok(Some(End::Done))
            }
            _ => {
                let why = "its job completed but the step is not in the store";
                Ok(Some(fail(experiment, store, job, &step, why, events)))
            }
        },
        JobState::Cancelled { reason } => {
            let why = format!("Slurm job {} was cancelled (reason: {reason})", job.id);
            Ok(Some(fail(experiment, store, job, &step, &why, events)))
        }
        JobState::Failed { state } => {
            let why = format!("Slurm job {} ended {state}", job.id);
            let made = job.attempts.len() as u32 + 1;
            let max_retries = plan.decl(job.index).retry.max;
            match retry::decide(state, made, max_retries, job.time.as_deref()) {
                Decision::Resubmit { time } => {
                    job.attempts.push(Attempt {
                        attempt: made,
                        outcome: why.clone(),
                        started_at: job.started_at,
                        ended_at: Utc::now(),
                    });
                    let why = match &time {
                        Some(time) if job.time.as_ref() != Some(time) => {
                            format!("{why}; its time limit is now {time}")
                        }
                        _ => why,
                    };
                    events.emit(RunEvent::StepRetrying {
                        step,
                        key,
                        attempt: made + 1,
                        max_attempts: max_retries + 1,
                        why,
                    });
                    // It ran, so its parents are done: no dependency.
                    job.id = submit_one(
                        plan,
                        store,
                        cx.command,
                        cx.slurm,
                        job.index,
                        &[],
                        time.as_deref(),
                        job.forced,
                        &job.attempts,
                        events,
                    )?;
                    job.time = time;
                    job.started = None;
                    job.started_at = Utc::now();
                    job.log_offset = 0;
                    Ok(None)
                }
                Decision::Fail if made > 1 => {
                    let why = format!(
                        "gave up after {made} attempts (`retry = {{ max = {max_retries} }}`); the last: {why}"
                    );
                    Ok(Some(fail(experiment, store, job, &step, &why, events)))
                }
                Decision::Fail => Ok(Some(fail(experiment, store, job, &step, &why, events))),
            }
        }
    }
}

fn fail(
    experiment: &str,
    store: &Store,
    job: &mut StepJob,
    step: &str,
    why: &str,
    events: &dyn EventSink,
) -> End {
    let log = log_path(store, experiment, step, job.key, &job.id);
    let tail = log_tail(&log, LOG_TAIL_LINES);
    let message = format!("{why}; log {}:\n{tail}", log.display());
    job.failure = Some(message.clone());
    events.emit(RunEvent::StepFailed {
        step: step.to_string(),
        key: job.key,
        error: message,
    });
    End::Failed
}

/// The last `lines` lines of a log, indented; or why there are none.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            if all.is_empty() {
                return "    (the log is empty)".into();
            }
            all[start..]
                .iter()
                .map(|l| format!("    | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("    (cannot read the log: {e})"),
    }
}
