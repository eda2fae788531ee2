//! How long `xp run` takes on an experiment whose every step is cached: the
//! price of asking "is anything to do?" (target: under 100 ms).
//!
//! `cargo bench --bench noop_run` prints the median and spread over 20 runs of
//! a 4-step, 3-level experiment (tokenizer training → tokenizer → two tokenize
//! variants) on a temp store.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const EXPERIMENT: &str = r#"[experiment]
name = "noop-bench"

[steps.corpus]
kind = "corpus"
train_rows = 2000

[steps.tok]
kind = "tokenizer"
train_on = "corpus.data"
vocab_size = 500

[steps.blocks]
kind = "tokenize"
data = "corpus.data"
tokenizer = "tok.tokenizer"

[steps.blocks_batched]
kind = "tokenize"
data = "corpus.data"
tokenizer = "tok.tokenizer"
grouping = "batched"
"#;

fn xp(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xp"));
    cmd.current_dir(dir)
        .args(["run", "x.toml"])
        .env("XP_CACHE_DIR", dir.join("cache"));
    cmd
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("x.toml"), EXPERIMENT).expect("write experiment");
    let first = xp(dir.path()).output().expect("xp runs");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let clock = Instant::now();
            let out = xp(dir.path()).output().expect("xp runs");
            assert!(out.status.success());
            clock.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "no-op `xp run` (4 cached steps): median {:.1} ms, min {:.1} ms, max {:.1} ms (20 runs)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
