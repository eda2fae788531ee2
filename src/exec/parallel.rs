//! The local executor with `--jobs N`: independent steps run at the same time,
//! each as an `xp exec-step --json` child process.
//!
//! A process has one CPU thread pool, sized when it starts, so concurrent steps
//! need processes of their own: each child gets an equal share of the cores
//! (`RAYON_NUM_THREADS`, `MATMUL_NUM_THREADS`) among the steps running or ready
//! when it starts — a step with nothing beside it gets every core, since a chain
//! of steps would otherwise run on a fraction of the machine. No result depends
//! on the thread count (tests/ml/run_jobs.rs). A step that runs a model on a GPU
//! backend owns the device: at most one such step runs at a time. The children's
//! JSON events are forwarded, so the display shows every running step. A failed
//! step's dependents are skipped; steps already running finish. A step whose
//! child was killed by a signal is started again while its `retry` allows.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{
    ExecError, Executor, RunOptions, RunSummary, SourceLocations, StepCommand, answered_by_store,
    known_key,
};
use crate::digest::StepKey;
use crate::events::{EventSink, RunEvent};
use crate::plan::Plan;
use crate::store::{Attempt, Store};

pub struct ParallelExecutor {
    pub command: StepCommand,
    /// Steps running at once, at least 2 (1 is the in-process [`super::local`]).
    pub jobs: usize,
    /// CPU threads the steps share.
    pub cores: usize,
}

impl ParallelExecutor {
    /// `jobs` steps at a time, sharing the machine's cores.
    pub fn new(command: StepCommand, jobs: usize) -> Self {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            command,
            jobs,
            cores,
        }
    }

    /// Threads for a step starting beside `others` running or ready steps.
    fn threads_beside(&self, others: usize) -> usize {
        (self.cores / (others + 1).min(self.jobs)).max(1)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Waiting,
    Running,
    Done,
    /// Failed, or skipped because a dependency failed: the failed step's name.
    Blocked(String),
}

/// What a child's events said about its step.
#[derive(Default)]
struct Reported {
    finished: bool,
    cached: bool,
    failed: Option<String>,
}

pub(super) struct Running<'scope> {
    index: usize,
    key: StepKey,
    child: Child,
    gpu: bool,
    started_at: DateTime<Utc>,
    events: ScopedJoinHandle<'scope, Reported>,
    stderr: ScopedJoinHandle<'scope, String>,
}

/// How a child's step ended.
pub(super) enum Ended {
    Cached,
    Executed,
    /// It failed, with its own error or an unexplained exit; already reported
    /// as `StepFailed`. Starting it again would fail the same way.
    Failed(String),
    /// Its process was killed by a signal before the step reported an end:
    /// something outside the step stopped it, so it may be retried. Not reported yet.
    Killed {
        /// For the attempt's record: `killed by signal 9`.
        outcome: String,
        /// For a person: the outcome and the last lines of the child's stderr.
        message: String,
    },
}

