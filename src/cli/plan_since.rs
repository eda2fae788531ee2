//! `xp plan FILE --since REV`: what a change since a git revision invalidates.
//!
//! The experiment is planned twice with this binary's kinds: as the file and the
//! repository files it reads were at REV (read from git, nothing checked out),
//! and as they are now. Every step whose key differs is listed with why, whether
//! the new key is already in the store, and how long it should take. Exit code 6
//! says "something to rerun", 0 "nothing invalidated", so CI can tell them apart.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::CliError;
use super::common;
use super::cost::{self, PlanPaths};
use super::exit::Success;
use super::plan::PlanArgs;
use crate::plan::compare::{self, Comparison, Reason};
use crate::plan::sources::RevisionOracle;
use crate::plan::{Plan, PlannedInput, SourceState};
use crate::source::{Files, GitRevision};
use crate::spec;
use crate::store::{Cost, History};

/// One invalidated step, ready to print.
struct Row {
    step: usize,
    label: &'static str,
    why: Vec<String>,
    in_store: bool,
    /// Not in the store but in its remote cache (`xp run` downloads it).
    in_remote: bool,
    /// `None` when the new key is in the store: nothing to estimate.
    cost: Option<Cost>,
}

pub fn run(args: &PlanArgs, rev: &str) -> Result<Success, CliError> {
    let new = common::plan_offline(&args.experiment)?;
    common::warn_if_not_runnable(&new.experiment);
    let file = &args.experiment.file;
    let revision = GitRevision::open(&new.experiment.dir, rev)
        .map_err(|e| CliError::Usage(format!("error: --since {rev}: {e}")))?;
    let at = revision.describe();
    let oracle = RevisionOracle::new(&revision);
    let old = old_plan(args, &revision, &oracle)?;
    let comparison = compare::compare(old.as_ref(), &new);

    let store = common::open_store_if_exists(&args.store)?;
    let entries = common::entries(store.as_ref())?;
    let cached: HashSet<_> = entries.iter().map(|e| e.key).collect();
    let history = History::new(&entries);
    let paths = PlanPaths::of(&new);
    let remote = super::remote::connect(&args.remote, Some(&new.experiment))?;
    let in_remote = |key: crate::digest::StepKey| {
        remote.as_ref().is_some_and(|(remote, _)| {
            crate::store::in_remote(remote, &key).unwrap_or_else(|e| {
                eprintln!("warning: {e}");
                false
            })
        })
    };
    let invalidated: HashSet<usize> = comparison.invalidated.iter().map(|i| i.step).collect();
    let rows: Vec<Row> = comparison
        .invalidated
        .iter()
        .map(|inv| {
            let key = new.steps[inv.step].key.key();
            let in_store = key.is_some_and(|k| cached.contains(&k));
            let in_remote = !in_store && key.is_some_and(in_remote);
            let cost =
                (!in_store && !in_remote).then(|| cost::estimate(&new, inv.step, &history, &paths));
            Row {
                step: inv.step,
                label: label(&inv.reason),
                why: reasons(&inv.reason, inv.step, &new, old.as_ref(), &invalidated),
                in_store,
                in_remote,
                cost,
            }
        })
        .collect();
    let backend = new.experiment.meta.backend.as_str();
    for note in oracle.notes() {
        eprintln!("note: {note}");
    }

    if args.json {
        print_json(
            &new,
            old.as_ref(),
            &revision,
            &comparison,
            &rows,
            &oracle.notes(),
        );
    } else {
        print_text(&new, old.is_some(), &at, &comparison, &rows, backend, file);
    }
    Ok(if comparison.invalidated.is_empty() {
        Success::Ok
    } else {
        Success::Invalidated
    })
}

