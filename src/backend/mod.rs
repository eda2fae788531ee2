//! THE one place that knows backends: which exist ([`BackendKind`]), how work runs on
//! the one picked at run time ([`dispatch`]), and the host-memory access the CPU
//! backend's fast paths use.

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub mod cubecl;
mod dispatch;
mod kind;
mod ops;

#[cfg(feature = "cuda")]
pub use dispatch::CudaBackend;
pub use dispatch::{BackendTask, NdarrayBackend, dispatch, set_cpu_threads};
pub use kind::{BackendError, BackendKind, Precision};
pub use ops::{
    AdamWStep, BeamStep, KvStore, NllStats, TensorCache, XpAutodiffBackend, XpBackend,
    adamw_update_with_tensors, attention, beam_candidates_with_tensors,
    shifted_nll_backward_with_tensors, shifted_nll_with_tensors,
};

/// Whether `B` is the plain ndarray backend, whose float tensors are host arrays
/// (autodiff wraps them in its own type, so `Autodiff<NdArray>` is not). Code that
/// works on host memory directly for speed (the optimizer update, inference
/// products) asks this one question.
pub fn is_ndarray<B: burn::tensor::backend::Backend>() -> bool {
    std::any::TypeId::of::<B::FloatTensorPrimitive>()
        == std::any::TypeId::of::<burn::backend::ndarray::NdArrayTensor>()
}

/// `t` as a tensor of backend `To`, if `B` is `To` (a type check at run time). Lets
/// generic code hand a tensor to an operation written for one concrete backend (the
/// CPU training backend's fused operations) and take the result back.
pub(crate) fn as_backend<B, To, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
) -> Option<burn::tensor::Tensor<To, D>>
where
    B: burn::tensor::backend::Backend,
    To: burn::tensor::backend::Backend,
{
    let boxed: Box<dyn std::any::Any> = Box::new(t);
    boxed.downcast().ok().map(|t| *t)
}

/// The f32 array behind an ndarray tensor primitive, sharing its buffer (`None` for
/// other element types).
pub(crate) fn ndarray_f32(
    t: &burn::backend::ndarray::NdArrayTensor,
) -> Option<ndarray::ArcArray<f32, ndarray::IxDyn>> {
    match t {
        burn::backend::ndarray::NdArrayTensor::F32(storage) => Some(storage.clone().into_shared()),
        _ => None,
    }
}

/// The f32 array behind `t` (shares its buffer), if `B` is the plain ndarray backend
/// and `t` holds f32.
pub(crate) fn host_f32<B, const D: usize>(
    t: &burn::tensor::Tensor<B, D>,
) -> Option<ndarray::ArcArray<f32, ndarray::IxDyn>>
where
    B: burn::tensor::backend::Backend,
{
    let primitive: Box<dyn std::any::Any> = Box::new(t.clone().into_primitive().tensor());
    ndarray_f32(&*primitive.downcast().ok()?)
}

/// The values of `t` in row-major order. On the CPU backend straight from its array
/// (one copy; burn's `into_data` walks a dynamic-rank iterator element by element,
/// which costs more than the products for a decoding step's logits); elsewhere via
/// `into_data`.
pub fn into_host_vec<B, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
) -> Result<Vec<f32>, burn::tensor::DataError>
where
    B: burn::tensor::backend::Backend,
{
    if let Some(array) = host_f32(&t) {
        drop(t);
        let values = array.as_standard_layout();
        return Ok(values.as_slice().expect("standard layout").to_vec());
    }
    t.into_data().convert::<f32>().into_vec::<f32>()
}
