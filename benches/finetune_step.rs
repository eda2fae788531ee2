//! One full training step of the `finetune` kind on the OPT-125m shape (random weights,
//! batch 8 × 64 unless `--batch`/`--seq` say otherwise): forward, backward, gradient
//! collection and xp's AdamW update. Prints tokens/s, the model FLOP rate (and, given
//! the device's peak as `--peak-tflops`, the MFU) and peak memory. The PyTorch
//! counterpart is scripts/bench_torch_train.py; results are in BENCHMARKS.md
//! ("Fine-tuning").
//!
//! Run: `MATMUL_NUM_THREADS=2 cargo bench --bench finetune_step -- [--threads 2] [--iters 3]`
//! On a GPU: `cargo bench --features cuda --bench finetune_step -- --backend cuda --iters 20
//! [--batch 128 --seq 64] [--precision tf32] [--peak-tflops 67] [--report-every 50]`
//! (scripts/gpu/bench.sh runs the rows BENCHMARKS.md records).

mod common;

use std::time::{Duration, Instant};

use burn::tensor::{Distribution, Int, Tensor};
use xp::backend::cpu::product_time;
use xp::backend::{BackendKind, BackendTask, Precision, Target, XpAutodiffBackend, dispatch};
use xp::model::score::causal_lm_loss;
use xp::model::{Opt, OptConfig};
use xp::train::{AdamW, AdamWConfig, Gradients};

struct FinetuneStep {
    batch: usize,
    seq: usize,
    iters: usize,
    /// Print the time so far every this many steps (and after the last).
    report_every: usize,
    /// When the process started: a fresh process's first step is timed from there.
    process_start: Instant,
}

/// Model FLOPs of one training step on `tokens` tokens of `seq`: 6 per weight per
/// token (forward 2, backward 4) over every weight that takes part in a product (the
/// token embedding counts once, as the tied LM head; the position table is a lookup),
/// plus attention's own products (scores and weighted values, 4·seq·hidden per token
/// and layer forward, three times that with backward).
fn step_flops(config: &OptConfig, seq: usize, tokens: usize) -> f64 {
    let (h, f, l, v) = (
        config.hidden_size as f64,
        config.ffn_dim as f64,
        config.num_layers as f64,
        config.vocab_size as f64,
    );
    let per_layer = 4.0 * h * h + 2.0 * h * f;
    let weights = l * per_layer + v * h;
    let attention = l * 12.0 * seq as f64 * h;
    (6.0 * weights + attention) * tokens as f64
}

impl BackendTask for FinetuneStep {
    /// Seconds per optimizer step, and of them in the CPU backend's products.
    type Output = (f64, f64);

    fn run<B: XpAutodiffBackend>(self, device: B::Device) -> (f64, f64) {
        B::seed(&device, 0);
        let config = OptConfig::opt_125m();
        let mut model = Opt::<B>::init(&config, &device);
        let ids: Tensor<B, 2, Int> = Tensor::<B, 2>::random(
            [self.batch, self.seq],
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
        // Warm-up: allocates the moments (and on a GPU compiles and autotunes kernels;
        // step 0's time is a fresh process's first step). Times go to stderr as they
        // come, so a run cut short still tells where the time went.
        for i in 0..2 {
            let start = Instant::now();
            model = step(model);
            B::sync(&device).expect("sync");
            eprintln!(
                "warm-up step {i}: {:.3} s ({:.1} s since the process started)",
                start.elapsed().as_secs_f64(),
                self.process_start.elapsed().as_secs_f64()
            );
        }
        let (start, products) = (Instant::now(), product_time());
        for i in 0..self.iters {
            model = step(model);
            if (i + 1) % self.report_every == 0 && i + 1 < self.iters {
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
    let process_start = Instant::now();
    let (kind, label) = common::backend_from_args();
    let precision = match common::arg("--precision", "f32".to_string()).as_str() {
        "f32" => Precision::F32,
        "tf32" => Precision::Tf32,
        other => panic!("--precision f32|tf32, not {other}"),
    };
    let task = FinetuneStep {
        batch: common::arg("--batch", 8usize),
        seq: common::arg("--seq", 64usize),
        iters: common::arg("--iters", 3usize),
        report_every: common::arg("--report-every", 1usize).max(1),
        process_start,
    };
    let (batch, seq) = (task.batch, task.seq);
    let target = Target {
        precision,
        ..Target::new(kind)
    };
    let (seconds, products) = dispatch(target, task).expect("backend");
    let tokens = batch * seq;
    // Host products only exist on the CPU backend.
    let split = match kind {
        BackendKind::Ndarray => format!(
            " (products {products:.3} s, outside products {:.3} s)",
            seconds - products
        ),
        _ => String::new(),
    };
    let tflops = step_flops(&OptConfig::opt_125m(), seq, tokens) / seconds / 1e12;
    let mfu = match common::arg("--peak-tflops", 0.0f64) {
        peak if peak > 0.0 => format!(", MFU {:.1} % of {peak} TFLOP/s", 100.0 * tflops / peak),
        _ => String::new(),
    };
    println!(
        "xp {label} {precision} batch {batch}x{seq}: optimizer step {seconds:.4} s{split}, \
         {:.0} tokens/s, {tflops:.2} TFLOP/s{mfu}, peak RSS {:.0} MiB; {}",
        tokens as f64 / seconds,
        common::peak_rss_mib(),
        common::machine()
    );
}
