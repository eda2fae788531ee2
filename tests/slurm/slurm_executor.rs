//! `xp run --executor slurm` through a real slurmctld (scripts/slurm/start.sh):
//! the same keys and bytes as a local run, a failing job whose dependents
//! Slurm cancels, a rerun that submits only what is missing, `--detach`, `command`
//! steps as jobs (the same bytes; an edited script resubmits only what reads it).
//! Skipped (with a message) unless XP_SLURM_TESTS=1 and `sinfo` answers.

use crate::{cluster, common};

use std::collections::BTreeMap;
use std::path::Path;

use cluster::{cluster_available, jobs_of, unique_name};
use common::{Project, events, stderr, stdout, steps_with};
use serde_json::Value;

/// Two chains: generated corpus → tokenizer → blocks, and a local source →
/// tokenizer → blocks; `text` is the local source directory.
fn experiment(name: &str, text: &str) -> String {
    format!(
        r#"[experiment]
name = "{name}"

[sources]
text = "{text}"

[steps.gen]
kind = "corpus"
train_rows = 300
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

[steps.tok_text]
kind = "tokenizer"
train_on = "text"
vocab_size = 300

[steps.blocks_text]
kind = "tokenize"
data = "text"
tokenizer = "tok_text.tokenizer"
block_size = 16
"#
    )
}

const ALL: [&str; 5] = ["blocks", "blocks_text", "gen", "tok", "tok_text"];

/// `xp run FILE --json --executor slurm ARGS` with a store at `cache`.
fn slurm_run(p: &Project, file: &str, cache: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", file, "--json", "--executor", "slurm"];
    args.extend_from_slice(extra);
    p.xp(&args)
        .env("XP_CACHE_DIR", cache)
        .env("XP_SLURM_POLL_MS", "200")
        .output()
        .expect("xp runs")
}

/// Steps whose job this run submitted (not found queued).
fn submitted(events: &[Value]) -> Vec<String> {
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
}

/// Every output file of every entry: (key/relative path) → bytes.
fn outputs(cache: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let entries = cache.join("entries");
    for entry in std::fs::read_dir(&entries).unwrap() {
        let entry = entry.unwrap().path();
        let mut stack = vec![entry.join("out")];
        while let Some(dir) = stack.pop() {
            for item in std::fs::read_dir(&dir).unwrap() {
                let path = item.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(&entries).unwrap();
                    files.insert(rel.display().to_string(), std::fs::read(&path).unwrap());
                }
            }
        }
    }
    files
}

