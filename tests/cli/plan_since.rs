//! `xp plan --since REV` in real git repositories, and the time estimates `xp plan`
//! makes from the store's history. A tiny model (as in tests/ml/finetune_run.rs)
//! keeps the runs that build the history to seconds. No assertion is on a time:
//! only on the structure of estimates (present, how many runs, none without history).

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Project, stderr, stdout};
use serde_json::Value;

/// A generated corpus (so a new seed reruns every step), a tokenizer, blocks, a
/// tiny model, its fine-tuning and an evaluation of the fine-tuned model.
const EXPERIMENT: &str = r#"[experiment]
name = "since"
seed = 0
backend = "ndarray"

[steps.corpus]
kind = "corpus"
train_rows = 200
eval_rows = 60
vocab = 200

[steps.tok]
kind = "tokenizer"
train_on = "corpus.data"
vocab_size = 300

[steps.blocks]
kind = "tokenize"
data = "corpus.data"
tokenizer = "tok.tokenizer"
block_size = 16

[steps.init]
kind = "init"
tokenizer = "tok.tokenizer"
hidden = 32
layers = 2
heads = 4
ffn = 64
max_positions = 32

[steps.ft]
kind = "finetune"
model = "init.model"
train = "blocks.train"
valid = "blocks.validation"
epochs = 2
batch = 16
lr = 1e-3

[steps.score]
kind = "evaluate"
model = "ft.model"
data = ["blocks.test"]
"#;

/// Reads a local corpus (a source) instead of generating one.
const FROM_SOURCE: &str = r#"[experiment]
name = "from-source"

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
"#;

const EXIT_INVALIDATED: i32 = 6;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=xp tests",
            "-c",
            "user.email=xp@example.com",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository holding the project's files (the store ignored unless the
/// test wrote its own `.gitignore`), one commit.
fn repository(p: &Project, file: &str, text: &str) {
    p.write(file, text);
    if !p.path().join(".gitignore").exists() {
        p.write(".gitignore", "cache/\n");
    }
    git(p.path(), &["init", "-q"]);
    commit(p, "first");
}

