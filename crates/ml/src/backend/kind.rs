//! The backends xp knows, by name: the one enum that travels from the command line
//! and the experiment file to the manifest and to [`super::dispatch`].

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A tensor backend xp can run on. Written lowercase in files and on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// CPU, pure Rust (burn-ndarray); always available.
    #[default]
    Ndarray,
    /// NVIDIA GPU (burn-cuda); needs the `cuda` cargo feature and a driver.
    Cuda,
    /// Any GPU through wgpu (Vulkan, Metal, DirectX; burn-wgpu); needs the `wgpu`
    /// cargo feature and a device (on Linux without a GPU: Mesa's lavapipe).
    Wgpu,
}

/// How f32 matrix products are computed on a GPU. Part of every step key that runs
/// products: TF32 tensor cores change results beyond the tolerances the backends are
/// tested to. The CPU computes exact f32 either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Exact f32 products (no tensor cores on f32 operands).
    #[default]
    F32,
    /// TF32 tensor cores for f32 products: faster on NVIDIA GPUs, ~1e-3 relative error.
    Tf32,
}

impl Precision {
    /// The lowercase name used in files and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend.
    #[error("unknown backend {name:?}; expected one of: ndarray, cuda, wgpu")]
    Unknown {
        /// What was given.
        name: String,
    },
    /// The backend was asked for, but this binary was built without its feature.
    #[error(
        "xp was built without the `{feature}` feature, which the {kind} backend needs; \
         reinstall with `cargo install --path . --features {feature}`{needs} or use `--backend ndarray`"
    )]
    NotCompiled {
        kind: BackendKind,
        /// The cargo feature that adds it.
        feature: &'static str,
        /// What building with the feature needs besides, as " (needs ...)" or "".
        needs: &'static str,
    },
    /// The backend is compiled in, but this machine has no device for it.
    #[error("no {kind} device on this machine: {hint}")]
    NoDevice {
        kind: BackendKind,
        /// What to install or check.
        hint: &'static str,
    },
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
    pub const ALL: [BackendKind; 3] = [BackendKind::Ndarray, BackendKind::Cuda, BackendKind::Wgpu];

    /// The lowercase name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Cuda => "cuda",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// Whether the backend runs on a GPU (one device, which one step owns at a time).
    pub fn is_gpu(self) -> bool {
        match self {
            BackendKind::Ndarray => false,
            BackendKind::Cuda | BackendKind::Wgpu => true,
        }
    }

    /// The cargo feature that compiles the backend in (`None`: always there).
    pub fn cargo_feature(self) -> Option<&'static str> {
        match self {
            BackendKind::Ndarray => None,
            BackendKind::Cuda => Some("cuda"),
            BackendKind::Wgpu => Some("wgpu"),
        }
    }

    /// Whether this binary contains the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Ndarray => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// `Ok` when this binary contains the backend; otherwise an error that names the
    /// cargo feature to build with.
    pub fn check_available(self) -> Result<(), BackendError> {
        match self.cargo_feature() {
            Some(feature) if !self.is_compiled() => Err(BackendError::NotCompiled {
                kind: self,
                feature,
                needs: match self {
                    BackendKind::Cuda => " (needs the CUDA toolkit)",
                    _ => "",
                },
            }),
            _ => Ok(()),
        }
    }

    /// `Ok` when steps on this backend can run here, in this process; otherwise
    /// the reason, naming what to do. `xp run` asks this once, before it resolves
    /// sources or runs anything (`xp plan` and `xp validate` only warn: the plan
    /// of a GPU experiment is made anywhere): [`Self::check_available`], then, for
    /// wgpu, whether the platform's graphics API has an adapter. (A missing CUDA
    /// device or driver shows when the first step creates its device.)
    pub fn check_runnable(self) -> Result<(), BackendError> {
        self.check_available()?;
        #[cfg(feature = "wgpu")]
        if self == BackendKind::Wgpu && super::cubecl::wgpu_adapter().is_none() {
            return Err(BackendError::NoDevice {
                kind: self,
                hint: "wgpu found no adapter (Vulkan on Linux: install a GPU driver, or \
                       Mesa's CPU device with `apt-get install mesa-vulkan-drivers`)",
            });
        }
        Ok(())
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
