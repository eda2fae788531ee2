//! Submitting: one `sbatch` job per step that is not cached, each running
//! `xp exec-step` against the shared store, chained with
//! `--dependency=afterok:<parents>` so that Slurm orders the DAG.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::commands::{JobId, SlurmCommands, job_comment};
use super::resources::{kind_default, sbatch_options};
use super::{SlurmError, Step, StepJob};
use crate::backend::{BackendKind, Precision};
use crate::digest::StepKey;
use crate::events::{EventSink, RunEvent};
use crate::exec::{ExecError, RunOptions};
use crate::plan::{KeyState, Plan};
use crate::store::{LookupOutcome, Store};

/// How a job runs xp on its node: every path absolute, so the job does not
/// depend on the directory it starts in (all must be on a filesystem every
/// node mounts).
#[derive(Clone, Debug)]
pub struct JobCommand {
    /// The `xp` binary (the submitting one: `std::env::current_exe()`).
    pub xp: PathBuf,
    /// The experiment file.
    pub file: PathBuf,
    /// `--set PATH=VALUE` given to the submitting `xp`, in order: the job
    /// recomputes the same keys only with the same overrides.
    pub overrides: Vec<String>,
    /// `--backend` given to the submitting `xp`.
    pub backend: Option<BackendKind>,
    /// `--precision` given to the submitting `xp`.
    pub precision: Option<Precision>,
}

impl JobCommand {
    /// The experiment file's directory, where jobs start.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }

    /// The batch script of one step: `exec` of `xp exec-step`.
    pub fn script(&self, store: &Path, step: &str, key: StepKey, forced: bool) -> String {
        let mut words = vec![
            quote(&self.xp.to_string_lossy()),
            "exec-step".into(),
            quote(&self.file.to_string_lossy()),
            "--step".into(),
            quote(step),
            "--expect-key".into(),
            key.to_hex(),
            "--cache-dir".into(),
            quote(&store.to_string_lossy()),
        ];
        for set in &self.overrides {
            words.push("--set".into());
            words.push(quote(set));
        }
        if let Some(backend) = self.backend {
            words.push("--backend".into());
            words.push(quote(backend.as_str()));
        }
        if let Some(precision) = self.precision {
            words.push("--precision".into());
            words.push(quote(precision.as_str()));
        }
        if forced {
            words.push("--rerun".into());
        }
        format!(
            "#!/bin/sh\n# xp: step `{step}` (key {})\nexec {}\n",
            key.to_hex(),
            words.join(" ")
        )
    }
}

/// A word for `sh`, single-quoted.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
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
    job: &JobCommand,
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
        let key = match &planned.key {
            KeyState::Known { key, .. } => *key,
            KeyState::Unknown { missing_sources } => {
                return Err(ExecError::UnknownKey {
                    step: planned.name.clone(),
                    missing: missing_sources.clone(),
                });
            }
        };
        let forced = options.rerun_all || options.rerun.contains(&planned.name);
        if !forced && matches!(store.lookup(&key)?, LookupOutcome::Hit(_)) {
            events.emit(RunEvent::StepCached {
                step: planned.name.clone(),
                key,
            });
            steps.push(Step::Cached);
            continue;
        }
        let name = &planned.name;
        if let Some(id) = queued.get(&key) {
            events.emit(RunEvent::StepWaiting {
                step: name.clone(),
                key,
                holder: format!("already queued as Slurm job {id}, not submitted again"),
            });
            steps.push(Step::Job(StepJob::new(
                index,
                key,
                id.clone(),
                forced,
                true,
            )));
            continue;
        }
        let parents: Vec<&str> = planned
            .deps
            .iter()
            .filter_map(|&d| match &steps[d] {
                Step::Job(parent) => Some(parent.id.as_str()),
                Step::Cached => None,
            })
            .collect();
        let decl = plan.decl(index);
        let resources = decl.resources.or(&kind_default(
            decl.params.resources(),
            plan.experiment.meta.backend,
        ));
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
        let script = job.script(store.root(), name, key, forced);
        let id = slurm.sbatch(&args, &script)?;
        events.emit(RunEvent::StepWaiting {
            step: name.clone(),
            key,
            holder: format!(
                "submitted as Slurm job {id} (log {})",
                log_path(store, experiment, name, key, &id).display()
            ),
        });
        steps.push(Step::Job(StepJob::new(index, key, id, forced, false)));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_exec_step_with_absolute_quoted_paths() {
        let job = JobCommand {
            xp: "/opt/xp/bin/xp".into(),
            file: "/shared/exp's dir/x.toml".into(),
            overrides: vec!["steps.b.block_size=8".into()],
            backend: Some(BackendKind::Cuda),
            precision: Some(Precision::Tf32),
        };
        let key = StepKey([1; 32]);
        let script = job.script(Path::new("/shared/cache"), "gen@1", key, true);
        assert!(script.starts_with("#!/bin/sh\n"));
        let exec = script.lines().last().unwrap();
        assert_eq!(
            exec,
            format!(
                "exec '/opt/xp/bin/xp' exec-step '/shared/exp'\\''s dir/x.toml' --step 'gen@1' \
                 --expect-key {} --cache-dir '/shared/cache' --set 'steps.b.block_size=8' \
                 --backend 'cuda' --precision 'tf32' --rerun",
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
