//! What the benchmarks share: their command-line flags, the backend they run on, and
//! memory readings.
#![allow(dead_code)]

use xp::backend::{BackendKind, set_cpu_threads};

/// The value after `name` on the command line, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `--backend ndarray|cuda|wgpu` (default ndarray); for ndarray, also sizes the CPU thread
/// pool from `--threads` (default 2). Returns the backend and a label for the output.
pub fn backend_from_args() -> (BackendKind, String) {
    let kind: BackendKind = arg("--backend", "ndarray".to_string())
        .parse()
        .expect("--backend ndarray|cuda|wgpu");
    kind.check_available().expect("backend");
    let label = match kind {
        BackendKind::Ndarray => {
            let threads = arg("--threads", 2usize);
            set_cpu_threads(threads).expect("thread pool");
            format!("ndarray, {threads} threads")
        }
        BackendKind::Cuda | BackendKind::Wgpu => kind.to_string(),
    };
    (kind, label)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
