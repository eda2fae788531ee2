//! One full training step of the `finetune` kind on the OPT-125m shape (random weights,
//! batch 8 × 64): forward, backward, gradient collection and xp's AdamW update. Prints
//! tokens/s and peak memory. The PyTorch counterpart is scripts/bench_torch_train.py;
//! results are in BENCHMARKS.md ("Fine-tuning").
//!
//! Run: `MATMUL_NUM_THREADS=2 cargo bench --bench finetune_step -- [--threads 2] [--iters 3]`
//! On a GPU: `cargo bench --features cuda --bench finetune_step -- --backend cuda --iters 20`

mod common;

use std::time::{Duration, Instant};

use burn::tensor::{Distribution, Int, Tensor};
use xp::backend::cpu::product_time;
use xp::backend::{BackendKind, BackendTask, Target, XpAutodiffBackend, dispatch};
use xp::model::score::causal_lm_loss;
use xp::model::{Opt, OptConfig};
use xp::train::{AdamW, AdamWConfig, Gradients};

const BATCH: usize = 8;
const SEQ: usize = 64;

struct FinetuneStep {
    iters: usize,
}

impl BackendTask for FinetuneStep {
    /// Seconds per optimizer step, and of them in the CPU backend's products.
    type Output = (f64, f64);

    fn run<B: XpAutodiffBackend>(self, device: B::Device) -> (f64, f64) {
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
        // Warm-up: allocates the moments (and on a GPU compiles and autotunes kernels).
        // Every step's time goes to stderr as it ends, so a run cut short still tells
        // where the time went.
        for i in 0..2 {
            let start = Instant::now();
            model = step(model);
            B::sync(&device).expect("sync");
            eprintln!("warm-up step {i}: {:.3} s", start.elapsed().as_secs_f64());
        }
        let (start, products) = (Instant::now(), product_time());
        for i in 0..self.iters {
            model = step(model);
            if i + 1 < self.iters {
                B::sync(&device).expect("sync");
                eprintln!("step {i}: {:.3} s so far", start.elapsed().as_secs_f64());
            }
        }
        B::sync(&device).expect("sync");
        let per_step = |d: Duration| d.as_secs_f64() / self.iters as f64;
        (
            per_step(start.elapsed()),
            per_step(product_time() - products),
        )
    }
}

fn main() {
    let (kind, label) = common::backend_from_args();
    let iters = common::arg("--iters", 3usize);
    let (seconds, products) = dispatch(Target::new(kind), FinetuneStep { iters }).expect("backend");
    let tokens = (BATCH * SEQ) as f64;
    // Host products only exist on the CPU backend.
    let split = match kind {
        BackendKind::Ndarray => format!(
            " (products {products:.3} s, outside products {:.3} s)",
            seconds - products
        ),
        _ => String::new(),
    };
    println!(
        "xp {label}: optimizer step {seconds:.4} s{split}, {:.0} tokens/s, peak RSS {:.0} MiB; {}",
        tokens / seconds,
        common::peak_rss_mib(),
        common::machine()
    );
}
