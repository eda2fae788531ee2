//! `xp run FILE`: execute every step that is not cached.

use clap::Args;

use super::common;
use super::exit::Success;
use super::reporter;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::exec::Executor;
use crate::exec::events::RunEvent;
use crate::exec::local::LocalExecutor;
use crate::plan::Plan;
use crate::source::oracle;

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
}

pub fn run(args: RunArgs) -> Result<Success, CliError> {
    let experiment = common::load_experiment(&args.experiment)?;
    let resolved = oracle::resolve_sources(&experiment)
        .map_err(|e| CliError::SourceUnavailable(format!("error: {e}")))?;
    for warning in &resolved.warnings {
        eprintln!("warning: {warning}");
    }
    let plan = Plan::build(experiment, &resolved)?;
    let store = common::open_store(&args.store)?;
    let options = common::run_options(&plan, &args.rerun, args.rerun_all)?;
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
    let summary = LocalExecutor.run(
        &plan,
        &store,
        &resolved.locations,
        &options,
        events.as_ref(),
    )?;
    if summary.failed.is_empty() {
        if !args.json {
            eprintln!("store: {}", store.root().display());
        }
        Ok(Success::Ok)
    } else {
        Ok(Success::StepsFailed)
    }
}
