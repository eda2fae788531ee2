//! The Slurm client commands xp uses (`sbatch`, `squeue`, `sacct`), run as
//! child processes, and the parsing of what they print. Only these commands
//! talk to Slurm: no library, no REST API, so any Slurm a user can submit to
//! from a shell works.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::SlurmError;
use crate::digest::StepKey;

/// A Slurm job id (`12345`; an array task would be `12345_7`, which xp does
/// not submit).
pub type JobId = String;

/// The prefix of the `--comment` xp gives every job: `xp-key=<key hex>
/// store=<store root>`. It lets a later `xp run` find the jobs already queued
/// for a key in its store.
pub const KEY_COMMENT: &str = "xp-key=";
const STORE_COMMENT: &str = " store=";

/// The `--comment` of the job computing `key` into the store at `store`.
pub fn job_comment(key: &StepKey, store: &Path) -> String {
    format!(
        "{KEY_COMMENT}{}{STORE_COMMENT}{}",
        key.to_hex(),
        store.display()
    )
}

/// A job's state as Slurm reports it (`JobState`), reduced to what xp acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting: `reason` is Slurm's (`Dependency`, `Resources`, `Priority`...).
    Pending { reason: String },
    /// Running, or starting, completing, suspended: not finished.
    Running,
    /// Exited 0.
    Completed,
    /// Cancelled (`scancel`, or a dependency that can never be satisfied).
    Cancelled { reason: String },
    /// Failed, timed out, out of memory, node failure...: the state's name.
    Failed { state: String },
}

impl JobState {
    /// Parses squeue's `%T` (or sacct's `State`) and `%r`.
    pub fn parse(state: &str, reason: &str) -> JobState {
        // sacct writes "CANCELLED by 0".
        let state = state.split_whitespace().next().unwrap_or_default();
        match state {
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" => {
                JobState::Pending {
                    reason: reason.to_string(),
                }
            }
            "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "RESIZING" | "SIGNALING"
            | "STAGE_OUT" | "STOPPED" => JobState::Running,
            "COMPLETED" => JobState::Completed,
            "CANCELLED" => JobState::Cancelled {
                reason: reason.to_string(),
            },
            other => JobState::Failed {
                state: other.to_string(),
            },
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled { .. } | JobState::Failed { .. }
        )
    }
}

/// One job of ours still in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: JobId,
    pub key: StepKey,
    /// The store root the job publishes into.
    pub store: PathBuf,
    pub state: JobState,
}

/// Runs the Slurm client commands found on `PATH`.
#[derive(Clone, Debug, Default)]
pub struct SlurmCommands;

