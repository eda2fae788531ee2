//! The `evaluate` kind through the real binary: corpus → tokenizer → tokenize → evaluate
//! with a tiny random OPT written here as a local model source.

use crate::common;

use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use common::{Project, stderr, stdout, steps_with};
use serde_json::Value;
use xp::model::{Opt, OptConfig, save_pretrained};

const EXPERIMENT: &str = r#"[experiment]
name = "evaluate"
seed = 0

[sources]
corpus = "corpus"
scorer = "scorer"

[steps.tok]
kind = "tokenizer"
train_on = "corpus"
vocab_size = 300

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "tok.tokenizer"
block_size = 16

[steps.eval]
kind = "evaluate"
model = "scorer"
data = ["blocks.test", "blocks.validation"]
reference = "blocks.train"
batch_size = 4
forward_batch = 8
"#;

const VOCAB: usize = 320;

/// A freshly initialised OPT (HF's init, std 0.02: near-uniform predictions) covering the
/// tokenizer's 300 ids.
fn write_scorer(p: &Project) {
    write_scorer_with_vocab(p, VOCAB);
}

fn write_scorer_with_vocab(p: &Project, vocab: usize) {
    type B = NdArray<f32>;
    let device = Default::default();
    B::seed(&device, 7);
    let config = OptConfig::tiny(vocab, 16, 2, 2, 32, 32);
    let model = Opt::<B>::init(&config, &device);
    save_pretrained(&model, &config, &p.path().join("scorer"), None).unwrap();
}

fn scores_path(p: &Project, extra: &[&str]) -> std::path::PathBuf {
    let mut args = vec!["show", "x.toml", "--json"];
    args.extend_from_slice(extra);
    let rows: Value = serde_json::from_str(&stdout(&p.run(&args))).unwrap();
    let eval = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == "eval")
        .unwrap();
    let output = eval["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "scores")
        .unwrap();
    std::path::PathBuf::from(output["path"].as_str().unwrap())
}

#[test]
fn evaluate_writes_every_score_and_reruns_alone() {
    let p = Project::new(120);
    write_scorer(&p);
    p.write("x.toml", EXPERIMENT);
    let events = p.run_ok("x.toml", &[]);
    assert_eq!(
        steps_with(&events, "step_started"),
        ["blocks", "eval", "tok"]
    );

    let scores: Value =
        serde_json::from_str(&std::fs::read_to_string(scores_path(&p, &[])).unwrap()).unwrap();
    assert_eq!(scores["model"], "scorer");
    assert!(scores["model_key"].is_null(), "a source has no key");
    let sets = scores["sets"].as_array().unwrap();
    let labels: Vec<&str> = sets.iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["blocks.test", "blocks.validation"]);
    for set in sets {
        let mut shown = set.clone();
        shown["per_sample_perplexity"] = Value::Null;
        eprintln!("{shown}");
        let label = set["label"].as_str().unwrap();
        assert_eq!(
            set["key"].as_str().unwrap().len(),
            64,
            "{label}: the producer's key"
        );
        let blocks = set["blocks"].as_u64().unwrap();
        assert!(blocks > 0);
        assert_eq!(set["tokens"].as_u64().unwrap(), blocks * 16);
        assert_eq!(
            set["per_sample_perplexity"].as_array().unwrap().len() as u64,
            blocks
        );
        for field in [
            "corpus_perplexity",
            "batch_mean_perplexity",
            "mean",
            "median",
            "p90",
            "p99",
            "distinct_1",
            "distinct_2",
            "distinct_3",
            "repetition_rate",
            "unigram_kl",
            "unigram_js",
            "tail_coverage",
            "tail_mass",
        ] {
            assert!(
                set[field].as_f64().unwrap().is_finite(),
                "{label}: {field} = {}",
                set[field]
            );
        }
        // A near-uniform random model: perplexity close to the vocabulary size.
        let corpus = set["corpus_perplexity"].as_f64().unwrap();
        assert!(
            (0.7 * VOCAB as f64..1.3 * VOCAB as f64).contains(&corpus),
            "{label}: {corpus}"
        );
        let (median, p90, p99) = (
            set["median"].as_f64().unwrap(),
            set["p90"].as_f64().unwrap(),
            set["p99"].as_f64().unwrap(),
        );
        assert!(median <= p90 && p90 <= p99, "{label}");
        assert!(set["unigram_js"].as_f64().unwrap() <= std::f64::consts::LN_2);
        for share in [
            "distinct_1",
            "repetition_rate",
            "tail_coverage",
            "tail_mass",
        ] {
            let v = set[share].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{label}: {share} = {v}");
        }
    }

    // The manifest carries the scalars per set, not the per-sample list.
    let shown = stdout(&p.run(&["show", "x.toml"]));
    assert!(shown.contains("blocks.test.corpus_perplexity"), "{shown}");
    assert!(shown.contains("corpus_perplexity"), "{shown}");
    assert!(!shown.contains("per_sample_perplexity"), "{shown}");

    // Only evaluate's parameters changed: only it runs, and the number moves.
    let set = ["--set", "steps.eval.repetition_window=2"];
    let events = p.run_ok("x.toml", &set);
    assert_eq!(steps_with(&events, "step_started"), ["eval"]);
    assert_eq!(steps_with(&events, "step_cached"), ["blocks", "tok"]);
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(scores_path(&p, &set)).unwrap()).unwrap();
    let rep = |v: &Value| v["sets"][0]["repetition_rate"].as_f64().unwrap();
    assert!(
        rep(&again) < rep(&scores),
        "a smaller window finds fewer repeats"
    );
    assert_eq!(
        again["sets"][0]["corpus_perplexity"], scores["sets"][0]["corpus_perplexity"],
        "the perplexity does not depend on the window"
    );
}

#[test]
fn unusable_parameters_and_models_fail_the_step_and_say_why() {
    let p = Project::new(40);
    // 100 embeddings for a 300-token tokenizer.
    write_scorer_with_vocab(&p, 100);
    p.write("x.toml", EXPERIMENT);
    let out = p.run(&["run", "x.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("outside the model's vocabulary of 100"),
        "{text}"
    );

    write_scorer(&p);
    let out = p.run(&["run", "x.toml", "--set", "steps.eval.smoothing=0.0"]);
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("smoothing must be a positive number"),
        "{text}"
    );
}