impl Executor for ParallelExecutor {
    fn run(
        &self,
        plan: &Plan,
        store: &Store,
        _sources: &SourceLocations,
        options: &RunOptions,
        events: &dyn EventSink,
    ) -> Result<RunSummary, ExecError> {
        let clock = Instant::now();
        let mut summary = RunSummary::default();
        let mut state = vec![State::Waiting; plan.steps.len()];
        // Each step's killed attempts, passed to its next child for the manifest.
        let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); plan.steps.len()];
        let gpu_backend = plan.experiment.meta.backend.is_gpu();

        thread::scope(|scope| -> Result<(), ExecError> {
            let mut running: Vec<Running> = Vec::new();
            loop {
                // Every step whose dependencies are done, in plan order; then start
                // as many as the slots allow.
                let mut ready = Vec::new();
                for index in 0..plan.steps.len() {
                    if state[index] != State::Waiting {
                        continue;
                    }
                    let step = &plan.steps[index];
                    if let Some(cause) = step.deps.iter().find_map(|&d| match &state[d] {
                        State::Blocked(cause) => Some(cause.clone()),
                        _ => None,
                    }) {
                        events.emit(RunEvent::StepSkipped {
                            step: step.name.clone(),
                            failed_dependency: cause.clone(),
                        });
                        summary.skipped.push(step.name.clone());
                        state[index] = State::Blocked(cause);
                        continue;
                    }
                    if !step.deps.iter().all(|&d| state[d] == State::Done) {
                        continue;
                    }
                    let (key, _) = known_key(step)?;
                    let forced = options.forced(&step.name);
                    if answered_by_store(store, &step.name, key, forced, events)? {
                        summary.cached.push(step.name.clone());
                        state[index] = State::Done;
                        continue;
                    }
                    ready.push((index, key, forced));
                }
                let mut others = running.len() + ready.len();
                for (index, key, forced) in ready {
                    let gpu = gpu_backend && plan.decl(index).params.resources().gpu;
                    if running.len() >= self.jobs || (gpu && running.iter().any(|r| r.gpu)) {
                        continue;
                    }
                    others -= 1;
                    let threads = self.threads_beside(others);
                    let name = &plan.steps[index].name;
                    let args = self
                        .command
                        .args(store.root(), name, key, forced, &attempts[index]);
                    running.push(spawn(
                        &self.command,
                        Some(threads),
                        scope,
                        index,
                        key,
                        args,
                        gpu,
                        events,
                    )?);
                    state[index] = State::Running;
                }
                if running.is_empty() {
                    break;
                }
                // Wait for a child to end.
                let ended = loop {
                    if let Some(i) = running
                        .iter_mut()
                        .position(|r| r.child.try_wait().map(|s| s.is_some()).unwrap_or(true))
                    {
                        break running.swap_remove(i);
                    }
                    thread::sleep(Duration::from_millis(20));
                };
                let index = ended.index;
                let name = plan.steps[index].name.clone();
                match after_attempt(plan, ended, &mut attempts[index], events) {
                    Next::Done(Ended::Cached) => {
                        summary.cached.push(name);
                        state[index] = State::Done;
                    }
                    Next::Done(Ended::Executed) => {
                        summary.executed.push(name);
                        state[index] = State::Done;
                    }
                    // Started again by the loop above, as soon as a slot is free.
                    Next::Retry => state[index] = State::Waiting,
                    Next::Done(Ended::Failed(message) | Ended::Killed { message, .. }) => {
                        summary.failed.push((name.clone(), message));
                        state[index] = State::Blocked(name);
                    }
                }
            }
            Ok(())
        })?;

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

/// What follows a child's end.
pub(super) enum Next {
    /// The step is over (a `Killed` here has used up its retries and is reported).
    Done(Ended),
    /// It was killed and has a retry left: start it again.
    Retry,
}

/// Reads how a child ended and, when it was killed, records the attempt in
/// `attempts` and decides whether the step's `retry` allows another.
pub(super) fn after_attempt(
    plan: &Plan,
    ended: Running<'_>,
    attempts: &mut Vec<Attempt>,
    events: &dyn EventSink,
) -> Next {
    let (index, key, started_at) = (ended.index, ended.key, ended.started_at);
    let step = plan.steps[index].name.clone();
    let (outcome, message) = match finish(ended, &step, events) {
        Ended::Killed { outcome, message } => (outcome, message),
        other => return Next::Done(other),
    };
    attempts.push(Attempt {
        attempt: attempts.len() as u32 + 1,
        outcome: outcome.clone(),
        started_at,
        ended_at: Utc::now(),
    });
    let max_attempts = plan.decl(index).retry.max + 1;
    let made = attempts.len() as u32;
    if made < max_attempts {
        events.emit(RunEvent::StepRetrying {
            step,
            key,
            attempt: made + 1,
            max_attempts,
            why: outcome,
        });
        return Next::Retry;
    }
    let message = if made > 1 {
        format!(
            "gave up after {made} attempts (`retry = {{ max = {} }}`); the last: {message}",
            made - 1
        )
    } else {
        message
    };
    events.emit(RunEvent::StepFailed {
        step,
        key,
        error: message.clone(),
    });
    Next::Done(Ended::Killed { outcome, message })
}

