//! Helpers for tests that need a real Slurm cluster (`scripts/slurm/start.sh`).
//! They run only with `XP_SLURM_TESTS=1` (set by `.ci/run` once the cluster is
//! up) and `sinfo` answering; otherwise they print why and pass.
#![allow(dead_code)]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether the Slurm tests can run here; prints why not when they cannot.
pub fn cluster_available(test: &str) -> bool {
    if std::env::var("XP_SLURM_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED {test}: needs a Slurm cluster; run scripts/slurm/start.sh and set XP_SLURM_TESTS=1 (.ci/run does both)"
        );
        return false;
    }
    match Command::new("sinfo").arg("-h").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "XP_SLURM_TESTS=1 but `sinfo` fails: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("XP_SLURM_TESTS=1 but `sinfo` cannot run: {e}"),
    }
}

/// An experiment name no other test (or earlier run) uses, so its jobs can be
/// told apart in the queue.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// One job as the controller lists it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub state: String,
}

/// Every job the controller still lists (finished ones stay for MinJobAge)
/// whose name starts with `experiment:`.
pub fn jobs_of(experiment: &str) -> Vec<Job> {
    let out = Command::new("squeue")
        .args(["-h", "--states=all", "-o", "%i|%j|%T"])
        .output()
        .expect("squeue runs");
    assert!(out.status.success(), "squeue failed: {out:?}");
    let prefix = format!("{experiment}:");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, '|');
            let job = Job {
                id: f.next()?.to_string(),
                name: f.next()?.to_string(),
                state: f.next()?.to_string(),
            };
            job.name.starts_with(&prefix).then_some(job)
        })
        .collect()
}
