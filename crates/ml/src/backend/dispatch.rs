//! Running backend-generic work on the backend picked at run time.

use burn::backend::{Autodiff, NdArray};

use super::kind::{BackendError, BackendKind, Precision};
use super::ops::XpAutodiffBackend;

/// The ndarray (CPU) backend with autodiff, f32.
pub type NdarrayBackend = Autodiff<NdArray<f32>>;

/// Work that is generic over the backend; [`dispatch`] picks the backend at run time.
///
/// `B` is an autodiff backend: training uses it directly, evaluation uses
/// `B::InnerBackend` (e.g. via `module.valid()`), where dropout is off.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs the task on `device` of backend `B`.
    fn run<B: XpAutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Where backend work runs: which backend, how its f32 products are computed, and
/// which device (the GPU ordinal; ndarray has one device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub kind: BackendKind,
    pub precision: Precision,
    pub device: usize,
}

impl Target {
    /// Device 0 of `kind` with exact f32 products.
    pub fn new(kind: BackendKind) -> Self {
        Target {
            kind,
            precision: Precision::default(),
            device: 0,
        }
    }
}

/// Runs `task` on `target`, on the backend's compute thread
/// ([`XpBackend::run_on_compute_thread`](super::ops::XpBackend::run_on_compute_thread)).
pub fn dispatch<T>(target: Target, task: T) -> Result<T::Output, BackendError>
where
    T: BackendTask + Send,
    T::Output: Send,
{
    fn run<B: XpAutodiffBackend, T>(task: T, device: B::Device) -> T::Output
    where
        T: BackendTask + Send,
        T::Output: Send,
    {
        B::run_on_compute_thread(move || task.run::<B>(device))
    }
    target.kind.check_runnable()?;
    match target.kind {
        BackendKind::Ndarray => {
            // The CPU computes exact f32 whatever the precision.
            Ok(run::<NdarrayBackend, T>(
                task,
                burn::backend::ndarray::NdArrayDevice::Cpu,
            ))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            prepare_gpu(target);
            let device = burn::backend::cuda::CudaDevice::new(target.device);
            Ok(run::<super::cubecl::CudaBackend, T>(task, device))
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            prepare_gpu(target);
            Ok(run::<super::cubecl::WgpuBackend, T>(
                task,
                super::cubecl::wgpu_device(),
            ))
        }
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => unreachable!("check_runnable refused it"),
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => unreachable!("check_runnable refused it"),
    }
}

/// Before GPU work: the target's precision for every product of the process, and
/// cubecl's caches (autotune results, compiled kernels) in [`gpu_cache_dir`], once per
/// process, so that a second process on the machine skips the tuning.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn prepare_gpu(target: Target) {
    static CACHES: std::sync::Once = std::sync::Once::new();
    CACHES.call_once(|| {
        if let Some(dir) = gpu_cache_dir()
            && let Err(e) = super::cubecl::configure_caches(&dir)
        {
            // Not fatal: cubecl then keeps its caches where it would by default.
            eprintln!(
                "warning: cannot keep GPU kernel caches in {}: {e}",
                dir.display()
            );
        }
    });
    super::cubecl::set_precision(target.precision);
}

/// Where cubecl's caches go: `$XP_GPU_CACHE_DIR`, else `xp/cubecl` in the user's cache
/// directory (`$XDG_CACHE_HOME`, else `~/.cache`); `None` when neither is set.
pub fn gpu_cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("XP_GPU_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("xp").join("cubecl"))
}

/// Sets the number of threads of the CPU (rayon) pool that burn-ndarray runs on.
/// Call it once, before any tensor work; `0` keeps rayon's default (one per core).
///
/// xp's own sgemm (the large products on AVX-512) runs on this pool too; the products
/// left to matrixmultiply use its own threads, set by the `MATMUL_NUM_THREADS`
/// environment variable (default: physical cores).
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
        fn run<B: XpAutodiffBackend>(self, device: B::Device) -> f32 {
            let t = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.0], &device);
            use burn::tensor::ElementConversion;
            (t + 1.0).sum().into_scalar().elem()
        }
    }

    #[test]
    fn dispatch_runs_on_ndarray_and_reports_missing_cuda() {
        let sum = dispatch(Target::new(BackendKind::Ndarray), AddOne).unwrap();
        assert_eq!(sum, 5.0);
        if !cfg!(feature = "cuda") {
            let err = dispatch(Target::new(BackendKind::Cuda), AddOne).unwrap_err();
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}
