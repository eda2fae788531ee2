//! OPT-125m throughput on ndarray (CPU): forward+backward and eval tokens/s at batch
//! 8 x 64 with random weights. Compare with scripts/bench_torch.py on the same machine;
//! results and commands are in BENCHMARKS.md.
//!
//! Run: `MATMUL_NUM_THREADS=2 cargo bench --bench opt_throughput -- [--threads 2] [--iters 3]`

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use xp::backend::{NdarrayBackend, set_cpu_threads};
use xp::model::score::causal_lm_loss;
use xp::model::{Opt, OptConfig};

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

fn main() {
    let threads = arg("--threads", 2);
    let iters = arg("--iters", 3);
    set_cpu_threads(threads).expect("thread pool");
    type B = NdarrayBackend;
    let device = Default::default();
    B::seed(&device, 0);
    let config = OptConfig::opt_125m();
    let model = Opt::<B>::init(&config, &device);
    let ids: Tensor<B, 2, Int> = Tensor::<B, 2>::random(
        [BATCH, SEQ],
        Distribution::Uniform(3.0, config.vocab_size as f64 - 1.0),
        &device,
    )
    .int();
    let tokens = (BATCH * SEQ) as f64;

    // Forward + backward (training mode: dropout active, as in torch's model.train()).
    let train_step = || {
        let logits = model.forward(ids.clone(), None, None).expect("forward");
        let loss = causal_lm_loss(logits, ids.clone(), None).expect("loss");
        let grads = loss.backward();
        drop(grads);
    };
    train_step(); // warm-up
    let start = Instant::now();
    for _ in 0..iters {
        train_step();
    }
    let train_s = start.elapsed().as_secs_f64() / iters as f64;

    // Eval: the inner backend (no autodiff graph, no dropout).
    let eval_model = model.valid();
    let eval_ids = ids.clone().inner();
    let eval_step = || {
        let logits = eval_model
            .forward(eval_ids.clone(), None, None)
            .expect("forward");
        let _ = logits.into_data();
    };
    eval_step();
    let start = Instant::now();
    for _ in 0..iters {
        eval_step();
    }
    let eval_s = start.elapsed().as_secs_f64() / iters as f64;

    println!(
        "burn-ndarray opt-125m batch {BATCH}x{SEQ} threads {threads} iters {iters}: \
         fwd+bwd {:.1} tokens/s ({:.3} s/step), eval {:.1} tokens/s ({:.3} s/step)",
        tokens / train_s,
        train_s,
        tokens / eval_s,
        eval_s
    );
}
