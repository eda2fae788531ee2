//! Matrix products on the CPU backend without burn-ndarray's copies.
//!
//! burn-ndarray 0.21 copies a whole tensor on every reshape, even when the layout
//! allows a view (`to_shape` returns a view that `into_shared` then clones; fixed
//! upstream after 0.21 in tracel-ai/burn#5067). Its matmul reshapes both operands and
//! the result, so each linear layer would copy its weight matrix and each attention
//! product the cached keys/values, on every call, forward and backward.
//!
//! Here the same `ndarray::linalg::general_mat_mul` that burn-ndarray calls runs on
//! the operands as they are (strided views are fine: matrixmultiply packs them into
//! the same panels), so results are bitwise those of `Tensor::matmul` (tested below).
//! Autodiff's backward products (`super::super::autodiff`) come here too, on
//! transposed views.
//!
//! On a CPU with AVX-512 the large 2-D products (every linear layer, the LM head and
//! their gradients) run xp's own sgemm instead ([`super::gemm`]): the same sums in the
//! same order, so the same bits, faster. Attention's batched products, small ones,
//! and every product when `XP_CPU_ISA` asks for a narrower path stay with
//! matrixmultiply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::Tensor;
use ndarray::{ArcArray, Array2, Array3, ArrayView2, Axis, Ix2, IxDyn, linalg::general_mat_mul};
use rayon::prelude::*;

use super::gemm::{self, Dims, Operand};
use super::isa::{Isa, isa};
use super::{Cpu, array, tensor};

/// Products smaller than this many multiply-adds stay with matrixmultiply: below it
/// the packing and the split across threads cost more than the kernel saves.
const OWN_SGEMM_MIN_MACS: usize = 1 << 21;

/// Wall time spent in [`product`] since the process started (forward and backward
/// products alike: autodiff's backward calls it too), so a benchmark can split a step
/// into its products and everything around them.
static PRODUCT_NANOS: AtomicU64 = AtomicU64::new(0);

/// See [`PRODUCT_NANOS`].
pub fn product_time() -> Duration {
    Duration::from_nanos(PRODUCT_NANOS.load(Ordering::Relaxed))
}

