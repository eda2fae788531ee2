//! Submitting: one `sbatch` job per step that is not cached, each running
//! `xp exec-step` against the shared store, chained with
//! `--dependency=afterok:<parents>` so that Slurm orders the DAG.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::commands::{JobId, SlurmCommands, job_comment};
use super::resources::{kind_default, sbatch_options};
use super::{SlurmError, Step, StepJob};
use crate::digest::StepKey;
use crate::events::{EventSink, RunEvent};
use crate::exec::{ExecError, RunOptions, StepCommand, answered_by_store, known_key};
use crate::plan::Plan;
use crate::store::{Attempt, Store};

/// The batch script of one step: `exec` of `xp exec-step`.
pub fn script(
    command: &StepCommand,
    store: &Path,
    step: &str,
    key: StepKey,
    forced: bool,
    earlier: &[Attempt],
) -> String {
    let words: Vec<String> = std::iter::once(command.xp.to_string_lossy().into_owned())
        .chain(command.args(store, step, key, forced, earlier))
        .map(|w| quote(&w))
        .collect();
    format!(
        "#!/bin/sh\n# xp: step `{step}` (key {})\nexec {}\n",
        key.to_hex(),
        words.join(" ")
    )
}

/// A word for `sh`: as it is when every character is plain, else single-quoted.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=./:".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Where the log of `step`'s job `job` goes: `<store>/slurm/<experiment>/<step>.<key12>.<job>.log`
/// (`job` may be Slurm's `%j`). The store is on the shared filesystem, so
/// the submitting host reads what the node wrote.
pub fn log_path(store: &Store, experiment: &str, step: &str, key: StepKey, job: &str) -> PathBuf {
    store.job_log(EXECUTOR, &file_safe(experiment), step, &key, job)
}

/// `<store>/slurm/<experiment>/`.
pub fn log_dir(store: &Store, experiment: &str) -> PathBuf {
    store.job_logs_dir(EXECUTOR, &file_safe(experiment))
}

/// This executor's directory in the store (see [`Store::job_logs_dir`]).
const EXECUTOR: &str = "slurm";