impl SlurmCommands {
    /// `sbatch --parsable ARGS` with the batch `script` on stdin; the new job's id.
    pub fn sbatch(&self, args: &[String], script: &str) -> Result<JobId, SlurmError> {
        let mut child = Command::new("sbatch")
            .arg("--parsable")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SlurmError::Spawn {
                command: "sbatch".into(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|source| SlurmError::Spawn {
                    command: "sbatch".into(),
                    source,
                })?;
        }
        let output = child
            .wait_with_output()
            .map_err(|source| SlurmError::Spawn {
                command: "sbatch".into(),
                source,
            })?;
        let command = format!("sbatch {}", args.join(" "));
        if !output.status.success() {
            return Err(SlurmError::Failed {
                command,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        parse_job_id(&String::from_utf8_lossy(&output.stdout)).ok_or_else(|| {
            SlurmError::Unexpected {
                command,
                output: String::from_utf8_lossy(&output.stdout).into_owned(),
            }
        })
    }

    /// This user's jobs still queued (pending or running) that xp submitted,
    /// by key. A job whose dependency can never be satisfied is left out: it
    /// will never produce its key.
    pub fn queued_jobs(&self) -> Result<Vec<QueuedJob>, SlurmError> {
        let args = ["-h", "--me", "-o", "%i|%T|%r|%k"];
        let text = self.run("squeue", &args)?;
        Ok(parse_queued(&text))
    }

    /// The states of `ids` (finished ones included while Slurm still lists
    /// them). Jobs Slurm has forgotten are absent from the map.
    pub fn states(&self, ids: &[JobId]) -> Result<HashMap<JobId, JobState>, SlurmError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let list = ids.join(",");
        let args = ["-h", "--states=all", "-j", &list, "-o", "%i|%T|%r"];
        match self.run("squeue", &args) {
            Ok(text) => Ok(parse_states(&text)),
            // Every id unknown to squeue: none of them is listed.
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => {
                Ok(HashMap::new())
            }
            Err(other) => Err(other),
        }
    }

    /// The final state of a job squeue no longer lists, from accounting
    /// (`sacct`); `None` where there is no accounting or it does not know.
    pub fn accounted_state(&self, id: &str) -> Option<JobState> {
        let args = ["-n", "-P", "-X", "-j", id, "-o", "JobID,State"];
        let text = self.run("sacct", &args).ok()?;
        text.lines().find_map(|line| {
            let (job, state) = line.split_once('|')?;
            (job == id).then(|| JobState::parse(state, ""))
        })
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<String, SlurmError> {
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SlurmError::Spawn {
                command: program.into(),
                source,
            })?;
        if !output.status.success() {
            return Err(SlurmError::Failed {
                command: format!("{program} {}", args.join(" ")),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// `sbatch --parsable` prints `id` or `id;cluster`.
fn parse_job_id(stdout: &str) -> Option<JobId> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// Lines `id|state|reason|comment`; only jobs with an xp key comment.
fn parse_queued(text: &str) -> Vec<QueuedJob> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, '|');
            let (id, state, reason, comment) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let (key, store) = comment.trim_end().strip_prefix(KEY_COMMENT)?.split_once(STORE_COMMENT)?;
            let key = key.parse().ok()?;
            let state = JobState::parse(state, reason);
            let dead = matches!(&state, JobState::Pending { reason } if reason == "DependencyNeverSatisfied");
            (!dead && !state.is_finished()).then(|| QueuedJob {
                id: id.trim().to_string(),
                key,
                store: PathBuf::from(store),
                state,
            })
        })
        .collect()
}

/// Lines `id|state|reason`.
fn parse_states(text: &str) -> HashMap<JobId, JobState> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '|');
            let (id, state, reason) = (fields.next()?, fields.next()?, fields.next()?);
            Some((
                id.trim().to_string(),
                JobState::parse(state.trim(), reason.trim()),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_parsable_output_gives_the_id() {
        assert_eq!(parse_job_id("123\n").as_deref(), Some("123"));
        assert_eq!(parse_job_id("77;cluster2\n").as_deref(), Some("77"));
        assert_eq!(parse_job_id("Submitted batch job 5\n"), None);
        assert_eq!(parse_job_id(""), None);
    }

    #[test]
    fn queued_jobs_are_ours_alive_and_keyed() {
        let key = StepKey([7; 32]);
        let ours = job_comment(&key, Path::new("/shared/a b|c/cache"));
        let text = format!(
            "10|PENDING|Dependency|{ours}\n\
             11|RUNNING|None|{ours}\n\
             12|PENDING|DependencyNeverSatisfied|{ours}\n\
             13|RUNNING|None|(null)\n\
             14|RUNNING|None|{KEY_COMMENT}not-a-key store=/x\n\
             15|COMPLETED|None|{ours}\n"
        );
        let jobs = parse_queued(&text);
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["10", "11"]);
        assert!(jobs.iter().all(|j| j.key == key));
        assert!(
            jobs.iter()
                .all(|j| j.store == Path::new("/shared/a b|c/cache"))
        );
        assert_eq!(
            jobs[0].state,
            JobState::Pending {
                reason: "Dependency".into()
            }
        );
    }

    #[test]
    fn states_map_slurm_names() {
        let states = parse_states(
            "1|COMPLETED|None\n2|FAILED|NonZeroExitCode\n3|CANCELLED|DependencyNeverSatisfied\n4|OUT_OF_MEMORY|None\n5|COMPLETING|None\n",
        );
        assert_eq!(states["1"], JobState::Completed);
        assert_eq!(
            states["2"],
            JobState::Failed {
                state: "FAILED".into()
            }
        );
        assert!(
            matches!(&states["3"], JobState::Cancelled { reason } if reason == "DependencyNeverSatisfied")
        );
        assert!(states["4"].is_finished());
        assert_eq!(states["5"], JobState::Running);
        assert!(matches!(
            JobState::parse("CANCELLED by 0", ""),
            JobState::Cancelled { .. }
        ));
    }
}