/// Starts `xp exec-step --json` for step `index`, with threads that forward
/// its events and keep its stderr. `threads`: the child's CPU threads, when
/// it shares the machine with other children.
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn<'scope, 'env>(
    command: &StepCommand,
    threads: Option<usize>,
    scope: &'scope thread::Scope<'scope, 'env>,
    index: usize,
    key: StepKey,
    args: Vec<String>,
    gpu: bool,
    events: &'env dyn EventSink,
) -> Result<Running<'scope>, ExecError> {
    let mut process = Command::new(&command.xp);
    process
        .args(&args)
        .arg("--json")
        .current_dir(command.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(threads) = threads {
        let threads = threads.to_string();
        process
            .env("RAYON_NUM_THREADS", &threads)
            .env("MATMUL_NUM_THREADS", &threads);
    }
    let started_at = Utc::now();
    let mut child = process.spawn().map_err(|source| ExecError::Spawn {
        program: command.xp.clone(),
        source,
    })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let events = scope.spawn(move || forward_events(stdout, events));
    let stderr = scope.spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Ok(Running {
        index,
        key,
        child,
        gpu,
        started_at,
        events,
        stderr,
    })
}

/// Re-emits a child's JSON events here; returns what they said about its step.
fn forward_events(stdout: impl Read, events: &dyn EventSink) -> Reported {
    let mut reported = Reported::default();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(event) = serde_json::from_str::<RunEvent>(&line) else {
            continue;
        };
        match &event {
            RunEvent::StepFinished { .. } => reported.finished = true,
            RunEvent::StepCached { .. } => reported.cached = true,
            RunEvent::StepFailed { error, .. } => reported.failed = Some(error.clone()),
            _ => {}
        }
        events.emit(event);
    }
    reported
}

/// How a child's step ended. Every failure but a kill is reported here as
/// `StepFailed`; whether a kill is a failure depends on the step's retries.
fn finish(mut ended: Running<'_>, step: &str, events: &dyn EventSink) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    let status = ended.child.wait();
    let reported = ended.events.join().unwrap_or_default();
    let stderr = ended.stderr.join().unwrap_or_default();
    if let Some(message) = reported.failed {
        return Ended::Failed(message);
    }
    match status {
        Ok(status) if status.success() && reported.cached => Ended::Cached,
        Ok(status) if status.success() && reported.finished => Ended::Executed,
        Ok(status) if !reported.finished && !reported.cached && status.signal().is_some() => {
            let outcome = format!("killed by signal {}", status.signal().unwrap_or_default());
            Ended::Killed {
                message: format!("its process was {outcome}{}", tail(&stderr)),
                outcome,
            }
        }
        status => {
            let message = format!("its process {}{}", describe(status.ok()), tail(&stderr));
            events.emit(RunEvent::StepFailed {
                step: step.to_string(),
                key: ended.key,
                error: message.clone(),
            });
            Ended::Failed(message)
        }
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) if s.signal().is_some() => {
            format!("was killed by signal {}", s.signal().unwrap_or_default())
        }
        Some(s) => match s.code() {
            Some(0) => "ended without reporting the step's result".into(),
            Some(code) => format!("exited with status {code}"),
            None => "ended".into(),
        },
        None => "could not be waited for".into(),
    }
}

/// The last lines of a child's stderr, for an error message.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(10);
    format!(":\n{}", lines[start..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_alone_gets_every_core_and_steps_side_by_side_share_them() {
        let executor = |jobs, cores| ParallelExecutor {
            command: StepCommand {
                xp: "xp".into(),
                file: "x.toml".into(),
                overrides: Vec::new(),
                backend: None,
                precision: None,
                remote: None,
                push: false,
                node_store: None,
            },
            jobs,
            cores,
        };
        assert_eq!(executor(2, 16).threads_beside(0), 16);
        assert_eq!(executor(2, 16).threads_beside(1), 8);
        // Never more shares than jobs, never fewer than one thread.
        assert_eq!(executor(2, 16).threads_beside(5), 8);
        assert_eq!(executor(4, 2).threads_beside(3), 1);
    }

    #[test]
    fn the_tail_keeps_the_last_ten_non_empty_lines() {
        let text: String = (1..=15).map(|i| format!("line {i}\n\n")).collect();
        let tail = tail(&text);
        assert!(tail.starts_with(":\nline 6\n"), "{tail}");
        assert!(tail.ends_with("line 15"), "{tail}");
        assert_eq!(super::tail(""), "");
    }
}
