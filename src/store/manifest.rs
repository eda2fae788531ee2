//! `manifest.json`: what an entry is, how it was made, and the digest of
//! every output file. Written once at publish time, never modified.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, Precision};
use crate::digest::{ContentDigest, StepKey};
use crate::events::WorkTiming;

use super::error::{StoreError, io_err};

/// Version of the manifest schema; bump when a field changes meaning.
pub const MANIFEST_VERSION: u32 = 1;

/// How the step that produced an entry ended. Only steps that produced their
/// outputs are published, so this says how they got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ran from start to finish in one go.
    Completed,
    /// Finished after resuming from a checkpoint in its scratch directory.
    Resumed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Resumed => "resumed",
        }
    }
}

/// One start of a step's process. A step with `retry` is started again when its
/// process is killed; the manifest lists every start, the published one last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first start.
    pub attempt: u32,
    /// How it ended: `completed` or `resumed` for the published one, else why its
    /// process died (`killed by signal 9`, `Slurm job 12 ended PREEMPTED`).
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// One output file as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Size in bytes.
    pub size: u64,
    /// blake3 of the content.
    pub digest: ContentDigest,
    /// Modification time in nanoseconds since the Unix epoch, for the cheap
    /// check on lookup (a file whose size and mtime match is trusted).
    pub mtime_ns: i64,
}

/// What the caller knows about a finished step; the store adds the outputs,
/// the finishing time, host, user and version when it publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestInfo {
    /// Step name in the experiment (e.g. `finetune@1`); `xp plan` finds the
    /// closest cached entry of the same name through it.
    pub step: String,
    /// Step kind (e.g. `finetune`).
    pub kind: String,
    /// Implementation version of the kind.
    pub kind_version: u32,
    /// Name of the experiment that ran it.
    pub experiment: String,
    /// The canonical structure that was hashed into the key.
    pub key_inputs: serde_json::Value,
    /// Metrics the step reported (may be `null`).
    pub metrics: serde_json::Value,
    /// Backend it ran on (`ndarray`, `cuda`, ...).
    pub backend: BackendKind,
    /// The experiment's precision for f32 products when it ran.
    pub precision: Precision,
    /// When the step started.
    pub started_at: DateTime<Utc>,
    /// Its setup, first unit of work and steady state, when it has units of work.
    pub timing: Option<WorkTiming>,
    /// How it ended.
    pub outcome: Outcome,
    /// The attempts before this one, whose processes were killed (the parent
    /// that retried the step tells the child: `xp exec-step --earlier-attempts`).
    pub earlier_attempts: Vec<Attempt>,
}

/// The content of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`] at the time of writing.
    pub manifest_version: u32,
    pub key: StepKey,
    pub step: String,
    pub kind: String,
    pub kind_version: u32,
    pub experiment: String,
    pub key_inputs: serde_json::Value,
    /// Output files by path relative to `out/`, `/`-separated.
    pub outputs: BTreeMap<String, OutputFile>,
    pub metrics: serde_json::Value,
    /// Written lowercase (`"ndarray"`, `"cuda"`), as it always was.
    pub backend: BackendKind,
    /// The experiment's precision for f32 products (`"f32"`, `"tf32"`). `None` in
    /// manifests written before it was recorded: those ran with exact f32 products
    /// on the CPU, but the CUDA backend then used TF32 tensor cores.
    #[serde(default)]
    pub precision: Option<Precision>,
    /// Version of xp that published the entry.
    pub xp_version: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_s: f64,
    /// Where the time went: setup, the first unit of work (on a GPU, with the
    /// kernels' compilation and autotuning) and the steady state. Absent for steps
    /// without units of work and in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<WorkTiming>,
    pub host: String,
    pub user: String,
    pub outcome: Outcome,
    /// Every start of the step's process, the published one last. Empty in
    /// manifests written before attempts were recorded.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
}

impl Manifest {
    /// Completes the caller's info with what only the store knows.
    pub(crate) fn assemble(
        key: StepKey,
        info: ManifestInfo,
        outputs: BTreeMap<String, OutputFile>,
        host: String,
        finished_at: DateTime<Utc>,
    ) -> Self {
        let duration_s = (finished_at - info.started_at)
            .to_std()
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut attempts = info.earlier_attempts;
        attempts.push(Attempt {
            attempt: attempts.len() as u32 + 1,
            outcome: info.outcome.as_str().to_string(),
            started_at: info.started_at,
            ended_at: finished_at,
        });
        Self {
            manifest_version: MANIFEST_VERSION,
            key,
            step: info.step,
            kind: info.kind,
            kind_version: info.kind_version,
            experiment: info.experiment,
            key_inputs: info.key_inputs,
            outputs,
            metrics: info.metrics,
            backend: info.backend,
            precision: Some(info.precision),
            xp_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: info.started_at,
            finished_at,
            duration_s,
            timing: info.timing,
            host,
            user: current_user(),
            outcome: info.outcome,
            attempts,
        }
    }

