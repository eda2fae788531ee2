//! What several commands share: loading an experiment, planning it, and
//! comparing the plan with the store.

use std::collections::HashSet;

use crate::artifacts::labels::without_point;
use crate::exec::RunOptions;
use crate::plan::key::KeyInputs;
use crate::plan::sources::LocalOracle;
use crate::plan::why;
use crate::plan::{KeyState, Plan, PlannedInput, SourceState};
use crate::spec::{self, Experiment};
use crate::store::{Entry, Store};

use super::{CliError, ExperimentArgs, StoreArgs};

/// Loads the file with its `--set` overrides, then `--backend` and `--precision`
/// over them (typed: they were parsed once, by the command line).
pub fn load_experiment(args: &ExperimentArgs) -> Result<Experiment, CliError> {
    let mut experiment = spec::load(&args.file, &args.set)?;
    apply_command_line(&mut experiment, args);
    Ok(experiment)
}

/// What `xp plan` and `xp validate` say about a backend this binary cannot run:
/// a warning, not an error (a plan is made anywhere; `xp run` refuses).
pub fn warn_if_not_runnable(experiment: &Experiment) {
    if let Err(e) = experiment.meta.backend.check_runnable() {
        eprintln!("warning: {e}; `xp run` of this experiment will refuse to start here");
    }
}

/// Plans without touching the network: sources not available locally leave
/// the keys that depend on them unknown.
pub fn plan_offline(args: &ExperimentArgs) -> Result<Plan, CliError> {
    let experiment = load_experiment(args)?;
    Ok(Plan::build(experiment, &LocalOracle)?)
}

/// `--backend` and `--precision` over an experiment loaded some other way (from a
/// git revision).
pub fn apply_command_line(experiment: &mut Experiment, args: &ExperimentArgs) {
    if let Some(backend) = args.backend {
        experiment.meta.backend = backend;
    }
    if let Some(precision) = args.precision {
        experiment.meta.precision = precision;
    }
}

/// Every published entry of the store (none without a store).
pub fn entries(store: Option<&Store>) -> Result<Vec<Entry>, CliError> {
    Ok(match store {
        Some(store) => store.entries()?.entries,
        None => Vec::new(),
    })
}

/// The store at an absolute path: step outputs handed to steps stay valid
/// whatever directory a step works in.
pub fn open_store(args: &StoreArgs) -> Result<Store, CliError> {
    let root = std::path::absolute(&args.cache_dir).map_err(|source| CliError::Io {
        context: format!("cannot resolve the store path {}", args.cache_dir.display()),
        source,
    })?;
    Ok(Store::open(&root)?)
}

/// Read-only commands must not create a store where there is none.
pub fn open_store_if_exists(args: &StoreArgs) -> Result<Option<Store>, CliError> {
    if args.cache_dir.exists() {
        open_store(args).map(Some)
    } else {
        Ok(None)
    }
}

pub fn run_options(plan: &Plan, rerun: &[String], rerun_all: bool) -> Result<RunOptions, CliError> {
    let mut forced = std::collections::HashSet::new();
    for name in rerun {
        // A step's full name, or its name in the file: every sweep point's step.
        let indices: Vec<usize> = match plan.index_of(name) {
            Some(index) => vec![index],
            None => (0..plan.steps.len())
                .filter(|&i| without_point(&plan.steps[i].name) == name)
                .collect(),
        };
        if indices.is_empty() {
            let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
            return Err(CliError::Usage(format!(
                "error: --rerun {name}: no step of that name; the steps are: {}",
                names.join(", ")
            )));
        }
        for index in indices {
            // A forced step's dependents are keyed by its key, not by what it
            // produced: force them too, or they would keep results from before.
            forced.insert(plan.steps[index].name.clone());
            forced.extend(
                plan.descendants(index)
                    .into_iter()
                    .map(|d| plan.steps[d].name.clone()),
            );
        }
    }
    Ok(RunOptions {
        rerun: forced,
        rerun_all,
        push: false,
    })
}

/// A step's status in the light of the store.
#[derive(Clone, Debug)]
pub enum StepStatus {
    Cached,
    /// Why it will run, one reason a line.
    WillRun(Vec<String>),
    /// Its key depends on these sources, which must be fetched first.
    NeedsSources(Vec<String>),
    /// Not in the store but in its remote cache: `xp run` downloads it.
    InRemote,
}

impl StepStatus {
    pub fn label(&self) -> &'static str {
        match self {
            StepStatus::Cached => "cached",
            StepStatus::WillRun(_) => "run",
            StepStatus::NeedsSources(_) => "fetch",
            StepStatus::InRemote => "pull",
        }
    }

    pub fn reasons(&self) -> Vec<String> {
        match self {
            StepStatus::Cached => vec![],
            StepStatus::InRemote => {
                vec!["in the remote cache: `xp run` downloads it instead of running it".into()]
            }
            StepStatus::WillRun(reasons) => reasons.clone(),
            StepStatus::NeedsSources(sources) => {
                vec![format!(
                    "key unknown until source(s) {} are fetched",
                    sources.join(", ")
                )]
            }
        }
    }
}

