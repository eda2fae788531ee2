//! The cache as a user meets it through the real binary: cached reruns,
//! parameter changes, crashes, concurrent runs, corruption.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Project, THREE_LEVELS, events, stderr, stdout, steps_with};

const ALL: [&str; 4] = ["blocks", "blocks_batched", "tok", "tok2"];

#[test]
fn second_run_executes_nothing() {
    let p = Project::new(200);
    p.write("x.toml", THREE_LEVELS);
    let first = p.run_ok("x.toml", &[]);
    assert_eq!(steps_with(&first, "step_started"), ALL);
    assert_eq!(p.entries().len(), 4);

    let second = p.run_ok("x.toml", &[]);
    assert!(steps_with(&second, "step_started").is_empty());
    assert_eq!(steps_with(&second, "step_cached"), ALL);

    let plan = stdout(&p.run(&["plan", "x.toml"]));
    assert!(plan.contains("4 steps: 4 cached, 0 will run"), "{plan}");
}

#[test]
fn changing_one_parameter_reruns_that_step_and_its_descendants() {
    let p = Project::new(200);
    p.write("x.toml", THREE_LEVELS);
    p.run_ok("x.toml", &[]);

    // A leaf: only itself.
    let set = ["--set", "steps.blocks.block_size=8"];
    let plan = stdout(&p.run(&["plan", "x.toml", set[0], set[1]]));
    assert!(plan.contains("params.block_size: 16 → 8"), "{plan}");
    let events = p.run_ok("x.toml", &set);
    assert_eq!(steps_with(&events, "step_started"), ["blocks"]);

    // The root: everything below it, and `xp plan` says why for each.
    let set = ["--set", "steps.tok.vocab_size=280"];
    let plan = stdout(&p.run(&["plan", "x.toml", set[0], set[1]]));
    assert!(plan.contains("params.vocab_size: 300 → 280"), "{plan}");
    assert!(plan.contains("input `from`: `tok` will run"), "{plan}");
    assert!(
        plan.contains("input `tokenizer`: `tok2` will run"),
        "{plan}"
    );
    let events = p.run_ok("x.toml", &set);
    assert_eq!(steps_with(&events, "step_started"), ALL);
}

#[test]
fn a_never_run_step_says_so() {
    let p = Project::new(50);
    p.write("x.toml", THREE_LEVELS);
    let plan = stdout(&p.run(&["plan", "x.toml"]));
    assert!(plan.contains("never run"), "{plan}");
    assert!(plan.contains("4 steps: 0 cached, 4 will run"), "{plan}");
}

