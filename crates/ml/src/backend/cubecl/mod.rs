//! The cubecl backends, CUDA and wgpu: one implementation of [`XpBackend`] for burn's
//! generic [`CubeBackend`], whatever its runtime.
//!
//! What they specialise is the matrix product. burn 0.21 runs f32 products through
//! TF32 tensor cores whenever its autotuner picks a tensor-core kernel (cubek-matmul
//! 0.2, `definition/blueprint.rs`, `adjust_dtypes`), with no switch; TF32 keeps 10
//! mantissa bits of each operand, about 5e-4 relative rounding, which moves OPT-125m's
//! logits ~1e-2 from transformers. So [`XpBackend::product`] here runs an exact f32
//! kernel ([`exact_matmul`]: cubek's `SimpleUnit` routine, which multiplies and
//! accumulates in f32 registers, never in tensor cores) unless the process's
//! [`Precision`] is [`Precision::Tf32`], when it is burn's own product (autotuned,
//! tensor cores where the device has them). Everything else is the trait's default
//! body: plain burn tensor ops.
//!
//! # Which concrete types, and why no fusion
//!
//! burn's `Cuda`/`Wgpu` aliases wrap [`CubeBackend`] in burn-fusion's `Fusion<...>`
//! when burn's `fusion` feature is on. An op written for `CubeBackend` is not reachable
//! through `Fusion` (its tensors are lazy handles in a fusion stream, not
//! `CubeTensor`s; reaching them means registering a custom fusion operation), so xp
//! runs on `CubeBackend` itself: [`WgpuBackend`] and [`CudaBackend`], autodiff over
//! [`WgpuInner`] / [`CudaInner`]. The cost is burn-fusion's elementwise fusion (fewer,
//! larger kernels), a speed matter left to a later change; the products, which
//! dominate OPT's time, are unaffected.
//!
//! The bool element types are the ones burn-wgpu's `Wgpu` (u32: WGSL has no 8-bit
//! storage type) and burn-cuda's `Cuda` (u8) use.
//!
//! # Cold start
//!
//! cubecl keeps two caches on disk: the autotuner's choices (which kernel is fastest
//! for a shape, per device) and, on CUDA (and wgpu's SPIR-V compiler), compiled
//! kernels. By default the autotune cache is written under `target/` of the nearest
//! directory above the working directory holding a `Cargo.toml` (else the user cache
//! directory), and compiled kernels are not kept at all. [`configure_caches`] points
//! both at a directory xp chooses, before the first GPU work of the process.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::Autodiff;
use burn::tensor::backend::DeviceOps;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_cubecl::cubecl::server::ComputeServer;
use burn_cubecl::kernel::matmul::init_matmul_output;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems, MatmulSetupError};
use cubek::matmul::launch::{Strategy, launch_ref};
use cubek::matmul::routines::BlueprintStrategy;
use cubek::matmul::routines::simple_unit::SimpleUnitSelectionArgs;
use cubek::std::InputBinding;

use super::kind::Precision;
use super::ops::{TensorCache, XpBackend};

#[cfg(test)]
mod tests;

/// wgpu's runtime, f32 floats, i32 ints, u32 bools (burn-wgpu's `Wgpu` without fusion).
#[cfg(feature = "wgpu")]
pub type WgpuInner = CubeBackend<burn_wgpu::WgpuRuntime, f32, i32, u32>;

/// The wgpu backend xp trains on (evaluation and generation use [`WgpuInner`]).
#[cfg(feature = "wgpu")]
pub type WgpuBackend = Autodiff<WgpuInner>;

/// CUDA's runtime, f32 floats, i32 ints, u8 bools (burn-cuda's `Cuda` without fusion).
#[cfg(feature = "cuda")]
pub type CudaInner = CubeBackend<burn_cubecl::cubecl::cuda::CudaRuntime, f32, i32, u8>;

/// The CUDA backend xp trains on (evaluation and generation use [`CudaInner`]).
#[cfg(feature = "cuda")]
pub type CudaBackend = Autodiff<CudaInner>;

/// The wgpu device xp uses: the default adapter of the platform's API (Vulkan on
/// Linux and Windows, Metal on macOS), a discrete GPU first. cubecl panics when there
/// is none: ask [`wgpu_adapter`] first.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> burn_wgpu::WgpuDevice {
    burn_wgpu::WgpuDevice::DefaultDevice
}

