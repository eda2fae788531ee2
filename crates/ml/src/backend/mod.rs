//! THE one place that knows backends: which exist ([`BackendKind`]), how work runs on
//! the one picked at run time ([`dispatch`]), and the operations xp specialises per
//! backend ([`XpBackend`], burn's backend-extension pattern): the CPU's host kernels
//! ([`cpu`]), autodiff's gradients of them (`autodiff`), and the tensor-op defaults
//! every other backend runs.
//!
//! Nothing outside this module asks which backend it runs on.

mod autodiff;
pub mod cpu;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub mod cubecl;
mod dispatch;
mod kind;
mod ops;

pub use dispatch::{BackendTask, NdarrayBackend, Target, dispatch, gpu_cache_dir, set_cpu_threads};
pub use kind::{BackendError, BackendKind, Precision};
pub use ops::{
    AdamWStep, BeamStep, KvStore, NllStats, TensorCache, XpAutodiffBackend, XpBackend,
    adamw_update_with_tensors, attention, beam_candidates_with_tensors,
    shifted_nll_backward_with_tensors, shifted_nll_with_tensors,
};

/// A backend's random generator is one per process: a test that seeds it and
/// then draws (random weights, dropout masks) holds this lock, so tests running on
/// other threads cannot draw in between and change what it gets.
#[cfg(test)]
pub(crate) fn seeded_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Run-time backend checks (type ids, downcasts to backend tensor types) would
    /// bring back per-call dispatch outside this module: none exist outside it. A
    /// panic payload's downcast (`downcast_ref::<String>`, `<&str>`) is not one. Both
    /// crates are scanned: this one and the runner (two folders up).
    #[test]
    fn no_run_time_backend_checks_outside_the_backend_module() {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let src = crate_dir.join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src.clone(), crate_dir.join("../../src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path == src.join("backend") {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (n, line) in text.lines().enumerate() {
                        let panic_payload = line.contains("downcast_ref::<String>")
                            || line.contains("downcast_ref::<&str>");
                        let check = [
                            "TypeId",
                            "dyn Any",
                            "dyn std::any::Any",
                            "downcast",
                            "NdArrayTensor",
                        ]
                        .iter()
                        .any(|p| line.contains(p));
                        if check && !panic_payload {
                            offenders.push(format!(
                                "{}:{}: {}",
                                path.display(),
                                n + 1,
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "backend checks outside src/backend/:\n{}",
            offenders.join("\n")
        );
    }
}