#[test]
fn rerun_forces_a_step_and_its_dependents() {
    let p = Project::new(100);
    p.write("x.toml", THREE_LEVELS);
    p.run_ok("x.toml", &[]);
    let events = p.run_ok("x.toml", &["--rerun", "tok2"]);
    assert_eq!(
        steps_with(&events, "step_started"),
        ["blocks", "blocks_batched", "tok2"]
    );
    let events = p.run_ok("x.toml", &["--rerun-all"]);
    assert_eq!(steps_with(&events, "step_started"), ALL);
    let out = p.run(&["run", "x.toml", "--rerun", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no step of that name"));
}

#[test]
fn a_killed_step_publishes_nothing_and_the_next_run_completes() {
    // Big enough that training the tokenizer takes a while.
    let p = Project::new(60_000);
    p.write("x.toml", THREE_LEVELS);
    let mut child = p
        .xp(&["run", "x.toml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if line.contains("\"step_started\"") && line.contains("\"tok\"") {
            break;
        }
    }
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        p.entries().is_empty(),
        "a killed step must not publish: {:?}",
        p.entries()
    );

    let events = p.run_ok("x.toml", &[]);
    assert_eq!(steps_with(&events, "step_started"), ALL);
    let verify = p.run(&["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn two_concurrent_runs_execute_each_key_once() {
    let p = Project::new(3_000);
    p.write("x.toml", THREE_LEVELS);
    let spawn = || {
        p.xp(&["run", "x.toml", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let mut started = steps_with(&events(&a), "step_started");
    started.extend(steps_with(&events(&b), "step_started"));
    started.sort();
    assert_eq!(
        started, ALL,
        "every key executed exactly once across both runs"
    );
    assert_eq!(p.entries().len(), 4);
    let verify = p.run(&["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn a_flipped_byte_is_reported_and_recomputed() {
    let p = Project::new(200);
    p.write("x.toml", THREE_LEVELS);
    p.run_ok("x.toml", &[]);
    let show: serde_json::Value =
        serde_json::from_str(&stdout(&p.run(&["show", "x.toml", "--json"]))).unwrap();
    let blocks = show
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "blocks")
        .unwrap();
    let train = blocks["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "train")
        .unwrap();
    let path = std::path::PathBuf::from(train["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let verify = p.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(3), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("CORRUPT"), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("train.blocks"),
        "{}",
        stdout(&verify)
    );

    let events = p.run_ok("x.toml", &[]);
    assert_eq!(steps_with(&events, "step_started"), ["blocks"]);
    let started = events
        .iter()
        .find(|e| e["event"] == "step_started")
        .unwrap();
    assert_eq!(started["reason"]["reason"], "corrupt");
    assert!(p.run(&["verify"]).status.success());
}

#[test]
fn gc_keeps_what_experiments_use() {
    let p = Project::new(100);
    p.write("x.toml", THREE_LEVELS);
    p.run_ok("x.toml", &[]);
    p.run_ok("x.toml", &["--set", "steps.blocks.block_size=8"]);
    assert_eq!(p.entries().len(), 5);
    let out = p.run(&["gc", "x.toml", "--dry-run"]);
    assert!(
        stdout(&out).contains("would remove 1 entries"),
        "{}",
        stdout(&out)
    );
    assert_eq!(p.entries().len(), 5);
    let out = p.run(&["gc", "x.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.entries().len(), 4);
    let events = p.run_ok("x.toml", &[]);
    assert!(steps_with(&events, "step_started").is_empty());
}

/// A tokenizer, blocks, a tiny random model and its evaluation: one step that runs a
/// model (`eval`; `init` only draws weights).
const WITH_A_MODEL: &str = r#"[experiment]
name = "precision"
seed = 0

[sources]
corpus = "corpus"

[steps.tok]
kind = "tokenizer"
train_on = "corpus"
vocab_size = 300

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "tok.tokenizer"
block_size = 16

[steps.init]
kind = "init"
tokenizer = "tok.tokenizer"
hidden = 16
layers = 1
heads = 2
ffn = 32
max_positions = 32

[steps.eval]
kind = "evaluate"
model = "init.model"
data = ["blocks.test"]
reference = "blocks.train"
batch_size = 4
forward_batch = 8
"#;

#[test]
fn precision_reruns_only_the_steps_that_run_a_model_and_plan_says_why() {
    let p = Project::new(60);
    p.write("x.toml", WITH_A_MODEL);
    p.run_ok("x.toml", &[]);

    // The default, stated or not, is the key every entry was made with.
    for extra in [
        &[][..],
        &["--set", "experiment.precision=f32"],
        &["--precision", "f32"],
    ] {
        let mut args = vec!["plan", "x.toml"];
        args.extend_from_slice(extra);
        let plan = stdout(&p.run(&args));
        assert!(
            plan.contains("4 steps: 4 cached, 0 will run"),
            "{extra:?}: {plan}"
        );
    }

    for tf32 in [
        ["--set", "experiment.precision=tf32"],
        ["--precision", "tf32"],
    ] {
        let plan = stdout(&p.run(&["plan", "x.toml", tf32[0], tf32[1]]));
        assert!(plan.contains("4 steps: 3 cached, 1 will run"), "{plan}");
        let eval = plan.lines().find(|l| l.contains(" eval ")).unwrap();
        assert!(eval.contains("precision: \"f32\" → \"tf32\""), "{plan}");
    }

    let events = p.run_ok("x.toml", &["--precision", "tf32"]);
    assert_eq!(steps_with(&events, "step_started"), ["eval"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&p.run(&[
        "show",
        "x.toml",
        "--json",
        "--precision",
        "tf32",
    ])))
    .unwrap();
    let eval = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == "eval")
        .unwrap();
    assert_eq!(eval["backend"], "ndarray", "{eval}");
    assert_eq!(eval["precision"], "tf32", "{eval}");

    // Both entries stay: going back to f32 reuses the first.
    let plan = stdout(&p.run(&["plan", "x.toml"]));
    assert!(plan.contains("4 steps: 4 cached, 0 will run"), "{plan}");
}
