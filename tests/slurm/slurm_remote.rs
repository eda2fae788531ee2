//! Slurm jobs on nodes without a shared store: `xp run --executor slurm
//! --node-cache-dir DIR --remote URL` gives every job its own empty store
//! (`%j`: one per job), from which it pulls its inputs out of the remote cache
//! and to which it pushes its outputs; a second run submits nothing. Needs a real
//! slurmctld (XP_SLURM_TESTS=1, scripts/slurm/start.sh) and a real S3 server
//! (XP_S3_TESTS, scripts/s3/start.sh); skipped with a message otherwise.

use crate::{cluster, common};

use std::path::Path;

use cluster::{cluster_available, unique_name};
use common::{Project, events, stderr, steps_with};

fn experiment(name: &str) -> String {
    format!(
        r#"[experiment]
name = "{name}"

[steps.gen]
kind = "corpus"
train_rows = 200
eval_rows = 40
vocab = 300

[steps.tok]
kind = "tokenizer"
train_on = "gen.data"
vocab_size = 300

[steps.blocks]
kind = "tokenize"
data = "gen.data"
tokenizer = "tok.tokenizer"
block_size = 16
"#
    )
}

fn slurm_run(p: &Project, cache: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "x.toml", "--json", "--executor", "slurm"];
    args.extend_from_slice(extra);
    p.xp(&args)
        .env("XP_CACHE_DIR", cache)
        .env("XP_SLURM_POLL_MS", "200")
        .output()
        .expect("xp runs")
}

/// The text of the log of `step`'s job, under the submitting store.
fn job_log(cache: &Path, experiment: &str, step: &str) -> String {
    let dir = cache.join("slurm").join(experiment);
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{step}."))
        })
        .unwrap_or_else(|| panic!("no log of {step} in {}", dir.display()));
    std::fs::read_to_string(log).unwrap()
}

#[test]
fn jobs_with_stores_of_their_own_share_through_the_remote() {
    let test = "jobs_with_stores_of_their_own_share_through_the_remote";
    if !cluster_available(test) {
        return;
    }
    let Ok(bucket) = std::env::var("XP_S3_TESTS") else {
        eprintln!(
            "SKIPPED {test}: no S3 server (run scripts/s3/start.sh, then `. /tmp/xp-s3/env`)"
        );
        return;
    };
    let p = Project::new(10);
    let name = unique_name("remote");
    p.write("x.toml", &experiment(&name));
    let url = format!("{bucket}/{name}");
    let nodes = p.path().join("nodes");
    let node_store = format!("{}/%j", nodes.display());

    let submit = p.path().join("submit-store");
    let out = slurm_run(
        &p,
        &submit,
        &["--remote", &url, "--node-cache-dir", &node_store],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let first = events(&out);
    let submitted = |events: &[serde_json::Value]| {
        let mut steps: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "step_waiting")
            .filter(|e| {
                e["holder"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("submitted as")
            })
            .map(|e| e["step"].as_str().unwrap().to_string())
            .collect();
        steps.sort();
        steps
    };
    assert_eq!(submitted(&first), ["blocks", "gen", "tok"]);
    // Each job had a store of its own: three, none of them the submitting one.
    let stores: Vec<_> = std::fs::read_dir(&nodes).unwrap().collect();
    assert_eq!(stores.len(), 3, "{stores:?}");
    // `blocks` read `gen` and `tok`, which ran in other jobs: it pulled both, and
    // every job pushed its step.
    let blocks = job_log(&submit, &name, "blocks");
    assert!(blocks.contains("pulled    gen"), "{blocks}");
    assert!(blocks.contains("pulled    tok"), "{blocks}");
    for step in ["gen", "tok", "blocks"] {
        let log = job_log(&submit, &name, step);
        assert!(log.contains(&format!("pushed    {step}")), "{log}");
    }
    // The submitting xp took each finished step from the remote.
    assert_eq!(steps_with(&first, "step_pulled"), ["blocks", "gen", "tok"]);

    // A second run, from a fresh store too: nothing is submitted.
    let again = p.path().join("another-submit-store");
    let out = slurm_run(
        &p,
        &again,
        &["--remote", &url, "--node-cache-dir", &node_store],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let second = events(&out);
    assert!(submitted(&second).is_empty(), "{second:?}");
    assert_eq!(steps_with(&second, "step_cached"), ["blocks", "gen", "tok"]);
    assert_eq!(std::fs::read_dir(&nodes).unwrap().count(), 3);
}