/// The plan of the experiment file as it was at the revision, read with this
/// binary's kinds and the same `--set`, `--backend` and `--precision`; `None`
/// when the file did not exist then.
fn old_plan(
    args: &PlanArgs,
    revision: &GitRevision,
    oracle: &RevisionOracle,
) -> Result<Option<Plan>, CliError> {
    let file = &args.experiment.file;
    let at = revision.describe();
    let bytes = revision.read(file).map_err(|source| CliError::Io {
        context: format!("cannot read {} at {at}", file.display()),
        source,
    })?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::Usage(format!(
            "error: {} at {at} is not UTF-8 text, so it cannot be compared; pick another --since",
            file.display()
        ))
    })?;
    let not_loading = |e: &dyn std::fmt::Display| {
        CliError::Usage(format!(
            "error: {} as it was at {at} cannot be planned by this xp, so there is nothing \
             to compare with (pick a later --since, or check that commit out and fix it):\n{e}",
            file.display()
        ))
    };
    let mut experiment =
        spec::load_str(&text, file, &args.experiment.set).map_err(|e| not_loading(&e))?;
    common::apply_command_line(&mut experiment, &args.experiment);
    Plan::build(experiment, oracle)
        .map(Some)
        .map_err(|e| not_loading(&e))
}

fn label(reason: &Reason) -> &'static str {
    match reason {
        Reason::NewStep => "new",
        Reason::UnknownBefore { .. } => "new",
        Reason::UnknownNow { .. } => "unknown",
        Reason::Changed(_) => "changed",
    }
}

