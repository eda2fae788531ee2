//! Matrix products for inference on the CPU backend without burn-ndarray's copies.
//!
//! burn-ndarray 0.21 copies a whole tensor on every reshape, even when the layout
//! allows a view (`to_shape` returns a view that `into_shared` then clones; fixed
//! upstream after 0.21 in tracel-ai/burn#5067). Its matmul reshapes both operands and
//! the result, so each linear layer copies its weight matrix and each attention
//! product copies the cached keys/values, on every call: for beam search on OPT-125m
//! that is the whole model (~500 MB) per generated token, more than the arithmetic.
//!
//! Here the same `ndarray::linalg::general_mat_mul` that burn-ndarray calls runs on
//! the operands as they are (strided views are fine: matrixmultiply packs them into
//! the same panels), so results are bitwise those of `Tensor::matmul` (tested below).
//! The plain ndarray backend (inference: generation, evaluation) takes this path;
//! training on the CPU (autodiff over ndarray) gets the same products with their
//! gradients from `host_autodiff_matmul`; every other backend gets burn's own ops.
//!
//! Decoding steps (one new position per sequence, so a handful of rows) use
//! [`Kernel::Stream`] for the weight products: each weight is packed once per
//! generation into panels (`super::panels`), kept in the KV cache's [`PanelStore`],
//! and streamed through register tiles.

use std::any::Any;

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_ndarray::NdArrayTensor;

use super::cache::KvCache;
use super::host_autodiff_matmul;
use super::panels::PanelStore;
use crate::backend::{host_f32, is_ndarray};
use ndarray::{ArcArray, Array2, Array3, ArrayView2, Axis, Ix2, IxDyn, linalg::general_mat_mul};
use rayon::prelude::*;
use std::sync::Arc;

/// Which product the CPU backend runs for a weight matrix.
#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    /// `general_mat_mul`, as burn does (many rows: prompts, training, evaluation).
    Gemm,
    /// The weight's panels from this store streamed through register tiles (a
    /// decoding step).
    Stream(Arc<PanelStore>),
}

impl Kernel {
    /// [`Kernel::Stream`] with the cache's panels when each sequence brings one new
    /// position to a cache (decoding), else [`Kernel::Gemm`].
    pub(crate) fn for_step<B: Backend>(positions: usize, cache: Option<&KvCache<B>>) -> Kernel {
        match cache {
            Some(cache) if positions == 1 => Kernel::Stream(cache.panels().clone()),
            _ => Kernel::Gemm,
        }
    }
}

/// `x` `[rows, in]` through `layer` (weight `[in, out]`, optional bias `[out]`):
/// `x · W + b`, `[rows, out]`.
pub(crate) fn linear<B: Backend>(
    layer: &Linear<B>,
    x: Tensor<B, 2>,
    kernel: &Kernel,
) -> Tensor<B, 2> {
    let out = if is_ndarray::<B>() {
        matmul_2d(x, layer.weight.val(), kernel)
    } else {
        // Training on the CPU: burn's linear is this product plus the bias, with the
        // same backward products; other backends keep burn's op.
        match host_autodiff_matmul::matmul_2d(&x, &layer.weight.val()) {
            Some(out) => out,
            None => return layer.forward(x),
        }
    };
    match &layer.bias {
        // burn adds the bias as a separate f32 addition, as here.
        Some(b) => out + b.val().unsqueeze::<2>(),
        None => out,
    }
}

/// `x` `[rows, k]` · `w` `[k, n]` (any layout of `w`: the LM head is a transposed view).
pub(crate) fn matmul_2d<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    kernel: &Kernel,
) -> Tensor<B, 2> {
    if !is_ndarray::<B>() {
        return host_autodiff_matmul::matmul_2d(&x, &w).unwrap_or_else(|| x.matmul(w));
    }
    let (Some(xs), Some(ws)) = (host_f32(&x), host_f32(&w)) else {
        return x.matmul(w);
    };
    to_tensor::<B, 2>(product(&xs, &ws, kernel).into_dyn().into_shared())
}

/// `x` `[rows, k]` · `w` `[k, n]` on host arrays with the chosen kernel.
fn product(x: &ArcArray<f32, IxDyn>, w: &ArcArray<f32, IxDyn>, kernel: &Kernel) -> Array2<f32> {
    let x2 = x.view().into_dimensionality::<Ix2>().expect("2-D input");
    if let Kernel::Stream(store) = kernel {
        return store.panels(w).product(&x2);
    }
    let w2 = w.view().into_dimensionality::<Ix2>().expect("2-D weight");
    let mut out = Array2::<f32>::zeros((x2.nrows(), w2.ncols()));
    general_mat_mul(1.0, &x2, &w2, 0.0, &mut out);
    out
}

