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

/// The machine line every benchmark row carries: CPU model, the widest vector ISA the
/// CPU reports, the `--threads` count and the 1-minute load average.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags = field("flags")
        .or_else(|| field("Features"))
        .unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let isa: Vec<&str> = [
        ("AVX-512", "avx512f"),
        ("AVX2+FMA", "avx2"),
        ("NEON", "asimd"),
    ]
    .iter()
    .filter(|(_, flag)| flags.contains(flag))
    .map(|(name, _)| *name)
    .collect();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    format!(
        "{model}, {}, {} threads, load {load}",
        if isa.is_empty() {
            "no vector ISA flags".to_string()
        } else {
            isa.join("/")
        },
        arg("--threads", 2usize)
    )
}
