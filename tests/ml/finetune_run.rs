//! `init` and `finetune` through the real binary: outputs, manifest metrics, and a
//! SIGKILLed run that resumes from its epoch checkpoint to the same weights.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use common::{Project, stdout, steps_with};
use serde_json::Value;

fn experiment() -> String {
    format!(
        "{}{}",
        common::tiny_model_prelude("finetune-run", 32),
        r#"
[steps.ft]
kind = "finetune"
model = "init.model"
train = "blocks.train"
valid = "blocks.validation"
epochs = 3
batch = 16
micro_batch = 8
lr = 1e-3
"#
    )
}

fn show(p: &Project, step: &str) -> Value {
    let out = p.run(&["show", "x.toml", "--json"]);
    let rows: Value = serde_json::from_str(&stdout(&out)).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == step)
        .unwrap()
        .clone()
}

fn output(row: &Value, name: &str) -> PathBuf {
    let o = row["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap();
    PathBuf::from(o["path"].as_str().unwrap())
}

fn weights(p: &Project) -> Vec<u8> {
    let model = output(&show(p, "ft"), "model");
    std::fs::read(model.join("model.safetensors")).unwrap()
}

/// Max abs difference between two weight files (for failure messages).
fn weight_diff(a: &[u8], b: &[u8]) -> f32 {
    let (a, b) = (
        safetensors::SafeTensors::deserialize(a).unwrap(),
        safetensors::SafeTensors::deserialize(b).unwrap(),
    );
    let mut worst = 0.0f32;
    for name in a.names() {
        let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        for (u, v) in x.data().chunks_exact(4).zip(y.data().chunks_exact(4)) {
            let u = f32::from_le_bytes(u.try_into().unwrap());
            let v = f32::from_le_bytes(v.try_into().unwrap());
            worst = worst.max((u - v).abs());
        }
    }
    worst
}

fn valid_losses(p: &Project) -> Vec<f64> {
    std::fs::read_to_string(output(&show(p, "ft"), "metrics"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "valid")
        .map(|l| l["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn init_and_finetune_publish_a_model_metrics_and_key_figures() {
    let p = Project::new(300);
    p.write("x.toml", &experiment());
    let events = p.run_ok("x.toml", &[]);
    assert_eq!(
        steps_with(&events, "step_finished"),
        ["blocks", "ft", "init", "tok"]
    );
    let ft = show(&p, "ft");
    let m = &ft["metrics"];
    for key in [
        "best_epoch",
        "best_valid_loss",
        "best_valid_perplexity",
        "selected_epoch",
        "final_train_loss",
        "epochs",
        "tokens_per_s",
    ] {
        assert!(m.get(key).is_some(), "manifest metrics lack {key}: {m}");
    }
    assert_eq!(m["epochs"], 3);
    assert_eq!(m["selected_epoch"], m["best_epoch"]);
    let loss = m["best_valid_loss"].as_f64().unwrap();
    assert!((m["best_valid_perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-6 * loss.exp());

    let model = output(&ft, "model");
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(model.join(file).is_file(), "model dir lacks {file}");
    }
    let lines: Vec<Value> = std::fs::read_to_string(output(&ft, "metrics"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let train: Vec<&Value> = lines.iter().filter(|l| l["type"] == "train").collect();
    let valid: Vec<&Value> = lines.iter().filter(|l| l["type"] == "valid").collect();
    assert_eq!(valid.len(), 3);
    assert!(!train.is_empty());
    for l in &train {
        for key in ["epoch", "step", "loss", "lr", "tokens_per_s"] {
            assert!(l.get(key).is_some(), "{l}");
        }
    }
    let first = train.first().unwrap()["loss"].as_f64().unwrap();
    let last = train.last().unwrap()["loss"].as_f64().unwrap();
    assert!(last < first, "train loss {first} -> {last}");
    // The paper's schedule shape: lr falls from epoch to epoch.
    let lr = |e: u64| {
        train.iter().find(|l| l["epoch"] == e).unwrap()["lr"]
            .as_f64()
            .unwrap()
    };
    assert!(lr(1) > lr(2) && lr(2) > lr(3));
    assert!(m["best_valid_loss"].as_f64().unwrap() <= valid[0]["loss"].as_f64().unwrap());

    // The manifest separates the first optimizer step (where a GPU compiles and
    // tunes its kernels) from the steady state.
    let timing = &ft["timing"];
    assert_eq!(timing["unit"], "training steps", "{timing}");
    assert_eq!(timing["units"].as_u64().unwrap(), train.len() as u64);
    let first = timing["first_unit_s"].as_f64().unwrap();
    let steady = timing["steady_unit_s"].as_f64().unwrap();
    assert!(first > 0.0 && steady > 0.0, "{timing}");
    // The manifest's decimal round trip may move the last bit.
    let warmup = timing["warmup_s"].as_f64().unwrap();
    assert!(
        (warmup - (first - steady).max(0.0)).abs() < 1e-12,
        "{timing}"
    );
    let setup = timing["setup_s"].as_f64().unwrap();
    assert!(
        setup >= 0.0 && setup < ft["duration_s"].as_f64().unwrap(),
        "{timing}"
    );
    // Steps without units of work have none.
    assert_eq!(show(&p, "blocks")["timing"], Value::Null);
}

#[test]
fn a_killed_run_resumes_from_its_epoch_checkpoint() {
    let whole = Project::new(300);
    whole.write("x.toml", &experiment());
    whole.run_ok("x.toml", &[]);
    let expected = weights(&whole);

    let p = Project::new(300);
    p.write("x.toml", &experiment());
    let mut child = p
        .xp(&["run", "x.toml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut seen = false;
    for line in reader.lines() {
        if line.unwrap().contains("checkpoint epoch 1 written") {
            seen = true;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "the run never reported the epoch-1 checkpoint");

    let events = p.run_ok("x.toml", &[]);
    assert_eq!(steps_with(&events, "step_started"), ["ft"]);
    let resumed = events.iter().any(|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("resumed from the epoch"))
    });
    assert!(resumed, "the second run did not resume from a checkpoint");
    // Resumed, not restarted: one train line per optimizer step, steps 1..N in order,
    // every epoch once, and the epoch-1 lines come from the killed run's checkpoint.
    let lines: Vec<Value> = std::fs::read_to_string(output(&show(&p, "ft"), "metrics"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "train")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>());
    let epochs: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "valid")
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3]);

    // Bitwise: the resumed process reaches the uninterrupted run's exact weights.
    let got = weights(&p);
    assert!(
        got == expected,
        "resumed weights differ from the uninterrupted run's by up to {:e}",
        weight_diff(&got, &expected)
    );
    assert_eq!(valid_losses(&p), valid_losses(&whole));
}