/// `a` `[..., m, k]` · `b` `[..., k, n]` (equal leading dimensions) -> `[..., m, n]`.
pub(crate) fn matmul<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    if !is_ndarray::<B>() || a.dims()[..D - 2] != b.dims()[..D - 2] {
        // Other backends, and broadcasting: burn's matmul.
        return a.matmul(b);
    }
    let (Some(a), Some(b)) = (host_f32(&a), host_f32(&b)) else {
        return a.matmul(b);
    };
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
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
    to_tensor::<B, D>(out.into_shared())
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

/// An f32 array as a tensor of `B` (only called once [`is_ndarray`] said so).
fn to_tensor<B: Backend, const D: usize>(array: ArcArray<f32, IxDyn>) -> Tensor<B, D> {
    let boxed: Box<dyn Any> = Box::new(NdArrayTensor::from(array));
    let primitive = *boxed
        .downcast::<B::FloatTensorPrimitive>()
        .expect("B is the ndarray backend");
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    type B = NdArray<f32>;

    fn bits<const D: usize>(t: Tensor<B, D>) -> Vec<u32> {
        t.into_data()
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    fn random<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    #[test]
    fn linear_is_bitwise_burns_linear() {
        <B as Backend>::seed(&Default::default(), 3);
        for (rows, d_in, d_out, bias) in [(20, 48, 200, true), (7, 33, 5, false), (1, 64, 64, true)]
        {
            let layer: Linear<B> = LinearConfig::new(d_in, d_out)
                .with_bias(bias)
                .init(&Default::default());
            let x = random([rows, d_in]);
            assert_eq!(
                bits(linear(&layer, x.clone(), &Kernel::Gemm)),
                bits(layer.forward(x))
            );
        }
    }

    /// Plain f64 reference of `x · w`.
    fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for r in 0..m {
            for kk in 0..k {
                for j in 0..n {
                    out[r * n + j] += x[r * k + kk] as f64 * w[kk * n + j] as f64;
                }
            }
        }
        out
    }

    #[test]
    fn the_streaming_kernel_computes_the_product_row_by_row() {
        <B as Backend>::seed(&Default::default(), 5);
        let kernel = Kernel::Stream(Arc::default());
        // Row-major weights and a transposed one (the LM head from the embedding table).
        for (m, k, n, transposed) in [(1, 64, 300, false), (20, 96, 513, false), (5, 24, 40, true)]
        {
            let x = random([m, k]);
            let w = if transposed {
                random([n, k]).transpose()
            } else {
                random([k, n])
            };
            let got = matmul_2d(x.clone(), w.clone(), &kernel)
                .into_data()
                .into_vec::<f32>()
                .unwrap();
            let xs = x.into_data().into_vec::<f32>().unwrap();
            let ws = w.into_data().into_vec::<f32>().unwrap(); // row-major [k, n]
            let want = reference(&xs, &ws, m, k, n);
            for (g, e) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - e).abs() <= 1e-5 * (1.0 + e.abs()),
                    "{g} vs {e}"
                );
            }
            // Bitwise the plain sequential f32 sum (the numerics contract).
            let mut sequential = vec![0f32; m * n];
            for r in 0..m {
                for kk in 0..k {
                    for j in 0..n {
                        sequential[r * n + j] += xs[r * k + kk] * ws[kk * n + j];
                    }
                }
            }
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                sequential.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn batched_products_on_strided_views_are_bitwise_burns_matmul() {
        <B as Backend>::seed(&Default::default(), 4);
        // Attention over a cache buffer: queries · keysᵀ and probabilities · values,
        // with keys/values a narrowed (non-contiguous) view of a larger buffer.
        let keys = random([3, 2, 16, 8]).narrow(2, 0, 11); // [b, h, 11, hd] of 16
        let q = random([3, 2, 1, 8]);
        let kt = keys.clone().swap_dims(2, 3);
        assert_eq!(bits(matmul(q.clone(), kt.clone())), bits(q.matmul(kt)));
        let probs = random([3, 2, 5, 11]);
        assert_eq!(
            bits(matmul(probs.clone(), keys.clone())),
            bits(probs.matmul(keys))
        );
        // A transposed 2-D right-hand side (the LM head from the embedding table).
        let table = random([40, 8]);
        let h = random([6, 8]);
        let head = table.transpose();
        assert_eq!(bits(matmul(h.clone(), head.clone())), bits(h.matmul(head)));
    }

    #[test]
    fn other_backends_and_broadcasts_use_burns_ops() {
        type AB = burn::backend::Autodiff<B>;
        assert!(is_ndarray::<B>());
        assert!(!is_ndarray::<AB>());
        let device = Default::default();
        let a = Tensor::<AB, 3>::ones([2, 3, 4], &device).require_grad();
        let b = Tensor::<AB, 3>::ones([2, 4, 5], &device);
        let grads = matmul(a.clone(), b).sum().backward();
        assert!(a.grad(&grads).is_some(), "still on the autodiff graph");
        let broadcast = matmul(random([2, 3, 4]), random([1, 4, 5]));
        assert_eq!(broadcast.dims(), [2, 3, 5]);
    }
}
