//! `xp plan FILE`: for every step, cached or will run, and why. Works anywhere:
//! a backend this binary cannot run is a warning (on stderr), not an error.

use clap::Args;
use serde_json::json;

use super::common::{self, StepStatus};
use super::exit::Success;
use super::{CliError, ExperimentArgs, StoreArgs};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Treat these steps as forced to rerun (as `xp run --rerun`).
    #[arg(long, value_name = "STEP")]
    pub rerun: Vec<String>,
    /// Treat every step as forced to rerun.
    #[arg(long)]
    pub rerun_all: bool,
}

pub fn run(args: PlanArgs) -> Result<Success, CliError> {
    let plan = common::plan_offline(&args.experiment)?;
    common::warn_if_not_runnable(&plan.experiment);
    let store = common::open_store_if_exists(&args.store)?;
    let options = common::run_options(&plan, &args.rerun, args.rerun_all)?;
    let statuses = common::statuses(&plan, store.as_ref(), &options)?;

    if args.json {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .zip(&statuses)
            .map(|(step, status)| {
                json!({
                    "step": step.name,
                    "kind": plan.decl_of(step).params.kind(),
                    "key": step.key.key().map(|k| k.to_hex()),
                    "status": status.label(),
                    "depends_on": step.deps.iter().map(|&d| plan.steps[d].name.clone()).collect::<Vec<_>>(),
                    "why": status.reasons(),
                })
            })
            .collect();
        let sources: serde_json::Map<_, _> = plan
            .sources
            .iter()
            .map(|(name, state)| (name.clone(), json!(common::source_state_label(state))))
            .collect();
        let out = json!({
            "experiment": plan.experiment.meta.name,
            "file": plan.experiment.file,
            "steps": steps,
            "sources": sources,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        return Ok(Success::Ok);
    }

    println!(
        "plan for `{}` ({})",
        plan.experiment.meta.name,
        plan.experiment.file.display()
    );
    let width = plan.steps.iter().map(|s| s.name.len()).max().unwrap_or(4);
    for (step, status) in plan.steps.iter().zip(&statuses) {
        let key = step
            .key
            .key()
            .map(|k| k.short())
            .unwrap_or_else(|| "?".repeat(12));
        let reasons = status.reasons();
        let first = reasons.first().cloned().unwrap_or_default();
        println!(
            "  {:<9} {:<width$}  {}  {}",
            status.label(),
            step.name,
            key,
            first
        );
        for more in reasons.iter().skip(1) {
            println!("  {:<9} {:<width$}  {:12}  {}", "", "", "", more);
        }
    }
    let count = |f: fn(&StepStatus) -> bool| statuses.iter().filter(|s| f(s)).count();
    println!(
        "{} steps: {} cached, {} will run{}",
        statuses.len(),
        count(|s| matches!(s, StepStatus::Cached)),
        count(|s| matches!(s, StepStatus::WillRun(_))),
        match count(|s| matches!(s, StepStatus::NeedsSources(_))) {
            0 => String::new(),
            n => format!(", {n} wait for sources to be fetched"),
        }
    );
    for (name, state) in &plan.sources {
        if let crate::plan::SourceState::MustFetch { what } = state {
            println!(
                "source `{name}` must be fetched: {what} (`xp run` downloads it; offline, populate the HF cache or use --set sources.{name}=/local/path)"
            );
        }
    }
    Ok(Success::Ok)
}