fn commit(p: &Project, message: &str) {
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-q", "--allow-empty", "-m", message]);
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

fn invalidated(plan: &Value) -> Vec<&str> {
    plan["invalidated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect()
}

fn step<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["invalidated"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {plan:#}"))
}

#[test]
fn a_changed_finetune_parameter_lists_it_and_its_descendants_and_a_comment_nothing() {
    let p = Project::new(10);
    repository(&p, "x.toml", EXPERIMENT);
    p.run_ok("x.toml", &[]);
    p.write("x.toml", &EXPERIMENT.replace("lr = 1e-3", "lr = 2e-3"));
    commit(&p, "a higher learning rate");

    let out = p.run(&["plan", "x.toml", "--since", "HEAD~1", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_INVALIDATED),
        "{}",
        stderr(&out)
    );
    let plan = json(&out);
    assert_eq!(invalidated(&plan), ["ft", "score"]);
    assert_eq!(plan["unchanged"], 4);
    assert_eq!(plan["since"]["file_existed"], true);
    let ft = step(&plan, "ft");
    assert_eq!(ft["status"], "changed");
    assert_eq!(ft["changes"].as_array().unwrap().len(), 1, "{ft:#}");
    assert_eq!(ft["changes"][0]["path"], "params.lr");
    assert_eq!(ft["changes"][0]["old"], 0.001);
    assert_eq!(ft["changes"][0]["new"], 0.002);
    assert_ne!(ft["key"], ft["old_key"]);
    let score = step(&plan, "score");
    assert_eq!(score["why"][0], "input `model`: `ft` changed");
    for s in [ft, score] {
        assert_eq!(s["in_store"], false);
        // One earlier run of this very step: the estimate rests on it.
        assert_eq!(s["cost"]["runs"], 1, "{s:#}");
        assert_eq!(s["cost"]["basis"], "same step");
        assert!(s["cost"]["estimate_s"].as_f64().unwrap() > 0.0, "{s:#}");
    }
    assert_eq!(plan["without_history"], 0);

    let out = p.run(&["plan", "x.toml", "--since", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(EXIT_INVALIDATED));
    let text = stdout(&out);
    assert!(text.contains("params.lr: 0.001 → 0.002"), "{text}");
    assert!(text.contains("(1 run)"), "{text}");
    assert!(
        text.contains(
            "2 of 6 steps invalidated, 0 already in the store; estimated time on ndarray: ~"
        ),
        "{text}"
    );

    // A comment changes no key: exit 0 says so to CI.
    p.write(
        "x.toml",
        &format!(
            "# the learning rate was raised\n{}",
            EXPERIMENT.replace("lr = 1e-3", "lr = 2e-3 # was 1e-3")
        ),
    );
    commit(&p, "a comment");
    let out = p.run(&["plan", "x.toml", "--since", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("nothing invalidated: 6 steps unchanged"),
        "{}",
        stdout(&out)
    );
    // The working tree counts, not only commits: the same file now with lr back.
    p.write("x.toml", EXPERIMENT);
    let plan = json(&p.run(&["plan", "x.toml", "--since", "HEAD", "--json"]));
    assert_eq!(invalidated(&plan), ["ft", "score"]);
    assert_eq!(step(&plan, "ft")["in_store"], true, "the first run made it");
    assert!(step(&plan, "ft")["cost"].is_null());
}

#[test]
fn a_file_added_since_the_revision_is_all_new_and_named() {
    let p = Project::new(10);
    repository(&p, "x.toml", FROM_SOURCE);
    p.write("y.toml", &FROM_SOURCE.replace("from-source", "y"));
    let out = p.run(&["plan", "y.toml", "--since", "HEAD"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_INVALIDATED),
        "{}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("y.toml did not exist at commit"), "{text}");
    assert!(text.contains("2 of 2 steps invalidated"), "{text}");
    let plan = json(&p.run(&["plan", "y.toml", "--since", "HEAD", "--json"]));
    assert_eq!(plan["since"]["file_existed"], false);
    assert_eq!(invalidated(&plan), ["tok", "blocks"]);
    for name in ["tok", "blocks"] {
        assert_eq!(step(&plan, name)["status"], "new");
        assert_eq!(step(&plan, name)["why"][0], "new step");
        // Nothing has run: no history to estimate from.
        assert_eq!(step(&plan, name)["cost"]["runs"], 0);
    }
}

#[test]
fn a_source_is_read_from_the_revision_not_from_the_disk() {
    let p = Project::new(10);
    repository(&p, "x.toml", FROM_SOURCE);
    // Edited but not committed: HEAD still has the old corpus.
    let train = p.path().join("corpus/train.txt");
    let text = std::fs::read_to_string(&train).unwrap();
    std::fs::write(&train, format!("{text}one more row\n")).unwrap();
    let plan = json(&p.run(&["plan", "x.toml", "--since", "HEAD", "--json"]));
    assert_eq!(invalidated(&plan), ["tok", "blocks"]);
    assert_eq!(
        step(&plan, "tok")["why"][0],
        "input `train_on`: source `corpus` (`corpus`) changed"
    );
    commit(&p, "more data");
    let out = p.run(&["plan", "x.toml", "--since", "HEAD"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // A source folder that did not exist at the revision.
    std::fs::rename(p.path().join("corpus"), p.path().join("data")).unwrap();
    p.write(
        "x.toml",
        &FROM_SOURCE.replace("corpus = \"corpus\"", "corpus = \"data\""),
    );
    let plan = json(&p.run(&["plan", "x.toml", "--since", "HEAD", "--json"]));
    // Renaming a folder keeps its content, so nothing is invalidated...
    assert_eq!(invalidated(&plan), Vec::<&str>::new(), "{plan:#}");
    commit(&p, "renamed");

    // A folder named at the revision but committed only after it: no key then.
    p.write(
        "x.toml",
        &FROM_SOURCE.replace("corpus = \"corpus\"", "corpus = \"more\""),
    );
    commit(&p, "points at a folder not yet committed");
    std::fs::create_dir(p.path().join("more")).unwrap();
    p.write("more/train.txt", "more rows\n");
    commit(&p, "adds the folder");
    let plan = json(&p.run(&["plan", "x.toml", "--since", "HEAD~1", "--json"]));
    assert_eq!(invalidated(&plan), ["tok", "blocks"]);
    assert_eq!(step(&plan, "tok")["status"], "new");
    let why = step(&plan, "tok")["why"][0].as_str().unwrap();
    assert!(why.contains("`more` did not exist at commit"), "{why}");
}

#[test]
fn a_source_git_ignores_is_taken_as_it_is_now_with_a_note() {
    let p = Project::new(10);
    p.write(".gitignore", "cache/\ncorpus/\n");
    repository(&p, "x.toml", FROM_SOURCE);
    std::fs::write(p.path().join("corpus/train.txt"), "other rows\n").unwrap();
    let out = p.run(&["plan", "x.toml", "--since", "HEAD", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let note = "source `corpus` (`corpus`) is ignored by git: its content at commit";
    assert!(stderr(&out).contains(note), "{}", stderr(&out));
    assert!(json(&out)["notes"][0].as_str().unwrap().contains(note));
}

#[test]
fn a_bad_revision_or_no_repository_is_a_clear_error() {
    let p = Project::new(10);
    p.write("x.toml", FROM_SOURCE);
    let out = p.run(&["plan", "x.toml", "--since", "HEAD"]);
    assert_eq!(out.status.code(), Some(2));
    let msg = stderr(&out);
    assert!(
        msg.contains("is not inside a git repository") && msg.contains("git init"),
        "{msg}"
    );

    repository(&p, "x.toml", FROM_SOURCE);
    let out = p.run(&["plan", "x.toml", "--since", "HEAD~5"]);
    assert_eq!(out.status.code(), Some(2));
    let msg = stderr(&out);
    assert!(
        msg.contains("--since HEAD~5: `HEAD~5` is not a commit") && msg.contains("git log"),
        "{msg}"
    );
    let out = p.run(&["plan", "x.toml", "--since", "HEAD", "--rerun-all"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--since and --rerun-all conflict"
    );
}

#[test]
fn after_one_run_every_step_to_rerun_has_an_estimate_and_others_say_there_is_no_history() {
    let p = Project::new(10);
    p.write("x.toml", EXPERIMENT);
    p.run_ok("x.toml", &[]);
    // A new seed changes the corpus, so every step reruns.
    let out = p.run(&["plan", "x.toml", "--set", "experiment.seed=1", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    for s in steps {
        assert_eq!(s["status"], "run", "{s:#}");
        assert_eq!(s["cost"]["runs"], 1, "{s:#}");
        assert_eq!(s["cost"]["basis"], "same step", "{s:#}");
        assert!(s["cost"]["estimate_s"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(plan["without_history"], 0);
    assert!(plan["estimated_s"].as_f64().unwrap() > 0.0);

    // A cached step has no estimate; a second finetune (never run by that name)
    // rests on the runs of its kind; an unseen kind and another backend have none.
    let more = format!(
        "{EXPERIMENT}\n[steps.ft2]\nkind = \"finetune\"\nmodel = \"init.model\"\n\
         train = \"blocks.train\"\nvalid = \"blocks.validation\"\nepochs = 1\nbatch = 16\n\n\
         [steps.gen]\nkind = \"prompts\"\nmodel = \"ft.model\"\nnew_tokens = 4\nmin_new_tokens = 4\n"
    );
    p.write("y.toml", &more);
    let plan = json(&p.run(&["plan", "y.toml", "--json"]));
    let of = |name: &str| {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap()
            .clone()
    };
    assert!(of("ft")["cost"].is_null(), "cached");
    assert_eq!(of("ft2")["cost"]["basis"], "same kind");
    assert_eq!(of("ft2")["cost"]["runs"], 1);
    assert_eq!(of("gen")["cost"]["runs"], 0);
    assert_eq!(of("gen")["cost"]["estimate_s"], Value::Null);
    assert_eq!(plan["without_history"], 1);
    let text = stdout(&p.run(&["plan", "y.toml"]));
    assert!(text.contains("estimate: no history on ndarray"), "{text}");
    assert!(text.contains("1 step without history"), "{text}");

    let out = p.run(&[
        "plan",
        "x.toml",
        "--set",
        "experiment.seed=1",
        "--backend",
        "cuda",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("estimate: no history on cuda (runs on ndarray: 1)"),
        "{text}\n{}",
        stderr(&out)
    );
}