/// The experiment name as one path component and one job-name word.
pub(super) fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Decides for every step of the plan: cached, already queued (a job of an
/// earlier `xp run`), or submitted now. Jobs are submitted in plan order, so
/// a step's parents have their job ids when it is submitted.
pub(super) fn submit_all(
    plan: &Plan,
    store: &Store,
    options: &RunOptions,
    job: &StepCommand,
    slurm: &SlurmCommands,
    events: &dyn EventSink,
) -> Result<Vec<Step>, ExecError> {
    // The queue first, then the store: a job that finishes in between is then
    // seen in the store, never missed by both.
    let queued: HashMap<StepKey, JobId> = slurm
        .queued_jobs()?
        .into_iter()
        .filter(|q| q.store == store.root())
        .map(|q| (q.key, q.id))
        .collect();
    let experiment = &plan.experiment.meta.name;
    std::fs::create_dir_all(log_dir(store, experiment)).map_err(|source| SlurmError::Logs {
        dir: log_dir(store, experiment),
        source,
    })?;
    let mut steps: Vec<Step> = Vec::with_capacity(plan.steps.len());
    for (index, planned) in plan.steps.iter().enumerate() {
        let (key, _) = known_key(planned)?;
        let forced = options.forced(&planned.name);
        if answered_by_store(store, &planned.name, key, forced, events)? {
            steps.push(Step::Cached);
            continue;
        }
        let parents: Vec<JobId> = planned
            .deps
            .iter()
            .filter_map(|&d| match &steps[d] {
                Step::Job(parent) => Some(parent.id.clone()),
                Step::Cached => None,
            })
            .collect();
        let time = plan_resources(plan, index).time;
        let (id, adopted) = match queued.get(&key) {
            Some(id) => {
                events.emit(RunEvent::StepWaiting {
                    step: planned.name.clone(),
                    key,
                    holder: format!("already queued as Slurm job {id}, not submitted again"),
                });
                (id.clone(), true)
            }
            None => {
                let id = submit_one(
                    plan,
                    store,
                    job,
                    slurm,
                    index,
                    &parents,
                    time.as_deref(),
                    forced,
                    &[],
                    events,
                )?;
                (id, false)
            }
        };
        let mut submitted = StepJob::new(index, key, id, forced, adopted);
        submitted.parents = parents;
        submitted.time = time;
        steps.push(Step::Job(submitted));
    }
    Ok(steps)
}

/// What step `index`'s job asks for: the file's resources over the kind's.
fn plan_resources(plan: &Plan, index: usize) -> crate::spec::Resources {
    let decl = plan.decl(index);
    decl.resources.or(&kind_default(
        decl.params.resources(),
        plan.experiment.meta.backend,
    ))
}

/// Submits step `index` as one job, after the jobs `parents`, with time limit
/// `time` (the step's, or a retry's doubled one); `earlier` are its attempts
/// whose jobs Slurm stopped, for its manifest. Returns the job's id.
#[allow(clippy::too_many_arguments)]
pub(super) fn submit_one(
    plan: &Plan,
    store: &Store,
    job: &StepCommand,
    slurm: &SlurmCommands,
    index: usize,
    parents: &[JobId],
    time: Option<&str>,
    forced: bool,
    earlier: &[Attempt],
    events: &dyn EventSink,
) -> Result<JobId, ExecError> {
    let planned = &plan.steps[index];
    let name = &planned.name;
    let key = planned.key.key().ok_or_else(|| ExecError::UnknownKey {
        step: name.clone(),
        missing: Vec::new(),
    })?;
    let experiment = &plan.experiment.meta.name;
    let mut resources = plan_resources(plan, index);
    resources.time = time.map(str::to_string);
    let mut args = vec![
        format!("--job-name={}:{name}", file_safe(experiment)),
        format!("--comment={}", job_comment(&key, store.root())),
        format!(
            "--output={}",
            log_path(store, experiment, name, key, "%j").display()
        ),
        format!("--chdir={}", job.dir().display()),
        "--kill-on-invalid-dep=yes".into(),
    ];
    if !parents.is_empty() {
        args.push(format!("--dependency=afterok:{}", parents.join(":")));
    }
    args.extend(sbatch_options(&resources));
    let script = script(job, store.root(), name, key, forced, earlier);
    let id = slurm.sbatch(&args, &script)?;
    events.emit(RunEvent::StepWaiting {
        step: name.clone(),
        key,
        holder: format!(
            "submitted as Slurm job {id} (log {})",
            log_path(store, experiment, name, key, &id).display()
        ),
    });
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendKind, Precision};

    #[test]
    fn the_script_runs_exec_step_with_absolute_quoted_paths() {
        let job = StepCommand {
            xp: "/opt/xp/bin/xp".into(),
            file: "/shared/exp's dir/x.toml".into(),
            overrides: vec!["steps.b.block_size=8".into()],
            backend: Some(BackendKind::Cuda),
            precision: Some(Precision::Tf32),
            remote: None,
            push: false,
            node_store: None,
        };
        let key = StepKey([1; 32]);
        let script = script(&job, Path::new("/shared/cache"), "gen@1", key, true, &[]);
        assert!(script.starts_with("#!/bin/sh\n"));
        let exec = script.lines().last().unwrap();
        assert_eq!(
            exec,
            format!(
                "exec /opt/xp/bin/xp exec-step '/shared/exp'\\''s dir/x.toml' --step 'gen@1' \
                 --expect-key {} --cache-dir /shared/cache --set steps.b.block_size=8 \
                 --backend cuda --precision tf32 --rerun",
                key.to_hex()
            )
        );
    }

    #[test]
    fn names_become_safe_path_components() {
        assert_eq!(file_safe("model collapse/v2"), "model_collapse_v2");
        assert_eq!(file_safe("mini"), "mini");
    }
}
