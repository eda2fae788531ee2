//! `xp validate FILE`: parse, expand and plan the experiment; run nothing. A
//! backend this binary cannot run is a warning here (`xp run` refuses it).

use clap::Args;

use super::common;
use super::exit::Success;
use super::{CliError, ExperimentArgs};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
}

pub fn run(args: ValidateArgs) -> Result<Success, CliError> {
    let plan = common::plan_offline(&args.experiment)?;
    common::warn_if_not_runnable(&plan.experiment);
    println!(
        "ok: `{}` has {} steps and {} sources ({})",
        plan.experiment.meta.name,
        plan.steps.len(),
        plan.experiment.sources.len(),
        plan.experiment.file.display()
    );
    Ok(Success::Ok)
}