#[test]
fn slurm_run_gives_the_local_keys_and_bytes() {
    if !cluster_available("slurm_run_gives_the_local_keys_and_bytes") {
        return;
    }
    let p = Project::new(120);
    let name = unique_name("same");
    p.write("x.toml", &experiment(&name, "corpus"));

    let local = p.path().join("local-cache");
    let out = p
        .xp(&["run", "x.toml", "--json"])
        .env("XP_CACHE_DIR", &local)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let cluster = p.path().join("slurm-cache");
    let out = slurm_run(&p, "x.toml", &cluster, &[]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let ev = events(&out);
    assert_eq!(submitted(&ev), ALL);
    assert_eq!(steps_with(&ev, "step_finished"), ALL);

    // One job per step, each named after the experiment and the step.
    let mut jobs: Vec<String> = jobs_of(&name).into_iter().map(|j| j.name).collect();
    jobs.sort();
    let expected: Vec<String> = ALL.iter().map(|s| format!("{name}:{s}")).collect();
    assert_eq!(jobs, expected);

    let (local_files, cluster_files) = (outputs(&local), outputs(&cluster));
    assert!(local_files.len() >= 10, "{:?}", local_files.keys());
    assert_eq!(
        local_files.keys().collect::<Vec<_>>(),
        cluster_files.keys().collect::<Vec<_>>(),
        "the same keys and files"
    );
    for (file, bytes) in &local_files {
        assert!(cluster_files[file] == *bytes, "{file} differs");
    }

    // Every job wrote its log where xp says.
    let logs = std::fs::read_dir(cluster.join("slurm").join(&name))
        .unwrap()
        .count();
    assert_eq!(logs, ALL.len());

    // A second run submits nothing.
    let out = slurm_run(&p, "x.toml", &cluster, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = events(&out);
    assert_eq!(steps_with(&ev, "step_cached"), ALL);
    assert!(submitted(&ev).is_empty());
}

#[test]
fn a_failed_job_stops_its_dependents_and_a_rerun_submits_only_them() {
    if !cluster_available("a_failed_job_stops_its_dependents_and_a_rerun_submits_only_them") {
        return;
    }
    let p = Project::new(120);
    // The local source's training split is not UTF-8: `tok_text` fails on the node.
    let text = p.path().join("corpus/train.txt");
    let good = std::fs::read(&text).unwrap();
    let mut bad = good.clone();
    bad.extend_from_slice(b"\xff\xfe not text\n");
    std::fs::write(&text, &bad).unwrap();
    let name = unique_name("fail");
    p.write("x.toml", &experiment(&name, "corpus"));
    let cache = p.cache();

    let out = slurm_run(&p, "x.toml", &cache, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ev = events(&out);
    assert_eq!(steps_with(&ev, "step_failed"), ["tok_text"]);
    assert_eq!(steps_with(&ev, "step_skipped"), ["blocks_text"]);
    assert_eq!(steps_with(&ev, "step_finished"), ["blocks", "gen", "tok"]);
    let failure = ev.iter().find(|e| e["event"] == "step_failed").unwrap();
    let error = failure["error"].as_str().unwrap();
    // The failed step's log tail, with the cause.
    assert!(error.contains("ended FAILED"), "{error}");
    assert!(error.contains("not valid UTF-8"), "{error}");

    // Slurm cancelled the dependent; it never ran (no log, no entry).
    let jobs = jobs_of(&name);
    let state = |step: &str| {
        let job_name = format!("{name}:{step}");
        jobs.iter()
            .find(|j| j.name == job_name)
            .map(|j| j.state.clone())
    };
    assert_eq!(state("tok_text").as_deref(), Some("FAILED"));
    assert_eq!(state("blocks_text").as_deref(), Some("CANCELLED"));
    let logs: Vec<String> = std::fs::read_dir(cache.join("slurm").join(&name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !logs.iter().any(|l| l.starts_with("blocks_text.")),
        "{logs:?}"
    );
    assert_eq!(p.entries().len(), 3);

    // The human report names the failure and shows the log tail.
    let out = p
        .xp(&["run", "x.toml", "--executor", "slurm"])
        .env("XP_SLURM_POLL_MS", "200")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = stderr(&out);
    assert!(report.contains("FAILED    tok_text: Slurm job"), "{report}");
    assert!(report.contains("| FAILED    tok_text:"), "{report}");
    assert!(
        report.contains("skipped   blocks_text (depends on failed `tok_text`)"),
        "{report}"
    );

    // Fixed: only the failed step and its dependent are submitted.
    std::fs::write(&text, &good).unwrap();
    let out = slurm_run(&p, "x.toml", &cache, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = events(&out);
    assert_eq!(submitted(&ev), ["blocks_text", "tok_text"]);
    assert_eq!(steps_with(&ev, "step_cached"), ["blocks", "gen", "tok"]);
    assert_eq!(p.entries().len(), 5);
}

#[test]
fn detach_then_run_submits_no_job_twice() {
    if !cluster_available("detach_then_run_submits_no_job_twice") {
        return;
    }
    let p = Project::new(120);
    let name = unique_name("detach");
    p.write("x.toml", &experiment(&name, "corpus"));
    let cache = p.cache();

    let out = slurm_run(&p, "x.toml", &cache, &["--detach"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(submitted(&events(&out)), ALL);

    // Right away (the jobs are queued or running): nothing is submitted again.
    let out = slurm_run(&p, "x.toml", &cache, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev = events(&out);
    assert!(submitted(&ev).is_empty(), "{}", stdout(&out));
    // The chain's last steps are surely still queued a few ms later: followed.
    let followed = ev
        .iter()
        .filter(|e| {
            e["holder"]
                .as_str()
                .unwrap_or("")
                .starts_with("already queued")
        })
        .count();
    assert!(followed >= 1, "{}", stdout(&out));
    let mut seen = steps_with(&ev, "step_cached");
    seen.extend(steps_with(&ev, "step_finished"));
    seen.sort();
    assert_eq!(seen, ALL);

    let mut jobs: Vec<String> = jobs_of(&name).into_iter().map(|j| j.name).collect();
    jobs.sort();
    let expected: Vec<String> = ALL.iter().map(|s| format!("{name}:{s}")).collect();
    assert_eq!(jobs, expected, "one job per step");
    assert_eq!(p.entries().len(), 5);

    // `xp plan` reads the store: everything finished.
    let plan = stdout(&p.run(&["plan", "x.toml"]));
    assert!(plan.contains("5 steps: 5 cached, 0 will run"), "{plan}");
}

/// generated corpus → tokenizer → blocks → `copy`, a command running a script of
/// the repository (a `file:` input) that writes blocks → `count`, a command
/// reading them.
fn command_experiment(name: &str) -> String {
    format!(
        r#"[experiment]
name = "{name}"
seed = 3

[steps.gen]
kind = "corpus"
train_rows = 200
eval_rows = 20
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

[steps.copy]
kind = "command"
argv = ["sh", "{{repo}}/scripts/copy.sh", "{{inputs.blocks}}", "{{outputs.blocks}}"]
inputs = {{ blocks = "blocks.train", script = "file:scripts/copy.sh" }}
outputs = {{ blocks = {{ path = "copy.blocks", format = "blocks" }} }}

[steps.count]
kind = "command"
argv = ["sh", "-c", "wc -c < {{inputs.blocks}} > {{outputs.size}}; echo seed $XP_SEED"]
inputs = {{ blocks = "copy.blocks" }}
outputs = {{ size = "size.txt" }}
"#
    )
}

#[test]
fn command_steps_run_as_slurm_jobs_with_the_local_keys_and_bytes() {
    if !cluster_available("command_steps_run_as_slurm_jobs_with_the_local_keys_and_bytes") {
        return;
    }
    let p = Project::new(10);
    std::fs::create_dir_all(p.path().join("scripts")).unwrap();
    p.write(
        "scripts/copy.sh",
        "set -eu\ncp \"$1\" \"$2\"\necho copied\n",
    );
    let name = unique_name("command");
    p.write("x.toml", &command_experiment(&name));
    const STEPS: [&str; 5] = ["blocks", "copy", "count", "gen", "tok"];

    let local = p.path().join("local-cache");
    let out = p
        .xp(&["run", "x.toml", "--json"])
        .env("XP_CACHE_DIR", &local)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let cluster = p.path().join("slurm-cache");
    let out = slurm_run(&p, "x.toml", &cluster, &[]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let ev = events(&out);
    assert_eq!(submitted(&ev), STEPS);
    let (local_files, cluster_files) = (outputs(&local), outputs(&cluster));
    assert_eq!(
        local_files.keys().collect::<Vec<_>>(),
        cluster_files.keys().collect::<Vec<_>>(),
        "the same keys and files"
    );
    for (file, bytes) in &local_files {
        assert!(cluster_files[file] == *bytes, "{file} differs");
    }
    assert!(
        local_files.keys().any(|f| f.ends_with("/out/copy.blocks")),
        "{:?}",
        local_files.keys()
    );

    // Editing the script submits the command and what reads it, nothing else.
    p.write(
        "scripts/copy.sh",
        "set -eu\ncp \"$1\" \"$2\"\necho copied again\n",
    );
    let plan = p
        .xp(&["plan", "x.toml"])
        .env("XP_CACHE_DIR", &cluster)
        .output()
        .unwrap();
    let plan = stdout(&plan);
    assert!(
        plan.contains("input `inputs.script` (file:scripts/copy.sh) changed"),
        "{plan}"
    );
    let out = slurm_run(&p, "x.toml", &cluster, &[]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let ev = events(&out);
    // `count` reads `copy`, whose key changed with the script.
    assert_eq!(submitted(&ev), ["copy", "count"]);
    assert_eq!(steps_with(&ev, "step_cached"), ["blocks", "gen", "tok"]);
}
