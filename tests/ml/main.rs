//! The model and its kinds: OPT against transformers (`model_*`, `generate_parity`,
//! `evaluate_parity`), AdamW and the training loop (`finetune_*`), the data-only
//! metrics (`evaluate_metrics`), and the model kinds through the real binary
//! (`evaluate_cli`, `finetune_run`, `synthesize_resume`, `dataflow_run`), and
//! `xp run --jobs` (`run_jobs`).
//!
//! One test binary; each module was one test file and keeps its name:
//! `cargo test --test ml` runs them all, `cargo test --test ml generate_parity::` one
//! file. The tests with CUDA variants (`*_on_cuda`) build with `--features cuda`
//! and run on a GPU host (scripts/gpu/checks.sh).

#[path = "../common/mod.rs"]
mod common;
mod model_support;

mod dataflow_run;
mod evaluate_cli;
mod evaluate_metrics;
mod evaluate_parity;
mod finetune_loop;
mod finetune_parity;
mod finetune_run;
mod generate_parity;
mod model_cache;
mod model_checkpoint;
mod model_parity;
mod replicates_run;
mod run_jobs;
mod synthesize_resume;
