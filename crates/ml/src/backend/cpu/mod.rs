//! [`XpBackend`] for burn-ndarray (f32): host kernels that work on the arrays behind
//! the tensors directly.
//!
//! - products on the operands as they are, without burn-ndarray's reshape copies
//!   ([`matmul`]), the large ones on AVX-512 through xp's own sgemm ([`gemm`]);
//! - decoding products streaming weights packed once into panels ([`panels`]);
//! - a KV cache whose beam reorders rewrite a table instead of copying, with the
//!   decoding step's attention reading it in place ([`cache`]);
//! - the next-token NLL and its gradient in one pass each ([`loss`]);
//! - the AdamW update as one loop ([`adamw`]);
//! - a beam-search step's scores and top-k in one pass per row ([`beam`]).
//!
//! Training runs on `Autodiff<NdArray>`, whose products and loss come back here
//! through `super::autodiff`.

mod adamw;
pub mod beam;
mod cache;
mod gemm;
pub mod isa;
mod loss;
mod matmul;
mod panels;

use std::sync::Arc;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::{Bool, Int, Tensor, TensorPrimitive};
use ndarray::{ArcArray, Array, IxDyn};

use super::ops::{AdamWStep, BeamStep, NllStats, XpBackend};
use cache::HostKv;
pub use matmul::product_time;
use panels::Panels;

/// The CPU backend (inference; training wraps it in autodiff).
pub type Cpu = NdArray<f32>;

impl XpBackend for Cpu {
    type Cache = HostKv;
    type DecodeWeight = Arc<Panels>;

    fn product<const D: usize>(a: Tensor<Self, D>, b: Tensor<Self, D>) -> Tensor<Self, D> {
        matmul::product(a, b)
    }

    fn is_transposed<const D: usize>(t: &Tensor<Self, D>) -> bool {
        match t.clone().into_primitive().tensor() {
            NdArrayTensor::F32(storage) => {
                let strides = storage.into_shared().strides().to_vec();
                D >= 2 && strides[D - 2] == 1 && strides[D - 1] != 1
            }
            _ => false,
        }
    }

    fn reshape_in_place<const D1: usize, const D2: usize>(
        t: Tensor<Self, D1>,
        shape: [usize; D2],
    ) -> Tensor<Self, D2> {
        let reshaped = standard(array(t))
            .into_shape_with_order(IxDyn(&shape))
            .unwrap_or_else(|e| panic!("reshape to {shape:?}: {e}"));
        tensor(reshaped)
    }

    fn prepare_decode_weight(w: Tensor<Self, 2>) -> Self::DecodeWeight {
        let w = array(w);
        let view = w
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .expect("a 2-D weight");
        Arc::new(Panels::pack(&view))
    }

    fn decode_product(x: Tensor<Self, 2>, w: &Self::DecodeWeight) -> Tensor<Self, 2> {
        let x = array(x);
        let view = x
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .expect("2-D rows");
        tensor(w.product(&view).into_dyn().into_shared())
    }

    fn decode_attention(
        cache: &mut Self::Cache,
        layer: usize,
        heads: usize,
        query: Tensor<Self, 2>,
        key: Tensor<Self, 2>,
        value: Tensor<Self, 2>,
        blocked: Tensor<Self, 4, Bool>,
    ) -> Tensor<Self, 2> {
        cache.attend_step(layer, heads, query, key, value, blocked)
    }

    fn shifted_nll(
        logits: Tensor<Self, 3>,
        input_ids: Tensor<Self, 2, Int>,
    ) -> (Tensor<Self, 2>, NllStats<Self>) {
        loss::shifted_nll(logits, input_ids)
    }

    fn shifted_nll_backward(
        logits: Tensor<Self, 3>,
        input_ids: Tensor<Self, 2, Int>,
        stats: NllStats<Self>,
        grad: Tensor<Self, 2>,
    ) -> Tensor<Self, 3> {
        loss::shifted_nll_backward(logits, input_ids, stats, grad)
    }

    fn adamw_update(
        param: Tensor<Self, 1>,
        grad: Tensor<Self, 1>,
        moments: (Tensor<Self, 1>, Tensor<Self, 1>),
        step: &AdamWStep,
    ) -> (Tensor<Self, 1>, (Tensor<Self, 1>, Tensor<Self, 1>)) {
        adamw::adamw_update(param, grad, moments, step)
    }

    fn beam_candidates(logits: Tensor<Self, 2>, step: &BeamStep<'_>) -> Vec<Vec<(f32, usize)>> {
        beam::beam_candidates(logits, step)
    }

    /// From a thread outside the pool, `rayon::scope` runs its body on a pool worker,
    /// which then takes its share of every parallel loop in `work` itself. Run from the
    /// caller's thread instead, each of the thousands of loops of a decoding call costs
    /// a hand-off to the pool and back, and the workers spinning for the next loop take
    /// a core from the caller's serial work (BENCHMARKS.md, "Synthesis").
    fn run_on_compute_thread<R: Send>(work: impl FnOnce() -> R + Send) -> R {
        rayon::scope(|_| work())
    }

    /// Straight from the array (one copy): burn's `into_data` walks a dynamic-rank
    /// iterator element by element, which costs more than the products for a decoding
    /// step's logits.
    fn to_host_f32<const D: usize>(t: Tensor<Self, D>) -> Vec<f32> {
        values(t)
    }
}

/// The f32 array behind `t` (shares its buffer).
fn array<const D: usize>(t: Tensor<Cpu, D>) -> ArcArray<f32, IxDyn> {
    match t.into_primitive().tensor() {
        NdArrayTensor::F32(storage) => storage.into_shared(),
        other => panic!(
            "the CPU backend computes in f32, got a {:?} tensor",
            burn::tensor::TensorMetadata::dtype(&other)
        ),
    }
}

/// `array` in row-major layout (copied only when it is not).
fn standard(array: ArcArray<f32, IxDyn>) -> ArcArray<f32, IxDyn> {
    if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned().into_shared()
    }
}

/// The values of `t`, row-major.
fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    let array = array(t);
    let values = array.as_standard_layout();
    values.as_slice().expect("standard layout").to_vec()
}

/// An f32 array as a tensor.
fn tensor<const D: usize>(array: ArcArray<f32, IxDyn>) -> Tensor<Cpu, D> {
    Tensor::from_primitive(TensorPrimitive::Float(NdArrayTensor::from(array)))
}

/// Row-major `values` of `shape` as a tensor.
fn host_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<Cpu, D> {
    let array = Array::from_shape_vec(IxDyn(&shape), values).expect("matching element count");
    tensor(array.into_shared())
}
