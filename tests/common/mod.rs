//! Helpers for tests that drive the real `xp` binary on temp directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A temp project with a small deterministic corpus in `corpus/`.
    pub fn new(rows_per_split: usize) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let corpus = dir.path().join("corpus");
        std::fs::create_dir(&corpus).unwrap();
        for (split, n, seed) in [
            ("train", rows_per_split, 1u64),
            ("validation", rows_per_split / 4 + 1, 2),
            ("test", rows_per_split / 4 + 1, 3),
        ] {
            std::fs::write(corpus.join(format!("{split}.txt")), english_like(n, seed)).unwrap();
        }
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    /// `xp ARGS` in the project dir, with the project's store.
    pub fn xp(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xp"));
        cmd.current_dir(self.path())
            .env("XP_CACHE_DIR", self.cache())
            .env("HF_HUB_OFFLINE", "1")
            // No remote cache but the one a test gives: not the user's.
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env_remove("XP_REMOTE")
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.xp(args).output().expect("xp runs")
    }

    /// `xp run FILE --json ARGS`, asserting success; returns the events.
    pub fn run_ok(&self, file: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["run", file, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "xp run failed: {}\n{}",
            stderr(&out),
            stdout(&out)
        );
        events(&out)
    }

    /// `xp show FILE --json ARGS`, asserting success: one object per step.
    pub fn show_json(&self, file: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["show", file, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        match serde_json::from_str::<Value>(&stdout(&out)) {
            Ok(Value::Array(rows)) => rows,
            other => panic!("xp show --json gave {other:?}"),
        }
    }

    /// Entries in the store, by key directory name.
    pub fn entries(&self) -> Vec<String> {
        let dir = self.cache().join("entries");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// The first steps of an experiment named `name` on the project's corpus, for tests
/// of the model kinds: a 300-token BPE tokenizer (`tok.tokenizer`), blocks of 16
/// tokens (`blocks.train`, `.validation`, `.test`) and a 2-layer OPT of width 32
/// (`init.model`) that trains in seconds.
pub fn tiny_model_prelude(name: &str, max_positions: usize) -> String {
    format!(
        r#"[experiment]
name = "{name}"
seed = 0
backend = "ndarray"

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
hidden = 32
layers = 2
heads = 4
ffn = 64
max_positions = {max_positions}
"#
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn events(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Names of the steps with a given event type.
pub fn steps_with(events: &[Value], event: &str) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == event)
        .map(|e| e["step"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

/// Deterministic English-like rows (a tiny LCG over a word list).
pub fn english_like(rows: usize, seed: u64) -> String {
    const WORDS: &[&str] = &[
        "the",
        "a",
        "model",
        "learns",
        "from",
        "data",
        "and",
        "every",
        "generation",
        "forgets",
        "rare",
        "words",
        "of",
        "its",
        "parent",
        "text",
        "is",
        "written",
        "by",
        "machines",
        "that",
        "read",
        "what",
        "they",
        "wrote",
        "before",
        "tails",
        "vanish",
        "slowly",
        "while",
        "common",
        "phrases",
        "repeat",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut out = String::new();
    for _ in 0..rows {
        let n = 4 + next() % 12;
        let words: Vec<&str> = (0..n).map(|_| WORDS[next() % WORDS.len()]).collect();
        out += &words.join(" ");
        out += " .\n";
        if next() % 5 == 0 {
            out += "\n"; // empty rows, as in WikiText
        }
    }
    out
}

/// Three levels: a trained tokenizer, a tokenizer loaded from it, blocks from that,
/// plus a second tokenize variant (batched grouping) beside it.
pub const THREE_LEVELS: &str = r#"[experiment]
name = "three-levels"
seed = 0

[sources]
corpus = "corpus"

[steps.tok]
kind = "tokenizer"
train_on = "corpus"
vocab_size = 300

[steps.tok2]
kind = "tokenizer"
from = "tok.tokenizer"

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "tok2.tokenizer"
block_size = 16

[steps.blocks_batched]
kind = "tokenize"
data = "corpus"
tokenizer = "tok2.tokenizer"
block_size = 16
grouping = "batched"
rows_per_batch = 10
"#;
