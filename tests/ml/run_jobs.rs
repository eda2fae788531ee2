//! `xp run --jobs N`: independent steps in concurrent `xp exec-step` processes,
//! with the results of a sequential run; a step's results do not depend on its
//! thread count; a failure skips only its dependents.

use crate::common;

use std::collections::BTreeMap;

use common::{Project, stderr, steps_with};
use serde_json::Value;

/// Two independent training branches from one model, each scored; and a third
/// branch whose model is too short for the blocks, so its finetune fails at run
/// time (not at validation).
fn experiment() -> String {
    format!(
        "{}{}",
        common::tiny_model_prelude("jobs", 32),
        r#"
[steps.ft_a]
kind = "finetune"
model = "init.model"
train = "blocks.train"
valid = "blocks.validation"
epochs = 2
batch = 16
micro_batch = 8
lr = 1e-3

[steps.ft_b]
kind = "finetune"
model = "init.model"
train = "blocks.train"
valid = "blocks.validation"
epochs = 2
batch = 16
micro_batch = 8
lr = 3e-3

[steps.eval_a]
kind = "evaluate"
model = "ft_a.model"
data = ["blocks.test"]

[steps.eval_b]
kind = "evaluate"
model = "ft_b.model"
data = ["blocks.test"]
"#
    )
}

const FAILING_BRANCH: &str = r#"
[steps.short]
kind = "init"
tokenizer = "tok.tokenizer"
hidden = 32
layers = 1
heads = 4
ffn = 64
max_positions = 8

[steps.ft_short]
kind = "finetune"
model = "short.model"
train = "blocks.train"
valid = "blocks.validation"
epochs = 1

[steps.eval_short]
kind = "evaluate"
model = "ft_short.model"
data = ["blocks.test"]
"#;

/// Every entry of the store: key → (output path → content digest). The training
/// metrics are compared without their speed (`tokens_per_s`), which is measured.
fn outputs(p: &Project) -> BTreeMap<String, BTreeMap<String, String>> {
    p.entries()
        .into_iter()
        .map(|key| {
            let manifest = p.cache().join("entries").join(&key).join("manifest.json");
            let manifest: Value =
                serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
            let out = p.cache().join("entries").join(&key).join("out");
            let files = manifest["outputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(path, file)| {
                    let content = if path.ends_with("metrics.jsonl") {
                        without_speed(&std::fs::read_to_string(out.join(path)).unwrap())
                    } else {
                        file["digest"].as_str().unwrap().to_string()
                    };
                    (path.clone(), content)
                })
                .collect();
            (key, files)
        })
        .collect()
}

fn without_speed(metrics: &str) -> String {
    metrics
        .lines()
        .map(|line| {
            let mut line: Value = serde_json::from_str(line).unwrap();
            line.as_object_mut().unwrap().remove("tokens_per_s");
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_with(p: &Project, args: &[&str], threads: Option<&str>) -> Vec<Value> {
    let mut all = vec!["run", "x.toml", "--json"];
    all.extend_from_slice(args);
    let mut cmd = p.xp(&all);
    if let Some(threads) = threads {
        cmd.env("RAYON_NUM_THREADS", threads)
            .env("MATMUL_NUM_THREADS", threads);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "xp run failed: {}", stderr(&out));
    common::events(&out)
}

#[test]
fn two_jobs_give_the_results_of_one() {
    let (parallel, sequential) = (Project::new(200), Project::new(200));
    for p in [&parallel, &sequential] {
        p.write("x.toml", &experiment());
    }
    let events = run_with(&parallel, &["--jobs", "2"], None);
    let executed = steps_with(&events, "step_finished");
    assert_eq!(
        executed,
        ["blocks", "eval_a", "eval_b", "ft_a", "ft_b", "init", "tok"]
    );
    // The children's progress reaches the parent's display.
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step_progress" && e["step"] == "ft_b"),
        "no progress of ft_b forwarded"
    );
    run_with(&sequential, &[], None);
    assert_eq!(outputs(&parallel), outputs(&sequential));

    // Cached steps are answered by the parent without a child.
    let again = run_with(&parallel, &["--jobs", "2"], None);
    assert_eq!(steps_with(&again, "step_cached").len(), 7);
    assert!(steps_with(&again, "step_started").is_empty());
}

/// Beam search too: a synthesize step on the validation blocks.
const SYNTHESIZE: &str = r#"
[steps.synth]
kind = "synthesize"
model = "ft_a.model"
prompts = "blocks.validation"
beams = 3
new_tokens = 8
batch_size = 4
"#;

#[test]
fn a_step_computes_the_same_bits_on_one_thread_as_on_two() {
    let (one, two) = (Project::new(200), Project::new(200));
    for p in [&one, &two] {
        p.write("x.toml", &format!("{}{SYNTHESIZE}", experiment()));
    }
    run_with(&one, &[], Some("1"));
    run_with(&two, &[], Some("2"));
    assert_eq!(outputs(&one), outputs(&two));
}

#[test]
fn a_failed_step_skips_its_dependents_and_the_other_branches_finish() {
    let p = Project::new(200);
    p.write("x.toml", &format!("{}{FAILING_BRANCH}", experiment()));
    let out = p.run(&["run", "x.toml", "--json", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let events = common::events(&out);
    assert_eq!(steps_with(&events, "step_failed"), ["ft_short"]);
    let failure = events.iter().find(|e| e["event"] == "step_failed").unwrap();
    assert!(
        failure["error"].as_str().unwrap().contains("at most 8"),
        "{failure}"
    );
    assert_eq!(steps_with(&events, "step_skipped"), ["eval_short"]);
    for step in ["eval_a", "eval_b", "ft_a", "ft_b"] {
        assert!(
            steps_with(&events, "step_finished").contains(&step.to_string()),
            "{step} did not finish: {events:?}"
        );
    }
}

#[test]
fn jobs_are_refused_with_the_slurm_executor_and_zero_jobs_is_not_a_number_of_jobs() {
    let p = Project::new(20);
    p.write("x.toml", &experiment());
    let out = p.run(&["run", "x.toml", "--jobs", "2", "--executor", "slurm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--jobs applies to the local executor"));
    let out = p.run(&["run", "x.toml", "--jobs", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
