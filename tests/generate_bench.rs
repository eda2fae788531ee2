//! Benchmark (ignored by default; run in release with 2 threads):
//!   MATMUL_NUM_THREADS=2 RAYON_NUM_THREADS=2 cargo test --release --test generate_bench -- --ignored --nocapture
//! The paper's beam search (5 beams, 64 new tokens, min 64, repetition penalty 3.0) on
//! random weights, 4 prompts × 64 tokens, OPT-125m shape and a tiny shape; prints new
//! tokens/s. The transformers side is scripts/bench_generate_torch.py.

use std::time::Instant;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::backend::Backend;
use xp::generate::{GenerationConfig, generate};
use xp::model::{Opt, OptConfig};

type B = NdArray<f32>;

fn bench(name: &str, config: OptConfig) {
    let device = NdArrayDevice::Cpu;
    B::seed(&device, 0);
    let model = Opt::<B>::init(&config, &device);
    let mut state = 12345u64;
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|_| {
            let mut p = vec![2u32];
            p.extend((1..64).map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                3 + ((state >> 33) % (config.vocab_size as u64 - 3)) as u32
            }));
            p
        })
        .collect();
    let settings = GenerationConfig::paper();
    generate(&model, &prompts, &settings, 0, &device).unwrap(); // warm-up
    let iters = 2;
    let start = Instant::now();
    for _ in 0..iters {
        let out = generate(&model, &prompts, &settings, 0, &device).unwrap();
        assert!(out.iter().all(|o| o.len() == 64));
    }
    let secs = start.elapsed().as_secs_f64() / iters as f64;
    println!(
        "{name}: xp beam search {:.1} new tokens/s ({secs:.2} s per call)",
        4.0 * 64.0 / secs
    );
}

#[test]
#[ignore]
fn beam_search_throughput() {
    xp::backend::set_cpu_threads(2).unwrap();
    bench("tiny", OptConfig::tiny(512, 64, 2, 4, 256, 256));
    bench("opt-125m", OptConfig::opt_125m());
}
