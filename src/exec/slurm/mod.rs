//! The Slurm executor: every step that is not cached becomes one `sbatch` job
//! running `xp exec-step` on a node, against the same store, which must be on
//! a filesystem every node mounts (as must the experiment file, its local
//! sources and the `xp` binary). Jobs are chained with
//! `--dependency=afterok:<parents>` and `--kill-on-invalid-dep=yes`, so Slurm
//! itself orders the DAG and cancels the dependents of a failed job.
//!
//! The store stays the truth: a step is done when its entry is published,
//! whatever Slurm says, so a later `xp run` or `xp plan` sees what finished
//! and only what is missing is submitted again. A job carries its step's key
//! in its `--comment`; a key with a job still queued is not submitted twice.
//!
//! Shards as job arrays: not done. A sharded step (synthesis, once it exists)
//! will be one step per shard, each with its own key, so each is cached and
//! resubmitted on its own; as separate jobs that already works. An array
//! (`--array=0-N`) would only save the scheduler work for hundreds of shards,
//! and would need `exec-step` to map `SLURM_ARRAY_TASK_ID` to a step name and
//! every task of an array to be cached or not together; see the README.

pub mod commands;
mod follow;
mod progress;
pub mod resources;
mod retry;
pub mod submit;

use std::time::{Duration, Instant};

use commands::{JobId, SlurmCommands};
pub use follow::{LOG_TAIL_LINES, log_tail};
pub use submit::{log_dir, log_path};

use super::{ExecError, Executor, RunOptions, RunSummary, SourceLocations, StepCommand};
use crate::digest::StepKey;
use crate::events::{EventSink, RunEvent};
use crate::plan::Plan;
use crate::store::{Attempt, Store};
use chrono::{DateTime, Utc};

/// A Slurm command could not be run or said no.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{command}`: {source} (is Slurm installed and on PATH on this machine?)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed something xp cannot read: {output:?}")]
    Unexpected { command: String, output: String },
    #[error("cannot create the job log directory {}: {source}", dir.display())]
    Logs {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs a plan as Slurm jobs.
#[derive(Clone, Debug)]
pub struct SlurmExecutor {
    pub job: StepCommand,
    /// How often to ask Slurm about the jobs while following them.
    pub poll: Duration,
    pub slurm: SlurmCommands,
}

/// What one step is in a Slurm run.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Published in the store already: no job.
    Cached,
    Job(StepJob),
}

/// A step's job, submitted now or found queued.
#[derive(Clone, Debug)]
pub(crate) struct StepJob {
    pub index: usize,
    pub key: StepKey,
    pub id: JobId,
    pub forced: bool,
    /// Submitted by an earlier `xp run` (found in the queue).
    pub adopted: bool,
    /// When xp first saw it running.
    pub started: Option<Instant>,
    /// The failure message, once it failed.
    pub failure: Option<String>,
    /// How far xp has read the job's log for progress lines.
    pub log_offset: u64,
    /// The jobs it was submitted after (`--dependency=afterok`): when one of
    /// them is submitted again, Slurm cancels this one, and it is submitted
    /// again after the new job.
    pub parents: Vec<JobId>,
    /// Its time limit (`--time`), doubled when a retry follows a TIMEOUT.
    pub time: Option<String>,
    /// Its earlier jobs that Slurm stopped (preempted, node failure, time
    /// limit) and that were submitted again under the step's `retry`.
    pub attempts: Vec<Attempt>,
    /// When this job was submitted, or first seen running: its attempt's start.
    pub started_at: DateTime<Utc>,
}

impl StepJob {
    fn new(index: usize, key: StepKey, id: JobId, forced: bool, adopted: bool) -> Self {
        StepJob {
            index,
            key,
            id,
            forced,
            adopted,
            started: None,
            failure: None,
            log_offset: 0,
            parents: Vec::new(),
            time: None,
            attempts: Vec::new(),
            started_at: Utc::now(),
        }
    }
}

/// What `--detach` did: the jobs xp submitted and those it found queued.
#[derive(Clone, Debug, Default)]
pub struct Submission {
    /// (step, job id) submitted by this call.
    pub submitted: Vec<(String, JobId)>,
    /// (step, job id) queued by an earlier call.
    pub queued: Vec<(String, JobId)>,
    pub cached: Vec<String>,
}

/// Default poll interval; `XP_SLURM_POLL_MS` overrides it.
pub const DEFAULT_POLL: Duration = Duration::from_secs(3);

impl SlurmExecutor {
    /// An executor whose jobs run `job`, polling every `XP_SLURM_POLL_MS`
    /// milliseconds (default 3 s: squeue is cheap, but a cluster has many users).
    pub fn new(job: StepCommand) -> Self {
        let poll = std::env::var("XP_SLURM_POLL_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_POLL);
        SlurmExecutor {
            job,
            poll,
            slurm: SlurmCommands,
        }
    }

    /// Submits every step that is not cached and not queued, and returns
    /// without waiting (`xp run --detach`).
    pub fn submit(
        &self,
        plan: &Plan,
        store: &Store,
        options: &RunOptions,
        events: &dyn EventSink,
    ) -> Result<Submission, ExecError> {
        let steps = submit::submit_all(plan, store, options, &self.job, &self.slurm, events)?;
        let mut out = Submission::default();
        for (planned, step) in plan.steps.iter().zip(&steps) {
            let name = planned.name.clone();
            match step {
                Step::Cached => out.cached.push(name),
                Step::Job(job) if job.adopted => out.queued.push((name, job.id.clone())),
                Step::Job(job) => out.submitted.push((name, job.id.clone())),
            }
        }
        Ok(out)
    }
}

impl Executor for SlurmExecutor {
    /// Submits, then follows the jobs until all have ended. The sources are
    /// resolved again by each job on its node.
    fn run(
        &self,
        plan: &Plan,
        store: &Store,
        _sources: &SourceLocations,
        options: &RunOptions,
        events: &dyn EventSink,
    ) -> Result<RunSummary, ExecError> {
        let clock = Instant::now();
        let mut steps = submit::submit_all(plan, store, options, &self.job, &self.slurm, events)?;
        let mut summary = RunSummary::default();
        for (planned, step) in plan.steps.iter().zip(&steps) {
            if matches!(step, Step::Cached) {
                summary.cached.push(planned.name.clone());
            }
        }
        follow::follow(
            plan,
            store,
            &self.job,
            &mut steps,
            &self.slurm,
            self.poll,
            events,
            &mut summary,
        )?;
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
