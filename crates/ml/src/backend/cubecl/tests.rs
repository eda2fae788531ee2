//! The exact f32 product on wgpu (Mesa's lavapipe in CI): against an f64 reference,
//! against a sequential f32 sum bit for bit, through `XpBackend::product` in both
//! precisions, and the cache directory of `configure_caches`. Without a wgpu adapter
//! every test says so on stderr and passes.
#![cfg(feature = "wgpu")]

use std::time::Instant;

use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use super::*;

type W = WgpuInner;

/// The device, or `None` (with a visible message) when there is no wgpu adapter.
fn device(test: &str) -> Option<burn_wgpu::WgpuDevice> {
    match wgpu_adapter() {
        Some(adapter) => {
            eprintln!("{test}: wgpu adapter {adapter}");
            Some(wgpu_device())
        }
        None => {
            eprintln!(
                "SKIPPED {test}: no wgpu adapter (on Linux: apt-get install mesa-vulkan-drivers)"
            );
            None
        }
    }
}

/// Deterministic values in [-1, 1) (a 64-bit LCG), exactly representable in f32.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32) / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    device: &burn_wgpu::WgpuDevice,
) -> Tensor<W, D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn host<const D: usize>(t: Tensor<W, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

/// `exact_matmul` called by name (not through `Tensor::matmul`).
fn exact<const D: usize>(a: Tensor<W, D>, b: Tensor<W, D>) -> Tensor<W, D> {
    let out = exact_matmul(a.into_primitive().tensor(), b.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// A row-major `[batch, m, k] · [batch, k, n]` on the host: the f64 product, the sum
/// of |terms| (the scale of the f32 rounding error), and two f32 sums in `k` order,
/// one with separate multiply and add, one with fused multiply-adds.
struct Reference {
    f64: Vec<f64>,
    abs: Vec<f64>,
    seq: Vec<f32>,
    seq_fma: Vec<f32>,
}

fn reference(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Reference {
    let size = batch * m * n;
    let mut r = Reference {
        f64: Vec::with_capacity(size),
        abs: Vec::with_capacity(size),
        seq: Vec::with_capacity(size),
        seq_fma: Vec::with_capacity(size),
    };
    for bi in 0..batch {
        let (a, b) = (&a[bi * m * k..][..m * k], &b[bi * k * n..][..k * n]);
        for i in 0..m {
            for j in 0..n {
                let (mut exact, mut abs, mut seq, mut fma) = (0f64, 0f64, 0f32, 0f32);
                for p in 0..k {
                    let (x, y) = (a[i * k + p], b[p * n + j]);
                    exact += x as f64 * y as f64;
                    abs += (x as f64 * y as f64).abs();
                    seq += x * y;
                    fma = x.mul_add(y, fma);
                }
                r.f64.push(exact);
                r.abs.push(abs);
                r.seq.push(seq);
                r.seq_fma.push(fma);
            }
        }
    }
    r
}

/// Largest |got - exact| / Σ|terms| (the f32 dot-product error bound is
/// `k·u·Σ|terms|`, u = 2^-24; TF32 operands add ~2^-11 of each term).
fn max_rel(got: &[f32], r: &Reference) -> f64 {
    got.iter()
        .zip(r.f64.iter().zip(&r.abs))
        .map(|(&g, (&e, &s))| (g as f64 - e).abs() / s.max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// Which sequential f32 sum `got` equals bit for bit, if any.
fn sequential_order(got: &[f32], r: &Reference) -> &'static str {
    let same = |want: &[f32]| {
        got.iter()
            .zip(want)
            .all(|(g, w)| g.to_bits() == w.to_bits())
    };
    if same(&r.seq) {
        "sequential k, separate multiply and add"
    } else if same(&r.seq_fma) {
        "sequential k, fused multiply-add"
    } else {
        "not a sequential k sum"
    }
}

/// Bitwise differences from the closer sequential sum, for the message.
fn mismatches(got: &[f32], r: &Reference) -> usize {
    let count = |want: &[f32]| {
        got.iter()
            .zip(want)
            .filter(|(g, w)| g.to_bits() != w.to_bits())
            .count()
    };
    count(&r.seq).min(count(&r.seq_fma))
}

const REL_TOL: f64 = 1e-5;

#[test]
fn exact_product_of_batched_operands_matches_f64_and_sums_k_in_order() {
    let Some(device) = device("exact_product_of_batched_operands") else {
        return;
    };
    let (b0, b1, m, k, n) = (3, 2, 17, 33, 9);
    let (av, bv) = (values(b0 * b1 * m * k, 1), values(b0 * b1 * k * n, 2));
    let r = reference(&av, &bv, b0 * b1, m, k, n);
    let a = tensor(av, [b0, b1, m, k], &device);
    let b = tensor(bv.clone(), [b0, b1, k, n], &device);
    let got = host(exact(a.clone(), b));
    let rel = max_rel(&got, &r);
    let order = sequential_order(&got, &r);
    eprintln!("[3,2,17,33]·[3,2,33,9]: max rel error {rel:.2e}; summation: {order}");
    assert!(rel <= REL_TOL, "max rel error {rel:e}");
    assert_ne!(
        order,
        "not a sequential k sum",
        "{} elements differ",
        mismatches(&got, &r)
    );

    // The same rhs as a transposed view: stored [3, 2, 9, 33], swapped to [.., 33, 9].
    let mut bt = vec![0f32; bv.len()];
    for bi in 0..b0 * b1 {
        for p in 0..k {
            for j in 0..n {
                bt[bi * k * n + j * k + p] = bv[bi * k * n + p * n + j];
            }
        }
    }
    let bt = tensor(bt, [b0, b1, n, k], &device).swap_dims(2, 3);
    let got_t = host(exact(a, bt));
    let rel = max_rel(&got_t, &r);
    eprintln!(
        "transposed rhs view: max rel error {rel:.2e}; summation: {}",
        sequential_order(&got_t, &r)
    );
    assert!(rel <= REL_TOL, "transposed rhs: max rel error {rel:e}");
}

#[test]
fn exact_product_of_the_opt_head_shape_matches_f64() {
    let Some(device) = device("exact_product_of_the_opt_head_shape") else {
        return;
    };
    // x [20, 768] · Eᵀ with E [50272, 768]: the LM head, rhs a transposed view. The
    // reference is checked on a column slice (the host sums are slow unoptimised).
    // E is 154 MB; a device whose largest buffer is smaller (lavapipe: 128 MiB) gets
    // the widest head that fits.
    let (m, k, cols) = (20, 768, 2048);
    let max = max_tensor_bytes::<burn_wgpu::WgpuRuntime>(&device);
    let vocab = if 50272 * k * 4 <= max { 50272 } else { 32768 };
    eprintln!("largest tensor {} MiB: vocab {vocab}", max >> 20);
    let (xv, ev) = (values(m * k, 3), values(vocab * k, 4));
    let x = tensor(xv.clone(), [m, k], &device);
    let e = tensor(ev.clone(), [vocab, k], &device);
    let got = host(exact(x.clone(), e.clone().transpose()));
    assert_eq!(got.len(), m * vocab);
    // Columns [1000, 1000 + cols) of the product, and of Eᵀ row-major for the reference.
    let first = 1000;
    let mut et = vec![0f32; k * cols];
    for p in 0..k {
        for j in 0..cols {
            et[p * cols + j] = ev[(first + j) * k + p];
        }
    }
    let r = reference(&xv, &et, 1, m, k, cols);
    let slice: Vec<f32> = (0..m)
        .flat_map(|i| got[i * vocab + first..][..cols].to_vec())
        .collect();
    let rel = max_rel(&slice, &r);
    let order = sequential_order(&slice, &r);
    eprintln!(
        "[20,768]·[768,{vocab}] (columns {first}..{}): max rel error {rel:.2e}; summation: {order}",
        first + cols
    );
    assert!(rel <= REL_TOL, "max rel error {rel:e}");
    assert_ne!(
        order,
        "not a sequential k sum",
        "{} elements differ",
        mismatches(&slice, &r)
    );

    // A narrowed rhs (a column slice of Eᵀ, i.e. rows of E) gives the same columns.
    let narrow = host(exact(x, e.narrow(0, first, cols).transpose()));
    assert_eq!(narrow.len(), m * cols);
    let rel = max_rel(&narrow, &r);
    eprintln!("narrowed rhs view: max rel error {rel:.2e}");
    assert!(rel <= REL_TOL, "narrowed rhs: max rel error {rel:e}");
}

#[test]
fn product_follows_the_process_precision() {
    let Some(device) = device("product_follows_the_process_precision") else {
        return;
    };
    let (m, k, n) = (64, 256, 96);
    let (av, bv) = (values(m * k, 5), values(k * n, 6));
    let r = reference(&av, &bv, 1, m, k, n);
    let a = tensor(av, [m, k], &device);
    let b = tensor(bv, [k, n], &device);
    assert_eq!(precision(), Precision::F32, "the default");
    let exact_result = host(exact(a.clone(), b.clone()));
    let via_trait = host(<W as XpBackend>::product(a.clone(), b.clone()));
    assert_eq!(via_trait, exact_result, "F32: product is exact_matmul");
    set_precision(Precision::Tf32);
    let burn_default = host(<W as XpBackend>::product(a.clone(), b.clone()));
    set_precision(Precision::F32);
    assert_eq!(
        burn_default,
        host(a.matmul(b)),
        "Tf32: product is burn's matmul"
    );
    eprintln!(
        "[64,256]·[256,96]: exact max rel error {:.2e}, burn's product {:.2e}, \
         burn's product bitwise equal to exact: {}",
        max_rel(&exact_result, &r),
        max_rel(&burn_default, &r),
        burn_default == exact_result
    );
}

/// Times `f` after one warm-up call (compilation, autotuning), as the median of 5.
fn time<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = f();
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            out = f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    (runs[2], out)
}

/// Exact product against burn's product on the shapes above, and whether burn's is
/// exact on this device. Run with `--ignored --nocapture`; numbers on lavapipe (a CPU
/// rasteriser) are for sanity only.
#[test]
#[ignore = "timing; run with --ignored --nocapture"]
fn exact_versus_burn_product_timing() {
    let Some(device) = device("exact_versus_burn_product_timing") else {
        return;
    };
    let shapes: [(&str, [usize; 4], [usize; 4]); 3] = [
        ("[3,2,17,33]·[3,2,33,9]", [3, 2, 17, 33], [3, 2, 33, 9]),
        (
            "[1,1,20,768]·[1,1,768,32768]",
            [1, 1, 20, 768],
            [1, 1, 768, 32768],
        ),
        (
            "[1,12,64,64]·[1,12,64,64]",
            [1, 12, 64, 64],
            [1, 12, 64, 64],
        ),
    ];
    for (name, sa, sb) in shapes {
        let (av, bv) = (
            values(sa.iter().product(), 7),
            values(sb.iter().product(), 8),
        );
        let a = tensor(av, sa, &device);
        let b = tensor(bv, sb, &device);
        let (t_exact, e) = time(|| host(exact(a.clone(), b.clone())));
        let (t_burn, d) = time(|| host(a.clone().matmul(b.clone())));
        let diff = e
            .iter()
            .zip(&d)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{name}: exact {:.1} ms, burn {:.1} ms (with read-back); max |exact - burn| {diff:.2e}, bitwise equal: {}",
            t_exact * 1e3,
            t_burn * 1e3,
            e == d
        );
    }
}

/// `configure_caches` in a fresh process (cubecl's configuration is fixed once read):
/// this test runs itself as a child with `XP_CUBECL_CACHE_CHILD` set.
#[test]
fn configure_caches_puts_the_autotune_cache_in_the_directory() {
    let Some(_) = device("configure_caches_puts_the_autotune_cache_in_the_directory") else {
        return;
    };
    if let Ok(dir) = std::env::var("XP_CUBECL_CACHE_CHILD") {
        let dir = std::path::PathBuf::from(dir);
        configure_caches(&dir).unwrap();
        let again = configure_caches(&dir).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        // burn's own product is autotuned: it writes the cache.
        let device = wgpu_device();
        let a = tensor(values(32 * 48, 9), [32, 48], &device);
        let b = tensor(values(48 * 40, 10), [48, 40], &device);
        let _ = host(a.matmul(b));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "backend::cubecl::tests::configure_caches_puts_the_autotune_cache_in_the_directory",
            "--nocapture",
        ])
        .env("XP_CUBECL_CACHE_CHILD", dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the child test failed");
    let files: Vec<_> = walk(dir.path());
    eprintln!("cache files: {files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("autotune")),
        "no autotune cache under {}: {files:?}",
        dir.path().display()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
