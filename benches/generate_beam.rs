//! The paper's beam search (5 beams, 64 new tokens, min 64, repetition penalty 3.0) on
//! random weights, 4 prompts × 64 tokens (`--batch` prompts per call otherwise), on the
//! OPT-125m shape and a tiny shape; prints new tokens/s. The transformers side is scripts/bench_generate_torch.py;
//! results are in BENCHMARKS.md ("Synthesis").
//!
//! Run: `MATMUL_NUM_THREADS=2 cargo bench --bench generate_beam -- [--threads 2] [--iters 2] [--shape tiny|opt-125m]`
//! On a GPU: `cargo bench --features cuda --bench generate_beam -- --backend cuda [--batch 8]`
//! (8 is the `synthesize` kind's default `batch_size`).

mod common;

use std::time::Instant;

use burn::module::AutodiffModule;

use xp::backend::{BackendTask, Target, XpAutodiffBackend, dispatch};
use xp::generate::{GenerationConfig, generate};
use xp::model::{Opt, OptConfig};

const PROMPT_LEN: usize = 64;
const NEW_TOKENS: usize = 64;

struct BeamSearch {
    config: OptConfig,
    prompts: usize,
    iters: usize,
}

impl BackendTask for BeamSearch {
    /// Seconds per `generate` call.
    type Output = f64;

    fn run<B: XpAutodiffBackend>(self, device: B::Device) -> f64 {
        B::seed(&device, 0);
        // Inference runs on the inner backend: no autodiff graph, no dropout.
        let model = Opt::<B>::init(&self.config, &device).valid();
        let prompts = random_prompts(self.prompts, self.config.vocab_size);
        let settings = GenerationConfig::paper();
        let run = || {
            let out = generate(&model, &prompts, &settings, 0, &device).expect("generate");
            assert!(out.iter().all(|o| o.len() == NEW_TOKENS));
        };
        // Each call's time goes to stderr as it ends, so a run cut short still tells
        // where the time went.
        let warm_up = Instant::now();
        run(); // on a GPU this compiles and autotunes the kernels
        eprintln!("warm-up call: {:.3} s", warm_up.elapsed().as_secs_f64());
        let start = Instant::now();
        for i in 0..self.iters {
            run(); // returns host token ids, so the device is synchronised
            eprintln!("call {i}: {:.3} s so far", start.elapsed().as_secs_f64());
        }
        start.elapsed().as_secs_f64() / self.iters as f64
    }
}

/// `count` prompts of `PROMPT_LEN` ids: BOS then pseudo-random ids (a fixed LCG).
fn random_prompts(count: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut state = 12345u64;
    (0..count)
        .map(|_| {
            let mut p = vec![2u32];
            p.extend((1..PROMPT_LEN).map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                3 + ((state >> 33) % (vocab as u64 - 3)) as u32
            }));
            p
        })
        .collect()
}

fn main() {
    let (kind, label) = common::backend_from_args();
    let iters = common::arg("--iters", 2usize);
    let prompts = common::arg("--batch", 4usize);
    let only = common::arg("--shape", String::new());
    for (name, config) in [
        ("tiny", OptConfig::tiny(512, 64, 2, 4, 256, 256)),
        ("opt-125m", OptConfig::opt_125m()),
    ] {
        if !only.is_empty() && only != name {
            continue;
        }
        let task = BeamSearch {
            config,
            prompts,
            iters,
        };
        let seconds = dispatch(Target::new(kind), task).expect("backend");
        println!(
            "{name}: xp {label} beam search, {prompts} prompts: {:.1} new tokens/s \
             ({seconds:.3} s per call); {}",
            (prompts * NEW_TOKENS) as f64 / seconds,
            common::machine()
        );
    }
}
