//! The local executor with `--jobs N`: independent steps run at the same time,
//! each as an `xp exec-step --json` child process.
//!
//! A process has one CPU thread pool, sized when it starts, so concurrent steps
//! need processes of their own: each child gets an equal share of the cores
//! (`RAYON_NUM_THREADS`, `MATMUL_NUM_THREADS`). A step that runs a model on a GPU
//! backend owns the device: at most one such step runs at a time. The children's
//! JSON events are forwarded, so the display shows every running step. A failed
//! step's dependents are skipped; steps already running finish.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::{ExecError, Executor, RunOptions, RunSummary, SourceLocations, StepCommand};
use crate::digest::StepKey;
use crate::events::{EventSink, RunEvent};
use crate::plan::{KeyState, Plan};
use crate::store::{LookupOutcome, Store};

pub struct ParallelExecutor {
    pub command: StepCommand,
    /// Steps running at once, at least 2 (1 is the in-process [`super::local`]).
    pub jobs: usize,
    /// CPU threads of each step's process.
    pub threads_per_step: usize,
}

impl ParallelExecutor {
    /// `jobs` steps at a time, sharing the machine's cores evenly.
    pub fn new(command: StepCommand, jobs: usize) -> Self {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            command,
            jobs,
            threads_per_step: (cores / jobs).max(1),
        }
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

struct Running<'scope> {
    index: usize,
    key: StepKey,
    child: Child,
    gpu: bool,
    events: ScopedJoinHandle<'scope, Reported>,
    stderr: ScopedJoinHandle<'scope, String>,
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
        let gpu_backend = plan.experiment.meta.backend.is_gpu();

        thread::scope(|scope| -> Result<(), ExecError> {
            let mut running: Vec<Running> = Vec::new();
            loop {
                // Start, in plan order, every step whose dependencies are done, as
                // far as the slots allow.
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
                    let key = match &step.key {
                        KeyState::Known { key, .. } => *key,
                        KeyState::Unknown { missing_sources } => {
                            return Err(ExecError::UnknownKey {
                                step: step.name.clone(),
                                missing: missing_sources.clone(),
                            });
                        }
                    };
                    let forced = options.forced(&step.name);
                    if !forced && matches!(store.lookup(&key)?, LookupOutcome::Hit(_)) {
                        events.emit(RunEvent::StepCached {
                            step: step.name.clone(),
                            key,
                        });
                        summary.cached.push(step.name.clone());
                        state[index] = State::Done;
                        continue;
                    }
                    let gpu = gpu_backend && plan.decl(index).params.resources().gpu;
                    if running.len() >= self.jobs || (gpu && running.iter().any(|r| r.gpu)) {
                        continue;
                    }
                    let args = self.command.args(store.root(), &step.name, key, forced);
                    running.push(self.spawn(scope, index, key, args, gpu, events)?);
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
                match finish(ended, &name, events) {
                    Ok(true) => {
                        summary.cached.push(name);
                        state[index] = State::Done;
                    }
                    Ok(false) => {
                        summary.executed.push(name);
                        state[index] = State::Done;
                    }
                    Err(message) => {
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

impl ParallelExecutor {
    /// Starts `xp exec-step` for step `index`, with threads that forward its
    /// events and keep its stderr.
    fn spawn<'scope, 'env>(
        &self,
        scope: &'scope thread::Scope<'scope, 'env>,
        index: usize,
        key: StepKey,
        args: Vec<String>,
        gpu: bool,
        events: &'env dyn EventSink,
    ) -> Result<Running<'scope>, ExecError> {
        let threads = self.threads_per_step.to_string();
        let mut child = Command::new(&self.command.xp)
            .args(&args)
            .arg("--json")
            .current_dir(self.command.dir())
            .env("RAYON_NUM_THREADS", &threads)
            .env("MATMUL_NUM_THREADS", &threads)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ExecError::Spawn {
                program: self.command.xp.clone(),
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
            events,
            stderr,
        })
    }
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

/// How a child's step ended: `Ok(cached)`, or the failure's message (already
/// reported as `StepFailed`).
fn finish(mut ended: Running<'_>, step: &str, events: &dyn EventSink) -> Result<bool, String> {
    let status = ended.child.wait();
    let reported = ended.events.join().unwrap_or_default();
    let stderr = ended.stderr.join().unwrap_or_default();
    if let Some(message) = reported.failed {
        return Err(message);
    }
    match status {
        Ok(status) if status.success() && (reported.finished || reported.cached) => {
            Ok(reported.cached)
        }
        status => {
            let message = format!("its process {}{}", describe(status.ok()), tail(&stderr));
            events.emit(RunEvent::StepFailed {
                step: step.to_string(),
                key: ended.key,
                error: message.clone(),
            });
            Err(message)
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
    fn the_tail_keeps_the_last_ten_non_empty_lines() {
        let text: String = (1..=15).map(|i| format!("line {i}\n\n")).collect();
        let tail = tail(&text);
        assert!(tail.starts_with(":\nline 6\n"), "{tail}");
        assert!(tail.ends_with("line 15"), "{tail}");
        assert_eq!(super::tail(""), "");
    }
}