/// Why a step is invalidated, one reason a line.
fn reasons(
    reason: &Reason,
    step: usize,
    new: &Plan,
    old: Option<&Plan>,
    invalidated: &HashSet<usize>,
) -> Vec<String> {
    let states = |plan: Option<&Plan>, sources: &[String]| -> String {
        sources
            .iter()
            .map(|name| match plan.and_then(|p| p.sources.get(name)) {
                Some(SourceState::Absent { what } | SourceState::MustFetch { what }) => {
                    format!("source `{name}`: {what}")
                }
                _ => format!("source `{name}`"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match reason {
        Reason::NewStep => vec!["new step".into()],
        Reason::UnknownBefore { sources } => {
            vec![format!("no key then: {}", states(old, sources))]
        }
        Reason::UnknownNow { sources } => vec![format!(
            "key unknown until fetched: {}",
            states(Some(new), sources)
        )],
        Reason::Changed(changes) => {
            let planned = &new.steps[step];
            let producer_changed = |p: usize| invalidated.contains(&p);
            changes
                .iter()
                .map(|change| {
                    let slot = change.path.strip_prefix("inputs.");
                    match slot.and_then(|slot| changed_sources(new, old, planned, slot)) {
                        Some(text) => text,
                        None => common::describe_change(
                            new,
                            planned,
                            change,
                            &producer_changed,
                            "changed",
                        ),
                    }
                })
                .collect()
        }
    }
}

/// `input `data`: source `corpus` changed` when a source read by `slot` has
/// another content now.
fn changed_sources(
    new: &Plan,
    old: Option<&Plan>,
    step: &crate::plan::PlannedStep,
    slot: &str,
) -> Option<String> {
    let old = old?;
    let names: Vec<String> = step
        .inputs
        .iter()
        .filter(|(s, _)| *s == slot)
        .flat_map(|(_, inputs)| inputs)
        .filter_map(|input| match input {
            PlannedInput::Source { name } if old.sources.get(name) != new.sources.get(name) => {
                let value = &new.experiment.sources[name].value;
                Some(format!("source `{name}` (`{value}`)"))
            }
            _ => None,
        })
        .collect();
    (!names.is_empty()).then(|| format!("input `{slot}`: {} changed", names.join(", ")))
}

fn print_text(
    new: &Plan,
    existed: bool,
    at: &str,
    comparison: &Comparison,
    rows: &[Row],
    backend: &str,
    file: &std::path::Path,
) {
    println!(
        "changes to `{}` ({}) since {at}",
        new.experiment.meta.name,
        file.display()
    );
    if !existed {
        println!(
            "  {} did not exist at {at}: every step is new",
            file.display()
        );
    }
    let width = rows
        .iter()
        .map(|r| new.steps[r.step].name.len())
        .max()
        .unwrap_or(4);
    for row in rows {
        let step = &new.steps[row.step];
        let key = step
            .key
            .key()
            .map(|k| k.short())
            .unwrap_or_else(|| "?".repeat(12));
        let status = match (&row.cost, row.in_store) {
            (_, true) => "already in the store".to_string(),
            _ if row.in_remote => "in the remote cache (`xp run` downloads it)".to_string(),
            (Some(cost), false) => format!("to run, {}", cost::text(cost, backend)),
            (None, false) => "to run".to_string(),
        };
        println!("  {:<7} {:<width$}  {key}  {status}", row.label, step.name);
        for why in &row.why {
            println!("  {:<7} {:<width$}  {:12}  {why}", "", "", "");
        }
    }
    for (from, to) in &comparison.renamed {
        println!("  renamed `{from}` → `{to}` (same key: nothing to rerun)");
    }
    for name in &comparison.removed {
        println!("  removed `{name}`");
    }
    let n = comparison.invalidated.len();
    if n == 0 {
        println!(
            "nothing invalidated: {} step{} unchanged",
            comparison.unchanged,
            if comparison.unchanged == 1 { "" } else { "s" }
        );
        return;
    }
    let in_store = rows.iter().filter(|r| r.in_store).count();
    let mut summary = format!(
        "{n} of {} steps invalidated, {in_store} already in the store",
        new.steps.len()
    );
    let in_remote = rows.iter().filter(|r| r.in_remote).count();
    if in_remote > 0 {
        summary.push_str(&format!(", {in_remote} in the remote cache"));
    }
    if let Some(time) = cost::summary(rows.iter().filter_map(|r| r.cost.as_ref()), backend) {
        summary.push_str("; ");
        summary.push_str(&time);
    }
    println!("{summary}");
}

fn print_json(
    new: &Plan,
    old: Option<&Plan>,
    revision: &GitRevision,
    comparison: &Comparison,
    rows: &[Row],
    notes: &[String],
) {
    let invalidated: Vec<Value> = comparison
        .invalidated
        .iter()
        .zip(rows)
        .map(|(inv, row)| {
            let step = &new.steps[inv.step];
            let old_key = inv
                .old_step
                .and_then(|i| old?.steps[i].key.key())
                .map(|k| k.to_hex());
            let changes: Vec<Value> = match &inv.reason {
                Reason::Changed(changes) => changes
                    .iter()
                    .map(|c| json!({"path": c.path, "old": c.old, "new": c.new}))
                    .collect(),
                _ => Vec::new(),
            };
            json!({
                "step": step.name,
                "kind": new.decl_of(step).params.kind(),
                "status": row.label,
                "key": step.key.key().map(|k| k.to_hex()),
                "old_key": old_key,
                "why": row.why,
                "changes": changes,
                "in_store": row.in_store,
                "in_remote": row.in_remote,
                "cost": row.cost.as_ref().map(cost::to_json),
            })
        })
        .collect();
    let costs: Vec<&Cost> = rows.iter().filter_map(|r| r.cost.as_ref()).collect();
    let out = json!({
        "experiment": new.experiment.meta.name,
        "file": new.experiment.file,
        "backend": new.experiment.meta.backend.as_str(),
        "since": {
            "rev": revision.rev(),
            "commit": revision.commit(),
            "file_existed": old.is_some(),
        },
        "steps": new.steps.len(),
        "invalidated": invalidated,
        "unchanged": comparison.unchanged,
        "removed": comparison.removed,
        "renamed": comparison.renamed.iter().map(|(from, to)| json!({"from": from, "to": to})).collect::<Vec<_>>(),
        "estimated_s": costs.iter().filter_map(|c| c.seconds()).sum::<f64>(),
        "without_history": costs.iter().filter(|c| c.seconds().is_none()).count(),
        "notes": notes,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
}