pub fn statuses(
    plan: &Plan,
    store: Option<&Store>,
    options: &RunOptions,
) -> Result<Vec<StepStatus>, CliError> {
    Ok(statuses_of(plan, &entries(store)?, options))
}

/// Marks the steps that would run but that `remote` has (unless forced). A
/// remote that cannot be asked is a warning: the plan stands without it.
pub fn mark_in_remote(
    plan: &Plan,
    statuses: &mut [StepStatus],
    remote: &crate::remote::Remote,
    options: &RunOptions,
) {
    for (step, status) in plan.steps.iter().zip(statuses.iter_mut()) {
        let Some(key) = step.key.key() else { continue };
        if !matches!(status, StepStatus::WillRun(_)) || options.forced(&step.name) {
            continue;
        }
        match crate::store::in_remote(remote, &key) {
            Ok(true) => *status = StepStatus::InRemote,
            Ok(false) => {}
            Err(e) => {
                eprintln!("warning: {e}; the plan does not say what the remote cache holds");
                return;
            }
        }
    }
}

/// [`statuses`] against entries already read.
pub fn statuses_of(plan: &Plan, entries: &[Entry], options: &RunOptions) -> Vec<StepStatus> {
    let cached: HashSet<_> = entries.iter().map(|e| e.key).collect();
    let mut out: Vec<StepStatus> = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let status = match &step.key {
            KeyState::Unknown { missing_sources } => {
                StepStatus::NeedsSources(missing_sources.clone())
            }
            KeyState::Known { .. } if options.rerun_all || options.rerun.contains(&step.name) => {
                StepStatus::WillRun(vec!["forced by --rerun".into()])
            }
            KeyState::Known { key, .. } if cached.contains(key) => StepStatus::Cached,
            KeyState::Known { inputs, .. } => {
                let candidates: Vec<KeyInputs> = entries
                    .iter()
                    .filter(|e| e.manifest.step == step.name)
                    .filter_map(|e| serde_json::from_value(e.manifest.key_inputs.clone()).ok())
                    .collect();
                let will_run = |p: usize| matches!(out[p], StepStatus::WillRun(_));
                let reasons = match why::closest(inputs, &candidates) {
                    None => vec!["never run".to_string()],
                    Some((_, changes)) => changes
                        .iter()
                        .map(|change| describe_change(plan, step, change, &will_run, "will run"))
                        .collect(),
                };
                StepStatus::WillRun(reasons)
            }
        };
        out.push(status);
    }
    out
}

/// An input change is best explained by its producer ("`blocks` will run": `verb`
/// says what happens to a producer for which `producer_changed` holds) or, for a
/// source, by naming it: "input `inputs.script` (file:scripts/f.py) changed".
pub fn describe_change(
    plan: &Plan,
    step: &crate::plan::PlannedStep,
    change: &why::Change,
    producer_changed: &dyn Fn(usize) -> bool,
    verb: &str,
) -> String {
    let Some(label) = change.path.strip_prefix("inputs.") else {
        return change.to_string();
    };
    // The planned inputs and references behind `label`: a whole slot, or one
    // entry of a map slot (`inputs.script`).
    let mut planned = Vec::new();
    let mut references = Vec::new();
    let decl_slots = plan.decl_of(step).params.inputs();
    for (slot, (_, inputs)) in decl_slots.iter().zip(&step.inputs) {
        let labels = slot.labels();
        for (i, (reference, input)) in slot.refs.iter().zip(inputs).enumerate() {
            if labels.get(i).unwrap_or(&labels[0]) == label {
                planned.push(input);
                references.push(reference.as_str());
            }
        }
    }
    let producers: Vec<String> = planned
        .iter()
        .filter_map(|input| match input {
            PlannedInput::Output { step, .. } if producer_changed(*step) => {
                Some(format!("`{}`", plan.steps[*step].name))
            }
            _ => None,
        })
        .collect();
    if !producers.is_empty() {
        return format!("input `{label}`: {} {verb}", producers.join(", "));
    }
    let show = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::Array(items)) if items.len() == 1 => match &items[0] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        Some(v) => v.to_string(),
        None => "(unset)".to_string(),
    };
    let what = match references.as_slice() {
        [one] => format!(" ({one})"),
        _ => String::new(),
    };
    format!(
        "input `{label}`{what} changed: {} → {}",
        show(&change.old),
        show(&change.new)
    )
}

pub fn source_state_label(state: &SourceState) -> String {
    match state {
        SourceState::Ready { digest } => format!("ready {}", digest.short()),
        SourceState::MustFetch { what } => format!("must fetch: {what}"),
        SourceState::Absent { what } => format!("absent: {what}"),
    }
}
