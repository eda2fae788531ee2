//! `xp exec-step FILE --step NAME`: run one step in this process, its inputs
//! already in the store. A cluster job runs this on its node against a shared
//! store; the key is recomputed from the file, so a job can never publish a
//! result under the wrong key.

use clap::Args;

use super::common;
use super::exit::Success;
use super::reporter;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::exec::{self, ExecError};
use crate::plan::Plan;
use crate::plan::sources;
use crate::store::Attempt;

/// `--earlier-attempts`, parsed (a newtype: clap would read a `Vec` as repeated values).
#[derive(Clone, Debug)]
pub struct Attempts(Vec<Attempt>);

fn parse_attempts(json: &str) -> Result<Attempts, String> {
    serde_json::from_str(json)
        .map(Attempts)
        .map_err(|e| format!("not a JSON list of attempts: {e}"))
}

#[derive(Debug, Args)]
pub struct ExecStepArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The step to run.
    #[arg(long)]
    pub step: String,
    /// The key the submitter computed; refuse to run if it differs here.
    #[arg(long)]
    pub expect_key: Option<String>,
    /// Execute the step even if it is cached (`xp run --rerun` submitted it).
    #[arg(long)]
    pub rerun: bool,
    /// The step's earlier attempts, whose processes were killed (JSON, written
    /// by the `xp run` that retries the step), for its manifest.
    #[arg(long, value_parser = parse_attempts)]
    pub earlier_attempts: Option<Attempts>,
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
    /// Upload the step to the remote cache once it is executed.
    #[arg(long)]
    pub push: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExecStepArgs) -> Result<Success, CliError> {
    let experiment = common::load_experiment(&args.experiment)?;
    let resolved = sources::resolve_sources(&experiment)
        .map_err(|e| CliError::SourceUnavailable(format!("error: {e}")))?;
    let plan = Plan::build(experiment, &resolved)?;
    let index = plan.index_of(&args.step).ok_or_else(|| {
        CliError::Usage(format!(
            "error: no step `{}` in {}",
            args.step,
            args.experiment.file.display()
        ))
    })?;
    if let (Some(expected), Some(key)) = (&args.expect_key, plan.steps[index].key.key())
        && key.to_hex() != *expected
    {
        return Err(CliError::Usage(format!(
            "error: step `{}` has key {} here but {expected} where it was submitted: \
             the experiment file or its inputs differ between the two machines",
            args.step,
            key.to_hex()
        )));
    }
    let mut store_args = args.store.clone();
    // `--node-cache-dir /local/xp-%j`: a store per job, as sbatch's `%j` in --output.
    if let Ok(job) = std::env::var("SLURM_JOB_ID")
        && let Some(dir) = store_args.cache_dir.to_str()
    {
        store_args.cache_dir = dir.replace("%j", &job).into();
    }
    let store = common::open_store(&store_args)?;
    let (store, _) = super::remote::attach(store, &args.remote, Some(&plan.experiment))?;
    let events = reporter::for_output(args.json);
    let options = exec::RunOptions {
        rerun: [args.step.clone()]
            .into_iter()
            .filter(|_| args.rerun)
            .collect(),
        rerun_all: false,
        push: args.push,
    };
    match exec::execute_step(
        &plan,
        index,
        &store,
        &resolved.locations,
        &options,
        args.earlier_attempts.as_ref().map_or(&[], |a| &a.0),
        events.as_ref(),
    ) {
        Ok(_) => Ok(Success::Ok),
        Err(ExecError::StepFailed { .. }) => Ok(Success::StepsFailed),
        Err(other) => Err(other.into()),
    }
}
