//! The `synthesize` and `prompts` kinds through the real binary: outputs in the
//! contract's formats, `keep_real`, and a SIGKILL after a finished shard followed by a
//! rerun that resumes and gives byte-identical files to an uninterrupted run.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::backend::Backend;
use common::{Project, english_like};
use serde_json::Value;
use xp::digest::ContentDigest;
use xp::model::{Opt, OptConfig, save_pretrained};
use xp::tokenizer::{save_tokenizer, train_bpe};

type B = NdArray<f32>;

/// A tiny random OPT with a BPE tokenizer trained on the test corpus, in `dir`.
fn make_model(dir: &Path) {
    let rows: Vec<String> = english_like(200, 1).lines().map(str::to_string).collect();
    let tokenizer = train_bpe(&rows, 300, 2).unwrap();
    let tok_dir = dir.join("tok");
    std::fs::create_dir_all(&tok_dir).unwrap();
    save_tokenizer(&tokenizer, &tok_dir.join("tokenizer.json")).unwrap();
    let config = OptConfig::tiny(tokenizer.get_vocab_size(true), 16, 1, 2, 32, 64);
    let device = NdArrayDevice::Cpu;
    B::seed(&device, 3);
    let model = Opt::<B>::init(&config, &device);
    save_pretrained(&model, &config, &dir.join("model"), Some(&tok_dir)).unwrap();
}

fn experiment(model_dir: &Path) -> String {
    format!(
        r#"[experiment]
name = "synth"
seed = 0

[sources]
corpus = "corpus"
m = "{}"

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "m"
block_size = 8
splits = ["train"]

[steps.synth]
kind = "synthesize"
model = "m"
prompts = "blocks.train"
beams = 3
new_tokens = 8
min_new_tokens = 8
batch_size = 4
shard_size = 12
keep_real = 0.25
real = "blocks.train"

[steps.answers]
kind = "prompts"
model = "m"
prompts = ["the model learns", "data"]
new_tokens = 6
"#,
        model_dir.display()
    )
}

/// Every file named `name` in the project's store.
fn find(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return found;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(find(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

fn one(p: &Project, name: &str) -> PathBuf {
    let files = find(&p.cache().join("entries"), name);
    assert_eq!(files.len(), 1, "{name}: {files:?}");
    files.into_iter().next().unwrap()
}

fn digests(p: &Project) -> Vec<String> {
    ["synthetic.blocks", "samples.jsonl", "answers.json"]
        .iter()
        .map(|n| ContentDigest::of_file(&one(p, n)).unwrap().to_string())
        .collect()
}

#[test]
fn killed_after_a_shard_resumes_to_identical_outputs() {
    let models = tempfile::tempdir().unwrap();
    make_model(models.path());
    let model_dir = models.path().join("model");
    let toml = experiment(&model_dir);

    // Uninterrupted run.
    let whole = Project::new(40);
    whole.write("x.toml", &toml);
    let events = whole.run_ok("x.toml", &[]);
    let shard_messages: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "step_progress" && e["message"].as_str().unwrap().contains("finished")
        })
        .collect();
    assert!(
        shard_messages.len() >= 3,
        "want several shards: {shard_messages:?}"
    );

    // Killed after the first finished shard, then rerun.
    let killed = Project::new(40);
    killed.write("x.toml", &toml);
    let mut child = killed
        .xp(&["run", "x.toml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if line.contains("step_progress") && line.contains("shard 1/") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(find(&killed.cache().join("entries"), "synthetic.blocks").is_empty());
    let events = killed.run_ok("x.toml", &[]);
    assert!(
        events.iter().any(|e| e["event"] == "step_progress"
            && e["message"].as_str().unwrap().starts_with("resuming")),
        "the rerun must resume from the finished shards"
    );
    assert_eq!(digests(&killed), digests(&whole));

    // Formats: blocks of new_tokens, one samples line per prompt block, keep_real.
    let blocks = xp::data::read_blocks(&one(&whole, "synthetic.blocks")).unwrap();
    let prompts = xp::data::read_blocks(&one(&whole, "train.blocks")).unwrap();
    assert_eq!(blocks.block_size(), 8);
    assert_eq!(blocks.len(), prompts.len());
    let samples = std::fs::read_to_string(one(&whole, "samples.jsonl")).unwrap();
    let lines: Vec<Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), prompts.len());
    let kept = lines.iter().filter(|l| l["real"] == true).count();
    assert_eq!(kept, (prompts.len() as f64 * 0.25).round() as usize);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["index"], i);
        let ids: Vec<u32> = serde_json::from_value(l["ids"].clone()).unwrap();
        assert_eq!(&ids[..], blocks.block(i));
        assert!(l["text"].is_string() && l["prompt"].is_string());
        if l["real"] == true {
            assert_eq!(blocks.block(i), prompts.block(i));
        }
    }
    let answers: Value =
        serde_json::from_str(&std::fs::read_to_string(one(&whole, "answers.json")).unwrap())
            .unwrap();
    assert_eq!(answers["model"], "m");
    assert_eq!(answers["answers"].as_array().unwrap().len(), 2);
    assert_eq!(answers["answers"][0]["prompt"], "the model learns");
    assert_eq!(answers["answers"][0]["ids"].as_array().unwrap().len(), 6);
}