/// The adapter [`wgpu_device`] will get, as "name (device type, API)", or `None` when
/// the platform's API has none (no GPU and, on Linux, no lavapipe:
/// `apt-get install mesa-vulkan-drivers`). Asks wgpu directly, so it never panics.
#[cfg(feature = "wgpu")]
pub fn wgpu_adapter() -> Option<String> {
    use burn_wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    let backend = AutoGraphicsApi::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters =
        burn_cubecl::cubecl::future::block_on(instance.enumerate_adapters(backend.into()));
    // cubecl prefers a discrete GPU, then an integrated one, then the rest.
    let rank = |t: wgpu::DeviceType| match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    adapters
        .iter()
        .map(|a| a.get_info())
        .min_by_key(|info| rank(info.device_type))
        .map(|info| format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend))
}

/// The largest tensor, in bytes, that `device` of runtime `R` can hold: cubecl's page
/// size, on wgpu the device's largest storage-buffer binding. On Mesa's lavapipe it is
/// 128 MiB, less than OPT-125m's f32 embedding (154 MB); most discrete GPUs allow 2 to
/// 4 GiB. A bigger tensor makes cubecl's server thread panic, after which results may
/// be garbage: check a model's largest weight against it before loading.
pub fn max_tensor_bytes<R: CubeRuntime>(device: &R::Device) -> usize {
    let bytes = R::client(device).properties().memory.max_page_size;
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

// --- precision -----------------------------------------------------------------------

/// The process's precision, as `Precision as u8` (0: f32, 1: tf32).
static PRECISION: AtomicU8 = AtomicU8::new(0);

/// Sets how f32 matrix products run on the cubecl backends from now on, for the whole
/// process: [`Precision::F32`] (the default) runs [`exact_matmul`], [`Precision::Tf32`]
/// burn's own autotuned product (TF32 tensor cores on NVIDIA GPUs that have them; on
/// wgpu, which has no TF32, burn's product is f32 too, with a summation order of its
/// autotuner's choosing). Call it before a step's first product; a step's precision is
/// part of its key, so it must not change while the step runs.
pub fn set_precision(precision: Precision) {
    let code = match precision {
        Precision::F32 => 0,
        Precision::Tf32 => 1,
    };
    PRECISION.store(code, Ordering::Relaxed);
}

/// The precision set by [`set_precision`] ([`Precision::F32`] until then).
pub fn precision() -> Precision {
    match PRECISION.load(Ordering::Relaxed) {
        0 => Precision::F32,
        _ => Precision::Tf32,
    }
}

// --- the backend ---------------------------------------------------------------------

impl<R, F, I, BT> XpBackend for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    R::Server: ComputeServer,
    R::Device: DeviceOps,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    type Cache = TensorCache<Self>;
    type DecodeWeight = Tensor<Self, 2>;

    fn product<const D: usize>(a: Tensor<Self, D>, b: Tensor<Self, D>) -> Tensor<Self, D> {
        match precision() {
            Precision::Tf32 => a.matmul(b),
            Precision::F32 => {
                let out = exact_matmul(a.into_primitive().tensor(), b.into_primitive().tensor());
                Tensor::from_primitive(TensorPrimitive::Float(out))
            }
        }
    }

    fn prepare_decode_weight(w: Tensor<Self, 2>) -> Self::DecodeWeight {
        w
    }

    fn decode_product(x: Tensor<Self, 2>, w: &Self::DecodeWeight) -> Tensor<Self, 2> {
        Self::product(x, w.clone())
    }
}