/// `a` `[..., m, k]` · `b` `[..., k, n]` (equal leading dimensions) -> `[..., m, n]`.
pub(super) fn product<const D: usize>(a: Tensor<Cpu, D>, b: Tensor<Cpu, D>) -> Tensor<Cpu, D> {
    let start = Instant::now();
    let out = product_untimed(a, b);
    PRODUCT_NANOS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

fn product_untimed<const D: usize>(a: Tensor<Cpu, D>, b: Tensor<Cpu, D>) -> Tensor<Cpu, D> {
    let (a, b) = (array(a), array(b));
    if D == 2 {
        let (a2, b2) = (matrix(&a), matrix(&b));
        return tensor(product_2d(&a2, &b2).into_dyn().into_shared());
    }
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    assert_eq!(sa[..D - 2], sb[..D - 2], "products do not broadcast");
    let (m, n) = (sa[D - 2], sb[D - 1]);
    let batches: usize = sa[..D - 2].iter().product();
    let mut out = Array3::<f32>::zeros((batches, m, n));
    let (a_mats, b_mats) = (matrices(&a), matrices(&b));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(a_mats.into_par_iter().zip(b_mats))
        .for_each(|(mut c, (a, b))| general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    let mut out_shape = sa;
    out_shape[D - 1] = n;
    let out = out
        .into_shape_with_order(IxDyn(&out_shape))
        .expect("same element count");
    tensor(out.into_shared())
}

/// `a · b` for 2-D operands (any strides): xp's sgemm where it runs and pays, else
/// matrixmultiply; the same bits either way.
fn product_2d(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) -> Array2<f32> {
    let ((m, k), n) = (a.dim(), b.ncols());
    // `isa()` picks AVX-512 only where the CPU has it.
    if isa() == Isa::Avx512 && m * k * n >= OWN_SGEMM_MIN_MACS {
        let mut out = Array2::<f32>::uninit((m, n));
        let (dims, a, b) = (Dims { m, k, n }, Operand::of(a), Operand::of(b));
        // SAFETY: AVX-512 is there (`isa`); the operands are live views of `m × k` and
        // `k × n` elements, and `out` is a fresh row-major `[m, n]` that `sgemm` writes
        // whole (so it is initialised after).
        unsafe {
            gemm::sgemm(dims, a, b, out.as_mut_ptr().cast(), n);
            return out.assume_init();
        }
    }
    let mut out = Array2::<f32>::zeros((m, n));
    general_mat_mul(1.0, a, b, 0.0, &mut out);
    out
}

fn matrix(x: &ArcArray<f32, IxDyn>) -> ArrayView2<'_, f32> {
    x.view()
        .into_dimensionality::<Ix2>()
        .expect("a 2-D operand")
}

/// The trailing `[rows, cols]` matrices of `x`, batch-major, as strided views.
fn matrices(x: &ArcArray<f32, IxDyn>) -> Vec<ArrayView2<'_, f32>> {
    let mut views = vec![x.view()];
    while views[0].ndim() > 2 {
        views = views
            .into_iter()
            .flat_map(|v| {
                (0..v.len_of(Axis(0))).map(move |i| v.clone().index_axis_move(Axis(0), i))
            })
            .collect();
    }
    views
        .into_iter()
        .map(|v| v.into_dimensionality::<Ix2>().expect("2-D matrix"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;
    use burn::tensor::backend::Backend;

    use crate::backend::XpBackend;

    fn bits<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<u32> {
        t.into_data()
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    fn random<B: Backend, const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// The sum order of matrixmultiply's sgemm kernels with FMA (AVX-512 and AVX2+FMA
    /// alike, the one this CPU runs): per output element, `k` in blocks of 256, each
    /// block a chain of fused multiply-adds from zero in `k` order, the blocks added
    /// in order. Spelled out in plain Rust, it is the portable statement of what every
    /// vector path must give bitwise.
    fn blocked_fma(a: &Array2<f32>, b: &Array2<f32>) -> Vec<u32> {
        const KC: usize = 256;
        let ((m, k), n) = (a.dim(), b.ncols());
        let mut out = Vec::with_capacity(m * n);
        for i in 0..m {
            for j in 0..n {
                let mut c = 0f32;
                for (block, k0) in (0..k).step_by(KC).enumerate() {
                    let mut acc = 0f32;
                    for kk in k0..(k0 + KC).min(k) {
                        acc = a[[i, kk]].mul_add(b[[kk, j]], acc);
                    }
                    c = if block == 0 { acc } else { c + acc };
                }
                out.push(c.to_bits());
            }
        }
        out
    }

    #[test]
    fn products_are_the_blocked_fma_sums_on_the_kernel_this_cpu_runs() {
        #[cfg(target_arch = "x86_64")]
        let fma = std::arch::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let fma = false;
        if !fma {
            // x86 kernels without FMA multiply then add, another rounding; other
            // architectures' kernels are matrixmultiply's own business.
            return;
        }
        let _rng = crate::backend::seeded_rng_lock();
        <Cpu as Backend>::seed(&Default::default(), 5);
        // Three blocks of `k`, and edges around every kernel's tile (8 × 8, 16 × 16,
        // and xp's own 12 × 32, which the last shape is large enough to take).
        for (m, k, n) in [(37, 600, 45), (16, 256, 16), (5, 300, 70), (61, 600, 77)] {
            let a = random::<Cpu, 2>([m, k]);
            let b = random::<Cpu, 2>([k, n]);
            let host = |t: &Tensor<Cpu, 2>| {
                Array2::from_shape_vec((t.dims()[0], t.dims()[1]), t.to_data().to_vec().unwrap())
                    .unwrap()
            };
            let expected = blocked_fma(&host(&a), &host(&b));
            assert_eq!(bits(product(a, b)), expected, "{m}x{k}x{n}");
        }
    }

    #[test]
    fn products_on_strided_views_are_bitwise_burns_matmul() {
        let _rng = crate::backend::seeded_rng_lock();
        <Cpu as Backend>::seed(&Default::default(), 4);
        // Attention over a cache buffer: queries · keysᵀ and probabilities · values,
        // with keys/values a narrowed (non-contiguous) view of a larger buffer.
        let keys = random::<Cpu, 4>([3, 2, 16, 8]).narrow(2, 0, 11); // [b, h, 11, hd] of 16
        let q = random::<Cpu, 4>([3, 2, 1, 8]);
        let kt = keys.clone().swap_dims(2, 3);
        assert_eq!(bits(product(q.clone(), kt.clone())), bits(q.matmul(kt)));
        let probs = random::<Cpu, 4>([3, 2, 5, 11]);
        assert_eq!(
            bits(product(probs.clone(), keys.clone())),
            bits(probs.matmul(keys))
        );
        // A transposed 2-D right-hand side (the LM head from the embedding table).
        let table = random::<Cpu, 2>([40, 8]);
        let h = random::<Cpu, 2>([6, 8]);
        let head = table.transpose();
        assert_eq!(bits(product(h.clone(), head.clone())), bits(h.matmul(head)));
    }

    /// `x · w` (w = the table, or its transpose) and the gradients of the sum of
    /// `out * weights` for `x` and the table, through `product`.
    fn run<B: XpBackend + burn::tensor::backend::AutodiffBackend>(
        x: Tensor<B, 2>,
        table: Tensor<B, 2>,
        weights: Tensor<B, 2>,
        transposed: bool,
        product: impl Fn(Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 2>,
    ) -> Vec<Vec<u32>> {
        let x = x.require_grad();
        let table = table.require_grad();
        let w = if transposed {
            table.clone().transpose()
        } else {
            table.clone()
        };
        let out = product(x.clone(), w);
        let grads = (out.clone() * weights).sum().backward();
        vec![
            bits(out.inner()),
            bits(x.grad(&grads).unwrap()),
            bits(table.grad(&grads).unwrap()),
        ]
    }

    #[test]
    fn training_products_and_their_gradients_are_bitwise_burns() {
        type Ad = Autodiff<Cpu>;
        // Draws from the process's generator: others' seeded draws must not interleave.
        let _rng = crate::backend::seeded_rng_lock();
        for (m, k, n, transposed) in [(12, 16, 40, false), (6, 8, 50, true)] {
            // Drawn once, then lifted into both runs.
            let x = random::<Cpu, 2>([m, k]);
            let table = if transposed {
                random::<Cpu, 2>([n, k])
            } else {
                random::<Cpu, 2>([k, n])
            };
            let weights = random::<Cpu, 2>([m, n]);
            let lift = |t: &Tensor<Cpu, 2>| Tensor::<Ad, 2>::from_inner(t.clone());
            let ours = run(
                lift(&x),
                lift(&table),
                lift(&weights),
                transposed,
                Ad::product,
            );
            let burns = run(
                lift(&x),
                lift(&table),
                lift(&weights),
                transposed,
                |a, b| a.matmul(b),
            );
            assert_eq!(ours, burns, "{m}x{k}x{n} transposed={transposed}");
        }
    }
}