/// `keep_real` without `real` is refused before anything is generated: from
/// generation 1 on, the prompts are the previous generation's text, so keeping
/// "original" blocks from them would silently keep synthetic data.
#[test]
fn keep_real_without_the_real_input_is_refused() {
    let models = tempfile::tempdir().unwrap();
    make_model(models.path());
    let toml = experiment(&models.path().join("model")).replace("real = \"blocks.train\"\n", "");
    let p = Project::new(40);
    p.write("x.toml", &toml);
    let out = p.run(&["run", "x.toml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keep_real = 0.25 needs the `real` input") && stderr.contains("synth"),
        "{stderr}"
    );
    assert!(find(&p.cache().join("entries"), "synthetic.blocks").is_empty());
}

/// `keep_real` across generations: at generation 0 the prompts are the real data, at
/// generation 1 they are generation 0's text; in both, every kept block is the real
/// training block of its index (as the samples file marks it), and the other blocks
/// are generated text.
#[test]
fn kept_blocks_are_the_original_data_at_every_generation() {
    let models = tempfile::tempdir().unwrap();
    make_model(models.path());
    let toml = format!(
        r#"
[experiment]
name = "keep-real"
seed = 0

[sources]
corpus = "corpus"
m = "{}"

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "m"
block_size = 8
splits = ["train"]

[loop.gen]
count = 2
carry = {{ data = "blocks.train" }}
next = {{ data = "synth.blocks" }}

[loop.gen.steps.synth]
kind = "synthesize"
model = "m"
prompts = "carry.data"
real = "blocks.train"
keep_real = 0.25
beams = 2
new_tokens = 8
min_new_tokens = 8
"#,
        models.path().join("model").display()
    );
    let p = Project::new(24);
    p.write("x.toml", &toml);
    p.run_ok("x.toml", &[]);
    let entries = p.cache().join("entries");
    let train = xp::data::read_blocks(&one(&p, "train.blocks")).unwrap();
    let outputs = find(&entries, "synthetic.blocks");
    assert_eq!(outputs.len(), 2, "one per generation");
    for blocks_path in outputs {
        let blocks = xp::data::read_blocks(&blocks_path).unwrap();
        let samples = std::fs::read_to_string(blocks_path.with_file_name("samples.jsonl")).unwrap();
        let kept: Vec<usize> = samples
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|s| s["real"] == true)
            .map(|s| s["index"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(kept.len(), (0.25 * train.len() as f64).round() as usize);
        for &i in &kept {
            assert_eq!(
                blocks.block(i),
                train.block(i),
                "kept block {i} of {blocks_path:?}"
            );
        }
        let generated = (0..blocks.len()).filter(|i| !kept.contains(i));
        assert!(
            generated
                .into_iter()
                .any(|i| blocks.block(i) != train.block(i)),
            "{blocks_path:?}: the other blocks are written by the model"
        );
    }
}
