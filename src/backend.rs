//! Choosing the tensor backend at run time: `ndarray` (always compiled) or `cuda`
//! (behind the `cuda` cargo feature). Generic code implements [`BackendTask`] and
//! [`dispatch`] runs it on the concrete autodiff backend picked by [`BackendKind`].

use std::fmt;
use std::str::FromStr;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// The ndarray (CPU) backend with autodiff, f32.
pub type NdarrayBackend = Autodiff<NdArray<f32>>;

/// The CUDA backend with autodiff, f32 floats and i32 ints.
#[cfg(feature = "cuda")]
pub type CudaBackend = Autodiff<burn::backend::Cuda<f32, i32>>;

/// A tensor backend xp can run on. Written lowercase in files and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// CPU, pure Rust (burn-ndarray); always available.
    Ndarray,
    /// NVIDIA GPU (burn-cuda); needs the `cuda` cargo feature and a driver.
    Cuda,
}

/// Why a backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend.
    #[error("unknown backend {name:?}; expected one of: ndarray, cuda")]
    Unknown {
        /// What was given.
        name: String,
    },
    /// `cuda` was asked for, but this binary was built without it.
    #[error(
        "xp was built without the `cuda` feature; reinstall with \
         `cargo install --features cuda` (needs the CUDA toolkit) or use `--backend ndarray`"
    )]
    CudaNotCompiled,
    /// The CPU thread pool could not be configured (e.g. it was already built).
    #[error("cannot set the CPU thread count to {threads}: {reason}")]
    ThreadPool {
        /// The requested number of threads.
        threads: usize,
        /// What rayon reported.
        reason: String,
    },
}

impl BackendKind {
    /// All kinds, in the order they are documented.
    pub const ALL: [BackendKind; 2] = [BackendKind::Ndarray, BackendKind::Cuda];

    /// The lowercase name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this binary contains the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Ndarray => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// `Ok` when this binary contains the backend; otherwise an error that says how to get it.
    pub fn check_available(self) -> Result<(), BackendError> {
        if self.is_compiled() {
            Ok(())
        } else {
            Err(BackendError::CudaNotCompiled)
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| BackendError::Unknown {
                name: s.to_string(),
            })
    }
}

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

/// Work that is generic over the backend; [`dispatch`] picks the backend at run time.
///
/// `B` is an autodiff backend: training uses it directly, evaluation uses
/// `B::InnerBackend` (e.g. via `module.valid()`), where dropout is off.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs the task on `device` of backend `B`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on device `device_index` of the backend `kind` (ndarray has one device;
/// the index is the GPU ordinal for cuda).
pub fn dispatch<T: BackendTask>(
    kind: BackendKind,
    device_index: usize,
    task: T,
) -> Result<T::Output, BackendError> {
    kind.check_available()?;
    match kind {
        BackendKind::Ndarray => {
            let _ = device_index;
            Ok(task.run::<NdarrayBackend>(burn::backend::ndarray::NdArrayDevice::Cpu))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            let device = burn::backend::cuda::CudaDevice::new(device_index);
            Ok(task.run::<CudaBackend>(device))
        }
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => Err(BackendError::CudaNotCompiled),
    }
}

/// Sets the number of threads of the CPU (rayon) pool that burn-ndarray runs on.
/// Call it once, before any tensor work; `0` keeps rayon's default (one per core).
///
/// ndarray's matrix products also use matrixmultiply's own threads, set by the
/// `MATMUL_NUM_THREADS` environment variable (default: physical cores).
pub fn set_cpu_threads(threads: usize) -> Result<(), BackendError> {
    if threads == 0 {
        return Ok(());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| BackendError::ThreadPool {
            threads,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.to_string().parse::<BackendKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<BackendKind>(&json).unwrap(), kind);
        }
        assert!(matches!(
            "CUDA".parse::<BackendKind>(),
            Err(BackendError::Unknown { .. })
        ));
    }

    struct AddOne;
    impl BackendTask for AddOne {
        type Output = f32;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> f32 {
            let t = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.0], &device);
            use burn::tensor::ElementConversion;
            (t + 1.0).sum().into_scalar().elem()
        }
    }

    #[test]
    fn dispatch_runs_on_ndarray_and_reports_missing_cuda() {
        let sum = dispatch(BackendKind::Ndarray, 0, AddOne).unwrap();
        assert_eq!(sum, 5.0);
        if !cfg!(feature = "cuda") {
            let err = dispatch(BackendKind::Cuda, 0, AddOne).unwrap_err();
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}
