//! `xp run FILE`: execute every step that is not cached, here or as Slurm jobs.

use clap::{Args, ValueEnum};

use super::common;
use super::exit::Success;
use super::reporter;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::events::RunEvent;
use crate::exec::Executor;
use crate::exec::StepCommand;
use crate::exec::local::LocalExecutor;
use crate::exec::parallel::ParallelExecutor;
use crate::exec::slurm::SlurmExecutor;
use crate::plan::Plan;
use crate::plan::sources;

/// Where steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorName {
    /// In this process, one step after another.
    Local,
    /// One `sbatch` job per step, against a store every node mounts.
    Slurm,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Execute this step and every step that depends on it, even if cached
    /// (repeatable).
    #[arg(long, value_name = "STEP")]
    pub rerun: Vec<String>,
    /// Execute every step, cached or not.
    #[arg(long)]
    pub rerun_all: bool,
    /// Report events as JSON lines on stdout instead of progress on stderr.
    #[arg(long)]
    pub json: bool,
    /// Where steps run: here, or as Slurm jobs (the store, the experiment file
    /// and its local sources must then be on a filesystem every node mounts).
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorName,
    /// With `--executor slurm`: submit the jobs and return without following
    /// them (a later `xp run` or `xp plan` sees what finished).
    #[arg(long)]
    pub detach: bool,
    /// Run up to N independent steps at once (local executor), each in its own
    /// process with an equal share of the CPU cores; at most one step at a time
    /// uses a GPU. Results are the same as with one job.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1, env = "XP_JOBS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: u64,
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
    /// Upload every step executed to the remote cache (steps found there are
    /// downloaded instead of executed, with or without this).
    #[arg(long)]
    pub push: bool,
    /// With `--executor slurm`: every job uses this store on its node (a local
    /// disk) instead of the submitting store; needs a remote cache, from which
    /// jobs pull their inputs and to which they push their outputs. `%j` in it
    /// is the job's id (a store per job, e.g. on the job's scratch disk).
    #[arg(long, value_name = "DIR")]
    pub node_cache_dir: Option<std::path::PathBuf>,
}

pub fn run(args: RunArgs) -> Result<Success, CliError> {
    if args.jobs > 1 && args.executor != ExecutorName::Local {
        return Err(CliError::Usage(
            "error: --jobs applies to the local executor (Slurm runs every ready step at once)"
                .into(),
        ));
    }
    if args.detach && args.executor != ExecutorName::Slurm {
        return Err(CliError::Usage(
            "error: --detach needs --executor slurm (a local run cannot outlive xp)".into(),
        ));
    }
    if args.node_cache_dir.is_some() && args.executor != ExecutorName::Slurm {
        return Err(CliError::Usage(
            "error: --node-cache-dir needs --executor slurm (it is the jobs' store on their nodes)"
                .into(),
        ));
    }
    let experiment = common::load_experiment(&args.experiment)?;
    // Before any source is resolved (downloaded) or step run: a local run needs
    // the backend here. Slurm jobs run on other machines, so submitting does not
    // refuse (they run this very binary, though: say so when it lacks the backend).
    let backend = experiment.meta.backend;
    match args.executor {
        ExecutorName::Local => backend.check_runnable()?,
        ExecutorName::Slurm => {
            if let Err(e) = backend.check_available() {
                eprintln!("warning: {e}; the jobs run this xp binary");
            }
        }
    }
    let resolved = sources::resolve_sources(&experiment)
        .map_err(|e| CliError::SourceUnavailable(format!("error: {e}")))?;
    for warning in &resolved.warnings {
        eprintln!("warning: {warning}");
    }
    let plan = Plan::build(experiment, &resolved)?;
    let store = common::open_store(&args.store)?;
    let (store, remote) = super::remote::attach(store, &args.remote, Some(&plan.experiment))?;
    if args.push && remote.is_none() {
        return Err(crate::store::StoreError::NoRemote.into());
    }
    if args.node_cache_dir.is_some() && remote.is_none() {
        return Err(CliError::Usage(
            "error: --node-cache-dir needs a remote cache (--remote or [cache] remote): \
             jobs on nodes with stores of their own share results only through it"
                .into(),
        ));
    }
    let mut options = common::run_options(&plan, &args.rerun, args.rerun_all)?;
    options.push = args.push;
    let command = step_command(&args, remote)?;
    let statuses = common::statuses(&plan, Some(&store), &options)?;
    let to_run = statuses
        .iter()
        .filter(|s| !matches!(s, common::StepStatus::Cached))
        .count();

    let events = reporter::for_output(args.json);
    events.emit(RunEvent::RunStarted {
        experiment: plan.experiment.meta.name.clone(),
        steps: plan.steps.len(),
        to_run,
    });
    let summary = match args.executor {
        ExecutorName::Local if args.jobs > 1 => ParallelExecutor::new(command, args.jobs as usize)
            .run(
                &plan,
                &store,
                &resolved.locations,
                &options,
                events.as_ref(),
            )?,
        ExecutorName::Local => LocalExecutor { command }.run(
            &plan,
            &store,
            &resolved.locations,
            &options,
            events.as_ref(),
        )?,
        ExecutorName::Slurm => {
            let slurm = SlurmExecutor::new(command);
            if args.detach {
                let submission = slurm.submit(&plan, &store, &options, events.as_ref())?;
                if !args.json {
                    eprintln!(
                        "{} jobs submitted, {} already queued, {} steps cached; \
                         `xp plan` shows what has finished, `xp run --executor slurm` follows the rest",
                        submission.submitted.len(),
                        submission.queued.len(),
                        submission.cached.len()
                    );
                    eprintln!("store: {}", store.root().display());
                }
                return Ok(Success::Ok);
            }
            slurm.run(
                &plan,
                &store,
                &resolved.locations,
                &options,
                events.as_ref(),
            )?
        }
    };
    if summary.failed.is_empty() {
        if !args.json {
            eprintln!("store: {}", store.root().display());
        }
        Ok(Success::Ok)
    } else {
        Ok(Success::StepsFailed)
    }
}

/// What a job or a child process runs: this very `xp` binary on this file, with
/// the same overrides, every path absolute.
fn step_command(args: &RunArgs, remote: Option<String>) -> Result<StepCommand, CliError> {
    let xp = std::env::current_exe().map_err(|source| CliError::Io {
        context: "cannot find the path of the running xp binary (jobs run it)".into(),
        source,
    })?;
    let file = std::path::absolute(&args.experiment.file).map_err(|source| CliError::Io {
        context: format!(
            "cannot resolve the experiment path {}",
            args.experiment.file.display()
        ),
        source,
    })?;
    Ok(StepCommand {
        xp,
        file,
        overrides: args.experiment.set.clone(),
        backend: args.experiment.backend,
        precision: args.experiment.precision,
        remote,
        // A job on a node with its own store must push, or its dependents
        // (on other nodes) and this xp would never see its outputs.
        push: args.push || args.node_cache_dir.is_some(),
        node_store: args.node_cache_dir.clone(),
    })
}
