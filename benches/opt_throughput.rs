//! OPT-125m throughput on ndarray (CPU): forward+backward and eval tokens/s at batch
//! 8 x 64 with random weights. Compare with scripts/bench_torch.py on the same machine;
//! results and commands are in BENCHMARKS.md.
//!
//! Run: `MATMUL_NUM_THREADS=2 cargo bench --bench opt_throughput -- [--threads 2] [--iters 3]`

mod common;

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use xp::backend::cpu::product_time;
use xp::backend::{NdarrayBackend, XpBackend, set_cpu_threads};
use xp::model::score::causal_lm_loss;
use xp::model::{Opt, OptConfig};

const BATCH: usize = 8;
const SEQ: usize = 64;

fn main() {
    let threads: usize = common::arg("--threads", 2);
    let iters: usize = common::arg("--iters", 3);
    set_cpu_threads(threads).expect("thread pool");
    // Where `xp` runs a task's tensor work (`xp::backend::dispatch`).
    NdarrayBackend::run_on_compute_thread(|| measure(threads, iters));
}

fn measure(threads: usize, iters: usize) {
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

    // Eval: the inner backend (no autodiff graph, no dropout). The logits stay where
    // they are, as torch's do (ndarray computes them before `forward` returns): a
    // copy of the 103 MB to a `TensorData` is no part of the forward pass.
    let eval_model = model.valid();
    let eval_ids = ids.clone().inner();
    let eval_step = || {
        let logits = eval_model
            .forward(eval_ids.clone(), None, None)
            .expect("forward");
        std::hint::black_box(logits);
    };
    eval_step();
    let start = Instant::now();
    for _ in 0..iters {
        eval_step();
    }
    let eval_s = start.elapsed().as_secs_f64() / iters as f64;

    if std::env::args().any(|a| a == "--phases") {
        phases(&model, &ids, iters);
    }

    println!(
        "burn-ndarray opt-125m batch {BATCH}x{SEQ} threads {threads} iters {iters}: \
         fwd+bwd {:.1} tokens/s ({:.3} s/step), eval {:.1} tokens/s ({:.3} s/step); {}",
        tokens / train_s,
        train_s,
        tokens / eval_s,
        eval_s,
        common::machine()
    );
}

/// Times one training step and its parts, each split into the time spent in the CPU
/// backend's products (`xp::backend::cpu::product_time`, forward and backward) and
/// everything around them. The parts run the operations the step itself runs (the
/// backend's products and fused loss, the model's embedding), not burn's generic ops.
fn phases(model: &Opt<NdarrayBackend>, ids: &Tensor<NdarrayBackend, 2, Int>, iters: usize) {
    type B = NdarrayBackend;
    let time = |name: &str, f: &dyn Fn()| {
        f();
        let (start, products) = (Instant::now(), product_time());
        for _ in 0..iters {
            f();
        }
        let per_iter = |d: Duration| d.as_secs_f64() / iters as f64;
        let (total, products) = (
            per_iter(start.elapsed()),
            per_iter(product_time() - products),
        );
        println!(
            "phase {name}: {total:.3} s (products {products:.3} s, outside products {:.3} s)",
            total - products
        );
    };
    time("training step: forward + loss + backward", &|| {
        let logits = model.forward(ids.clone(), None, None).expect("forward");
        let loss = causal_lm_loss(logits, ids.clone(), None).expect("loss");
        drop(loss.backward());
    });
    time("forward (autodiff graph, no backward)", &|| {
        let logits = model.forward(ids.clone(), None, None).expect("forward");
        let _ = logits.into_data();
    });
    time("forward + loss (no backward)", &|| {
        let logits = model.forward(ids.clone(), None, None).expect("forward");
        let loss = causal_lm_loss(logits, ids.clone(), None).expect("loss");
        let _ = loss.into_data();
    });
    let device = ids.device();
    let embed = model.token_embedding(); // [vocab, 768], tracked
    let h = Tensor::<B, 2>::random([BATCH * SEQ, 768], Distribution::Default, &device);
    time("LM head h·Eᵀ forward + backward (grad of E)", &|| {
        let logits = B::product(h.clone(), embed.clone().transpose()); // [512, vocab]
        let grads = logits.sum().backward();
        let _ = embed.grad(&grads).map(|g| g.into_data());
    });
    let vocab = embed.dims()[0];
    let logits =
        Tensor::<B, 3>::random([BATCH, SEQ, vocab], Distribution::Default, &device).require_grad();
    time(
        "loss (fused log_softmax + gather) forward + backward",
        &|| {
            let loss = causal_lm_loss(logits.clone(), ids.clone(), None).expect("loss");
            let grads = loss.backward();
            let _ = logits.grad(&grads).map(|g| g.into_data());
        },
    );
    time("embedding lookup forward + backward", &|| {
        let e = burn::tensor::module::embedding(embed.clone(), ids.clone()); // [8, 64, 768]
        let grads = e.sum().backward();
        let _ = embed.grad(&grads).map(|g| g.into_data());
    });
}
