//! OPT-125m throughput on ndarray (CPU): forward+backward and eval tokens/s at batch
//! 8 x 64 with random weights. Compare with scripts/bench_torch.py on the same machine;
//! results and commands are in BENCHMARKS.md.
//!
//! Run: `MATMUL_NUM_THREADS=2 cargo bench --bench opt_throughput -- [--threads 2] [--iters 3]`

mod common;

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use xp::backend::{NdarrayBackend, set_cpu_threads};
use xp::model::score::causal_lm_loss;
use xp::model::{Opt, OptConfig};

const BATCH: usize = 8;
const SEQ: usize = 64;

fn main() {
    let threads: usize = common::arg("--threads", 2);
    let iters: usize = common::arg("--iters", 3);
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

    if std::env::args().any(|a| a == "--phases") {
        phases(&model, &ids, iters);
    }

    println!(
        "burn-ndarray opt-125m batch {BATCH}x{SEQ} threads {threads} iters {iters}: \
         fwd+bwd {:.1} tokens/s ({:.3} s/step), eval {:.1} tokens/s ({:.3} s/step)",
        tokens / train_s,
        train_s,
        tokens / eval_s,
        eval_s
    );
}

/// Times the parts of one training step separately, to see which op dominates.
fn phases(model: &Opt<NdarrayBackend>, ids: &Tensor<NdarrayBackend, 2, Int>, iters: usize) {
    type B = NdarrayBackend;
    let time = |name: &str, f: &dyn Fn()| {
        f();
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let s = start.elapsed().as_secs_f64() / iters as f64;
        println!("phase {name}: {s:.3} s");
    };
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
        let logits = h.clone().matmul(embed.clone().transpose()); // [512, vocab]
        let grads = logits.sum().backward();
        let _ = embed.grad(&grads).map(|g| g.into_data());
    });
    let x = Tensor::<B, 3>::random([BATCH, SEQ - 1, 50272], Distribution::Default, &device)
        .require_grad();
    let targets = ids.clone().narrow(1, 1, SEQ - 1).unsqueeze_dim::<3>(2);
    time("log_softmax + gather forward + backward", &|| {
        let logp = burn::tensor::activation::log_softmax(x.clone(), 2);
        let nll = logp.gather(2, targets.clone()).sum();
        let grads = nll.backward();
        let _ = x.grad(&grads).map(|g| g.into_data());
    });
    time("embedding lookup forward + backward", &|| {
        let e = burn::tensor::module::embedding(embed.clone(), ids.clone()); // [8, 64, 768]
        let grads = e.sum().backward();
        let _ = embed.grad(&grads).map(|g| g.into_data());
    });
}
