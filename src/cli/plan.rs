//! `xp plan FILE`: for every step, cached or will run, why, and how long it should
//! take. Works anywhere: a backend this binary cannot run is a warning (on
//! stderr), not an error. `--since REV` is in `plan_since.rs`.

use clap::Args;
use serde_json::{Value, json};

use super::common::{self, StepStatus};
use super::cost::{self, PlanPaths};
use super::exit::Success;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::plan::Plan;
use crate::store::{Cost, History};

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
    #[arg(long, value_name = "STEP", conflicts_with = "since")]
    pub rerun: Vec<String>,
    /// Treat every step as forced to rerun.
    #[arg(long, conflicts_with = "since")]
    pub rerun_all: bool,
    /// List the steps whose key differs from what the experiment (and the
    /// repository files it reads) was at git revision REV, and why; exits 6 when
    /// some step is invalidated, 0 when none is.
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

pub fn run(args: PlanArgs) -> Result<Success, CliError> {
    if let Some(rev) = &args.since {
        return super::plan_since::run(&args, rev);
    }
    let plan = common::plan_offline(&args.experiment)?;
    common::warn_if_not_runnable(&plan.experiment);
    let store = common::open_store_if_exists(&args.store)?;
    let options = common::run_options(&plan, &args.rerun, args.rerun_all)?;
    let entries = common::entries(store.as_ref())?;
    let mut statuses = common::statuses_of(&plan, &entries, &options);
    if let Some((remote, _)) = super::remote::connect(&args.remote, Some(&plan.experiment))? {
        common::mark_in_remote(&plan, &mut statuses, &remote, &options);
    }
    let history = History::new(&entries);
    let paths = PlanPaths::of(&plan);
    let costs: Vec<Option<Cost>> = statuses
        .iter()
        .enumerate()
        .map(|(i, status)| {
            matches!(status, StepStatus::WillRun(_))
                .then(|| cost::estimate(&plan, i, &history, &paths))
        })
        .collect();
    let backend = plan.experiment.meta.backend.as_str();

    if args.json {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .zip(&statuses)
            .zip(&costs)
            .map(|((step, status), cost)| {
                json!({
                    "step": step.name,
                    "kind": plan.decl_of(step).params.kind(),
                    "key": step.key.key().map(|k| k.to_hex()),
                    "status": status.label(),
                    "depends_on": step.deps.iter().map(|&d| plan.steps[d].name.clone()).collect::<Vec<_>>(),
                    "why": status.reasons(),
                    "cost": cost.as_ref().map(cost::to_json),
                    "points": plan.decl_of(step).points.iter().map(|&p| plan.experiment.sweep.point_label(p)).filter(|l| !l.is_empty()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let sources: serde_json::Map<_, _> = plan
            .sources
            .iter()
            .map(|(name, state)| (name.clone(), json!(common::source_state_label(state))))
            .collect();
        let known: Vec<f64> = costs.iter().flatten().filter_map(Cost::seconds).collect();
        let out = json!({
            "experiment": plan.experiment.meta.name,
            "file": plan.experiment.file,
            "backend": backend,
            "steps": steps,
            "sources": sources,
            "estimated_s": known.iter().sum::<f64>(),
            "sweep": sweep_json(&plan),
            "without_history": costs.iter().flatten().filter(|c| c.seconds().is_none()).count(),
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
    for ((step, status), cost) in plan.steps.iter().zip(&statuses).zip(&costs) {
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
        if let Some(cost) = cost {
            let estimate = format!("estimate: {}", cost::text(cost, backend));
            println!("  {:<9} {:<width$}  {:12}  {estimate}", "", "", "");
        }
    }
    let count = |f: fn(&StepStatus) -> bool| statuses.iter().filter(|s| f(s)).count();
    println!(
        "{} steps: {} cached, {}{} will run{}",
        statuses.len(),
        count(|s| matches!(s, StepStatus::Cached)),
        match count(|s| matches!(s, StepStatus::InRemote)) {
            0 => String::new(),
            n => format!("{n} in the remote cache, "),
        },
        count(|s| matches!(s, StepStatus::WillRun(_))),
        match count(|s| matches!(s, StepStatus::NeedsSources(_))) {
            0 => String::new(),
            n => format!(", {n} wait for sources to be fetched"),
        }
    );
    if let Some(line) = sweep_line(&plan) {
        println!("{line}");
    }
    if let Some(summary) = cost::summary(costs.iter().flatten(), backend) {
        println!("{summary}");
    }
    for (name, state) in &plan.sources {
        if let crate::plan::SourceState::MustFetch { what } = state {
            println!(
                "source `{name}` must be fetched: {what} (`xp run` downloads it; offline, populate the HF cache or use --set sources.{name}=/local/path)"
            );
        }
    }
    Ok(Success::Ok)
}

/// Steps the points would have on their own: a step counts once for each point it
/// belongs to (a report gathering three seeds stands for three reports).
fn steps_without_sharing(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .map(|s| plan.decl_of(s).points.len())
        .sum()
}

/// "sweep: 6 points (lr: 2 values, seed: 3 values); 44 steps where the points on
/// their own would have 66", for a swept experiment.
fn sweep_line(plan: &Plan) -> Option<String> {
    let sweep = &plan.experiment.sweep;
    if !sweep.is_swept() {
        return None;
    }
    let mut dimensions: Vec<String> = Vec::new();
    for axis in &sweep.axes {
        dimensions.push(format!("{}: {} values", axis.name, axis.values.len()));
    }
    Some(format!(
        "sweep: {} points ({}); {} steps where the points on their own would have {}",
        sweep.points.len(),
        dimensions.join(", "),
        plan.steps.len(),
        steps_without_sharing(plan)
    ))
}

fn sweep_json(plan: &Plan) -> Value {
    let sweep = &plan.experiment.sweep;
    if !sweep.is_swept() {
        return Value::Null;
    }
    json!({
        "axes": sweep.axes.iter().map(|a| json!({"name": a.name, "path": a.path, "values": a.values})).collect::<Vec<_>>(),
        "points": (0..sweep.points.len()).map(|p| sweep.point_label(p)).collect::<Vec<_>>(),
        "steps": plan.steps.len(),
        "steps_without_sharing": steps_without_sharing(plan),
    })
}