/// The exact f32 matrix product `lhs` `[..., m, k]` · `rhs` `[..., k, n]` ->
/// `[..., m, n]` on any cubecl runtime. Leading dimensions are equal or 1 (broadcast,
/// as in burn's `matmul`); the operands may be strided views (transposed, narrowed),
/// which the kernel reads as they are (a layout it cannot read is made contiguous
/// first by cubek).
///
/// It runs cubek's `SimpleUnit` routine: each unit of a cube computes a tile of the
/// output in registers of the operands' type (f32 for f32; `SimpleUnit` never calls
/// `adjust_dtypes`, the only place cubek-matmul 0.2 switches f32 to TF32), loading
/// `k` in stages through shared memory. Every output element is one accumulator that
/// starts at zero and adds `lhs[m, k] · rhs[k, n]` for `k = 0, 1, ...` in order (cubek-std
/// `tile/compute/matmul/register.rs`); the device compiler may fuse each multiply-add
/// into an FMA (CUDA's NVRTC does by default). If the routine refuses the problem
/// (`MatmulSetupError`, e.g. a device limit), cubek's `Naive` kernel runs instead:
/// one unit per output element, also f32 throughout, summing `k` in strides of its
/// vector width and then across the lanes.
///
/// # Panics
/// When the ranks or dimensions do not match, or when neither kernel can run.
pub fn exact_matmul<R: CubeRuntime>(lhs: CubeTensor<R>, rhs: CubeTensor<R>) -> CubeTensor<R> {
    let (ls, rs) = (lhs.meta.shape().to_vec(), rhs.meta.shape().to_vec());
    let rank = ls.len();
    let batch_ok = ls[..rank.saturating_sub(2)]
        .iter()
        .zip(&rs)
        .all(|(&l, &r)| l == r || l == 1 || r == 1);
    assert!(
        rank >= 2 && rs.len() == rank && batch_ok && ls[rank - 1] == rs[rank - 2],
        "exact_matmul: shapes {ls:?} · {rs:?} do not multiply ([..., m, k] · [..., k, n])"
    );
    let dtype = lhs.dtype;
    let out = init_matmul_output(&lhs, &rhs, dtype);
    let simple_unit = Strategy::SimpleUnit(BlueprintStrategy::Inferred(
        SimpleUnitSelectionArgs::default(),
    ));
    if let Err(first) = launch_exact(&simple_unit, lhs.clone(), rhs.clone(), out.clone())
        && let Err(second) = launch_exact(&Strategy::Naive, lhs, rhs, out.clone())
    {
        panic!(
            "exact_matmul: no exact f32 kernel runs {ls:?} · {rs:?}: \
             SimpleUnit: {first:?}; Naive: {second:?}"
        );
    }
    out
}

/// Launches `strategy` for `out = lhs · rhs` with the operands' own element type in
/// every stage (what burn-cubecl's private `launch_matmul` does for unquantized
/// tensors).
#[allow(clippy::result_large_err)]
pub(crate) fn launch_exact<R: CubeRuntime>(
    strategy: &Strategy,
    lhs: CubeTensor<R>,
    rhs: CubeTensor<R>,
    out: CubeTensor<R>,
) -> Result<(), MatmulSetupError> {
    assert!(
        lhs.qparams.is_none() && rhs.qparams.is_none(),
        "exact_matmul takes float tensors, not quantized ones"
    );
    let client = out.client.clone();
    let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
        lhs: lhs.dtype.into(),
        rhs: rhs.dtype.into(),
        out: out.dtype.into(),
    });
    let (lhs_dtype, rhs_dtype) = (lhs.dtype, rhs.dtype);
    launch_ref(
        strategy,
        &client,
        InputBinding::new(lhs.binding(), lhs_dtype.into()),
        InputBinding::new(rhs.binding(), rhs_dtype.into()),
        out.binding(),
        &mut dtypes,
    )
}

// --- caches --------------------------------------------------------------------------

/// Points cubecl's on-disk caches at `dir` for this process: the autotune cache
/// (`dir/autotune/...`: which kernel won for each shape on each device, so a second
/// process skips the tuning, minutes on a fresh GPU) and the compiled-kernel cache
/// (`dir/<runtime>/...`: CUDA's PTX, wgpu's SPIR-V when that compiler is used; WGSL
/// shaders are compiled by the driver and not cached). Without it cubecl writes its
/// autotune cache under `target/` of the nearest directory above the working directory
/// that holds a `Cargo.toml` (else the user cache directory) and keeps no compiled
/// kernels.
///
/// The rest of cubecl's configuration is what it would have read itself (a
/// `cubecl.toml`, or the `[cubecl]` section of a `burn.toml`, in the working directory
/// or above; `CUBECL_*` environment variables). cubecl fixes its configuration the first
/// time it reads it, when the first GPU client is created: call this before any GPU
/// work. Afterwards it changes nothing and returns an error of kind
/// [`std::io::ErrorKind::AlreadyExists`] (as it does when called twice). Creates `dir`.
pub fn configure_caches(dir: &Path) -> std::io::Result<()> {
    use burn_cubecl::cubecl::config::cache::CacheConfig;
    use burn_cubecl::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    std::fs::create_dir_all(dir)?;
    let dir = std::path::absolute(dir)?;
    let mut slot = CubeClRuntimeConfig::storage().lock();
    if slot.is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "cubecl's configuration is already fixed (GPU work ran before, or the caches were \
             configured already); its caches stay where they are",
        ));
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.autotune.cache = CacheConfig::File(dir.clone());
    config.compilation.cache = Some(CacheConfig::File(dir));
    *slot = Some(std::sync::Arc::new(config));
    Ok(())
}