    /// Total size of the outputs in bytes.
    pub fn total_size(&self) -> u64 {
        self.outputs.values().map(|o| o.size).sum()
    }

    /// Reads and parses a manifest. The error is a reason string because the
    /// callers decide whether a broken manifest is an error or corruption.
    pub(crate) fn read(path: &Path) -> Result<Self, ManifestReadError> {
        let bytes = fs::read(path).map_err(ManifestReadError::Io)?;
        serde_json::from_slice(&bytes).map_err(|e| ManifestReadError::Parse(e.to_string()))
    }

    /// Writes the manifest to `dir/manifest.json` through a temporary file that
    /// is fsynced and renamed, so no reader ever sees half a manifest.
    pub(crate) fn write_into(&self, dir: &Path, file_name: &str) -> Result<(), StoreError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| StoreError::BadManifest {
            path: dir.join(file_name),
            reason: format!("cannot serialise: {e}"),
        })?;
        json.push(b'\n');
        write_manifest_bytes(dir, file_name, &json)
    }
}

/// Writes a manifest's bytes as [`Manifest::write_into`] does: a pulled entry's
/// manifest is kept byte for byte (parsing and writing it again would round
/// its metrics' last digits).
pub(crate) fn write_manifest_bytes(
    dir: &Path,
    file_name: &str,
    json: &[u8],
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{file_name}.tmp"));
    let path = dir.join(file_name);
    let hint = super::error::NOT_PUBLISHED;
    let mut file = File::create(&tmp).map_err(io_err("creating", &tmp, hint))?;
    file.write_all(json)
        .map_err(io_err("writing", &tmp, hint))?;
    file.sync_all().map_err(io_err("syncing", &tmp, hint))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_err("renaming into place", &path, hint))
}

/// Why a manifest could not be read.
#[derive(Debug)]
pub(crate) enum ManifestReadError {
    Io(std::io::Error),
    Parse(String),
}

impl std::fmt::Display for ManifestReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Parse(e) => write!(f, "not a valid manifest: {e}"),
        }
    }
}

/// The user name for the manifest; environment first because that is what
/// the user sees in their shell.
fn current_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| format!("uid {}", real_uid()))
}

/// The real user id (getuid cannot fail).
fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions and always succeeds.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_through_json_with_rfc3339_times() {
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let info = ManifestInfo {
            step: "finetune@0".into(),
            kind: "finetune".into(),
            kind_version: 3,
            experiment: "mini".into(),
            key_inputs: serde_json::json!({"epochs": 5}),
            metrics: serde_json::Value::Null,
            backend: BackendKind::Cuda,
            precision: Precision::Tf32,
            started_at: started,
            timing: Some(WorkTiming {
                unit: "training steps".into(),
                units: 3,
                setup_s: 0.25,
                first_unit_s: 0.75,
                steady_unit_s: Some(0.25),
                warmup_s: Some(0.5),
            }),
            outcome: Outcome::Resumed,
            earlier_attempts: vec![Attempt {
                attempt: 1,
                outcome: "killed by signal 9".into(),
                started_at: started - chrono::Duration::seconds(10),
                ended_at: started - chrono::Duration::seconds(1),
            }],
        };
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "model/config.json".to_string(),
            OutputFile {
                size: 2,
                digest: ContentDigest::of_bytes(b"{}"),
                mtime_ns: 1,
            },
        );
        let finished = started + chrono::Duration::milliseconds(1500);
        let m = Manifest::assemble(StepKey([1; 32]), info, outputs, "h".into(), finished);
        assert_eq!(m.duration_s, 1.5);
        let outcomes: Vec<(u32, &str)> = m
            .attempts
            .iter()
            .map(|a| (a.attempt, a.outcome.as_str()))
            .collect();
        assert_eq!(outcomes, [(1, "killed by signal 9"), (2, "resumed")]);
        assert_eq!(m.attempts[1].started_at, started);
        assert_eq!(m.attempts[1].ended_at, finished);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"started_at\":\"2026-01-02T03:04:05Z\""));
        assert!(json.contains("\"outcome\":\"resumed\""));
        assert!(json.contains("\"backend\":\"cuda\",\"precision\":\"tf32\""));
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.total_size(), 2);
    }

    #[test]
    fn manifests_written_before_precision_existed_still_parse() {
        let old = r#"{"manifest_version":1,"key":"0101010101010101010101010101010101010101010101010101010101010101",
            "step":"blocks","kind":"tokenize","kind_version":1,"experiment":"mini",
            "key_inputs":{"block_size":64},"outputs":{},"metrics":null,"backend":"ndarray",
            "xp_version":"0.1.0","started_at":"2026-01-02T03:04:05Z",
            "finished_at":"2026-01-02T03:04:06Z","duration_s":1.0,"host":"h","user":"u",
            "outcome":"completed"}"#;
        let m: Manifest = serde_json::from_str(old).unwrap();
        assert_eq!(m.backend, BackendKind::Ndarray);
        assert_eq!(m.precision, None);
        assert_eq!(m.timing, None);
        assert!(m.attempts.is_empty());
    }
}
