//! One full training step of the `finetune` kind on the OPT-125m shape (random weights,
//! batch 8 × 64): forward, backward, gradient collection and xp's AdamW update, on
//! ndarray. Prints tokens/s and the process's peak RSS. The PyTorch counterpart is
//! scripts/bench_torch_train.py; results are in BENCHMARKS.md ("Fine-tuning").
//!
//! Run: `MATMUL_NUM_THREADS=2 cargo bench --bench finetune_step -- [--threads 2] [--iters 3]`

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use xp::backend::{NdarrayBackend, set_cpu_threads};
use xp::model::score::causal_lm_loss;
use xp::model::{Opt, OptConfig};
use xp::train::{AdamW, AdamWConfig, Gradients};

const BATCH: usize = 8;
const SEQ: usize = 64;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let threads = arg("--threads", 2);
    let iters = arg("--iters", 3);
    set_cpu_threads(threads).expect("thread pool");
    type B = NdarrayBackend;
    let device = Default::default();
    B::seed(&device, 0);
    let config = OptConfig::opt_125m();
    let mut model = Opt::<B>::init(&config, &device);
    let ids: Tensor<B, 2, Int> = Tensor::<B, 2>::random(
        [BATCH, SEQ],
        Distribution::Uniform(3.0, config.vocab_size as f64 - 1.0),
        &device,
    )
    .int();
    let mut adamw = AdamW::new(AdamWConfig::default());
    let mut step = |model: Opt<B>| {
        let logits = model.forward(ids.clone(), None, None).expect("forward");
        let loss = causal_lm_loss(logits, ids.clone(), None).expect("loss");
        let mut grads = Gradients::default();
        grads.accumulate::<B, _>(&model, &loss.backward());
        adamw.step::<B, _>(2e-5, model, grads)
    };
    model = step(model); // warm-up (allocates the moments)
    let start = Instant::now();
    for _ in 0..iters {
        model = step(model);
    }
    let seconds = start.elapsed().as_secs_f64() / iters as f64;
    let tokens = (BATCH * SEQ) as f64;
    println!(
        "xp ndarray, {threads} threads: optimizer step {:.2} s, {:.0} tokens/s, peak RSS {:.0} MiB",
        seconds,
        tokens / seconds,
        peak_rss_mib()
    );
    drop(model);
}
