//! AdamW training steps against PyTorch: 3 steps of torch.optim.AdamW on a tiny OPT
//! (dropout 0) from tests/fixtures/train/adamw (made by scripts/make_train_fixtures.py).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use safetensors::SafeTensors;
use xp::backend::NdarrayBackend as B;
use xp::backend::XpAutodiffBackend;
use xp::model::score::causal_lm_loss;
use xp::model::{Opt, load_pretrained, save_pretrained};
use xp::train::{AdamW, AdamWConfig, Gradients};

const LR: f64 = 1e-3;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/adamw")
}

fn read_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

struct Reference {
    batches: Vec<i64>,
    shape: Vec<usize>,
    losses: Vec<f64>,
    finals: HashMap<String, Vec<f32>>,
}

fn reference() -> Reference {
    let bytes = std::fs::read(fixture().join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let batches = st.tensor("batches").unwrap();
    let shape = batches.shape().to_vec();
    let batches = batches
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let losses = st
        .tensor("losses")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let finals = st
        .names()
        .into_iter()
        .filter_map(|n| {
            n.strip_prefix("final.")
                .map(|k| (n.to_string(), k.to_string()))
        })
        .map(|(n, k)| (k, read_f32(st.tensor(&n).unwrap().data())))
        .collect();
    Reference {
        batches,
        shape,
        losses,
        finals,
    }
}

fn batch<BB: Backend>(
    r: &Reference,
    step: usize,
    rows: std::ops::Range<usize>,
    device: &BB::Device,
) -> Tensor<BB, 2, Int> {
    let (b, t) = (r.shape[1], r.shape[2]);
    let ids: Vec<i64> = rows
        .clone()
        .flat_map(|row| {
            let start = (step * b + row) * t;
            r.batches[start..start + t].to_vec()
        })
        .collect();
    Tensor::from_data(TensorData::new(ids, [rows.len(), t]), device)
}

/// Runs the 3 steps with batches split into `micro` rows; returns losses and weights by HF key.
fn train(micro: usize) -> (Vec<f64>, HashMap<String, Vec<f32>>) {
    train_on::<B>(micro, &Default::default())
}

fn train_on<AB: XpAutodiffBackend>(
    micro: usize,
    device: &AB::Device,
) -> (Vec<f64>, HashMap<String, Vec<f32>>) {
    let r = reference();
    let (mut model, config): (Opt<AB>, _) =
        load_pretrained(&fixture().join("model"), device).unwrap();
    let mut adamw = AdamW::new(AdamWConfig::default());
    let mut losses = Vec::new();
    let b = r.shape[1];
    for step in 0..r.shape[0] {
        let mut grads = Gradients::default();
        let mut total = 0.0;
        for start in (0..b).step_by(micro) {
            let ids = batch::<AB>(&r, step, start..(start + micro).min(b), device);
            let rows = ids.dims()[0];
            let logits = model.forward(ids.clone(), None, None).unwrap();
            let mut loss = causal_lm_loss(logits, ids, None).unwrap();
            if rows != b {
                loss = loss.mul_scalar(rows as f64 / b as f64);
            }
            total += loss.clone().into_scalar().elem::<f64>();
            grads.accumulate::<AB, _>(&model, &loss.backward());
        }
        losses.push(total);
        model = adamw.step::<AB, _>(LR, model, grads);
    }
    let dir = tempfile::tempdir().unwrap();
    save_pretrained(&model, &config, dir.path(), None).unwrap();
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let weights = st
        .names()
        .into_iter()
        .map(|n| {
            let key = n.strip_prefix("model.").unwrap_or(n).to_string();
            (key, read_f32(st.tensor(n).unwrap().data()))
        })
        .collect();
    (losses, weights)
}

/// The key-projection biases get a gradient that is zero in exact arithmetic (a bias
/// on every key adds the same q·b to all scores of a query; softmax cancels it), so
/// both frameworks' gradients are rounding noise of ~1e-9, which Adam's m/√v scales
/// up to ±lr per step. They are compared separately, against the size of that noise.
fn is_noise_only(key: &str) -> bool {
    key.ends_with("self_attn.k_proj.bias")
}

fn max_abs_diff(a: &HashMap<String, Vec<f32>>, b: &HashMap<String, Vec<f32>>) -> (f32, String) {
    assert_eq!(a.len(), b.len(), "same parameters");
    let mut worst = (0.0f32, String::new());
    for (key, x) in a.iter().filter(|(k, _)| !is_noise_only(k)) {
        let y = b.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(x.len(), y.len(), "{key}");
        for (u, v) in x.iter().zip(y) {
            if (u - v).abs() > worst.0 {
                worst = ((u - v).abs(), key.clone());
            }
        }
    }
    worst
}

/// The share of elements (outside the noise-only parameters) differing by more than `tol`.
fn fraction_off(a: &HashMap<String, Vec<f32>>, b: &HashMap<String, Vec<f32>>, tol: f32) -> f64 {
    let (mut off, mut total) = (0usize, 0usize);
    for (key, x) in a.iter().filter(|(k, _)| !is_noise_only(k)) {
        for (u, v) in x.iter().zip(&b[key]) {
            total += 1;
            off += usize::from((u - v).abs() > tol);
        }
    }
    off as f64 / total as f64
}

/// Every step's loss within 1e-5 relative of PyTorch's.
fn assert_losses_match(losses: &[f64], torch: &[f64]) {
    assert_eq!(losses.len(), torch.len());
    for (step, (got, want)) in losses.iter().zip(torch).enumerate() {
        let rel = (got - want).abs() / want.abs();
        eprintln!("step {step}: loss {got} vs torch {want} (rel {rel:.2e})");
        assert!(rel < 1e-5, "step {step}: loss {got} vs {want}");
    }
}

#[test]
fn three_adamw_steps_match_pytorch() {
    let r = reference();
    let (losses, weights) = train(r.shape[1]);
    assert_losses_match(&losses, &r.losses);
    let (err, key) = max_abs_diff(&weights, &r.finals);
    let off = fraction_off(&weights, &r.finals, 1e-5);
    eprintln!(
        "weights after 3 steps: max abs diff {err:.3e} ({key}); {:.4}% of elements off by > 1e-5",
        off * 100.0
    );
    // The tolerance: every weight within 1e-5 of PyTorch's (seen: 8.6e-7).
    assert!(err < 1e-5, "{key}: {err}");
    assert_eq!(off, 0.0);
    // Noise-only parameters move by at most 3 steps of lr (plus weight decay).
    for (key, x) in weights.iter().filter(|(k, _)| is_noise_only(k)) {
        let y = &r.finals[key];
        let worst = x
            .iter()
            .zip(y)
            .map(|(u, v)| (u - v).abs())
            .fold(0.0, f32::max);
        eprintln!("{key}: max abs diff {worst:.3e} (gradient is rounding noise)");
        assert!(worst <= 2.0 * 3.0 * LR as f32 * 1.01, "{key}: {worst}");
    }
    // The update is not a no-op: the weights moved by far more than the tolerance.
    let start = train_start_weights();
    let (moved, _) = max_abs_diff(&start, &r.finals);
    assert!(moved > 1e-3, "weights moved by {moved}");
}

/// The same 3 steps on the CUDA backend (run on a GPU machine), in exact f32: as on
/// wgpu, only summation orders (and NVRTC's fused multiply-adds) differ from PyTorch's
/// CPU reference, so the CPU test's bound, 1e-5.
#[cfg(feature = "cuda")]
#[test]
fn three_adamw_steps_match_pytorch_on_cuda() {
    let r = reference();
    let (losses, weights) =
        train_on::<xp::backend::cubecl::CudaBackend>(r.shape[1], &Default::default());
    assert_losses_match(&losses, &r.losses);
    let (err, key) = max_abs_diff(&weights, &r.finals);
    eprintln!("cuda weights after 3 steps: max abs diff {err:.3e} ({key})");
    assert!(err < 1e-5, "{key}: {err}");
}

/// The same 3 steps on the wgpu backend (Mesa's lavapipe in CI; skipped with a message
/// without an adapter). Its products are exact f32 like the CPU's and like PyTorch's
/// reference, so only summation orders differ (products in k order, reductions as
/// trees), as they do between the CPU backend and PyTorch: the CPU test's bound, 1e-5.
#[cfg(feature = "wgpu")]
#[test]
fn three_adamw_steps_match_pytorch_on_wgpu() {
    use xp::backend::cubecl::{WgpuBackend, wgpu_adapter, wgpu_device};
    let Some(adapter) = wgpu_adapter() else {
        eprintln!("SKIPPED: no wgpu adapter (on Linux: apt-get install mesa-vulkan-drivers)");
        return;
    };
    eprintln!("wgpu adapter: {adapter}");
    let r = reference();
    let (losses, weights) = train_on::<WgpuBackend>(r.shape[1], &wgpu_device());
    assert_losses_match(&losses, &r.losses);
    let (err, key) = max_abs_diff(&weights, &r.finals);
    let off = fraction_off(&weights, &r.finals, 1e-5);
    eprintln!(
        "wgpu weights after 3 steps: max abs diff {err:.3e} ({key}); {:.4}% of elements off by > 1e-5",
        off * 100.0
    );
    assert!(err < 1e-5, "{key}: {err}");
}

fn train_start_weights() -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(fixture().join("model/model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.names()
        .into_iter()
        .map(|n| {
            let key = n.strip_prefix("model.").unwrap_or(n).to_string();
            (key, read_f32(st.tensor(n).unwrap().data()))
        })
        .collect()
}

#[test]
fn micro_batches_give_the_full_batch_update() {
    let (full_losses, full) = train(4);
    let (micro_losses, micro) = train(1);
    for (a, b) in full_losses.iter().zip(&micro_losses) {
        assert!((a - b).abs() / a < 1e-6, "{a} vs {b}");
    }
    let (err, key) = max_abs_diff(&full, &micro);
    let off = fraction_off(&full, &micro, 1e-5);
    eprintln!(
        "micro_batch 1 vs 4: max abs diff {err:.3e} ({key}); {:.4}% of elements off by > 1e-5",
        off * 100.0
    );
    // Accumulating 4 micro-batches sums the same gradients in another order (seen:
    // 1.2e-7).
    assert!(err < 1e-5, "{key}: {err}");
    assert_eq!(off, 0.0);
}
