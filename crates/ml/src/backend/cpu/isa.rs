//! Which vector instruction set xp's own CPU kernels run: detected once per process,
//! or forced with `XP_CPU_ISA=portable|avx2|avx512` (to test and benchmark one path).
//!
//! The kernels with paths per instruction set are the decoding product's register
//! tile (`super::panels`) and the AdamW loop (`super::adamw`); every path computes the
//! same f32 operations in the same order as the portable one, so results are bitwise
//! equal (tested per path the machine can run). The training and evaluation products
//! run xp's own sgemm on the AVX-512 path (`super::gemm`, large 2-D products) and
//! matrixmultiply otherwise, which picks its own kernel at run time (AVX-512,
//! AVX2+FMA, AVX, SSE2 on x86-64; NEON on aarch64) and cannot be forced from here;
//! both sum in the same order (`super::matmul`'s tests). On aarch64
//! the portable paths are plain Rust that the compiler vectorises with NEON (part of
//! the aarch64 baseline); xp has no hand-written NEON.

use std::sync::OnceLock;

/// A vector instruction set a kernel has a path for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust: whatever the compiler's baseline target vectorises to.
    Portable,
    /// AVX2 with FMA (x86-64, Haswell / Zen 1 and later).
    Avx2,
    /// AVX-512 F (x86-64, Skylake-SP / Zen 4 and later).
    Avx512,
}

impl Isa {
    /// The name `XP_CPU_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Every path this CPU can run, portable first.
    pub fn available() -> Vec<Isa> {
        let best = detected();
        [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|isa| *isa <= best)
            .collect()
    }
}

/// The widest path this CPU supports.
fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// The path the kernels take in this process: `XP_CPU_ISA` if set, else the widest the
/// CPU supports.
///
/// # Panics
/// When `XP_CPU_ISA` names no path or one this CPU cannot run (the message says which
/// it can).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| match std::env::var("XP_CPU_ISA") {
        Ok(value) => parse(&value).unwrap_or_else(|message| panic!("{message}")),
        Err(_) => detected(),
    })
}

/// `XP_CPU_ISA`'s value as a path this CPU can run.
fn parse(value: &str) -> Result<Isa, String> {
    let available = Isa::available();
    let names = || {
        available
            .iter()
            .map(|isa| isa.name())
            .collect::<Vec<_>>()
            .join("|")
    };
    let wanted = match value.trim() {
        "portable" => Isa::Portable,
        "avx2" => Isa::Avx2,
        "avx512" => Isa::Avx512,
        other => {
            return Err(format!(
                "XP_CPU_ISA={other:?} is not an instruction-set path; use one of {} \
                 (this CPU's), or unset it to use the widest",
                names()
            ));
        }
    };
    if available.contains(&wanted) {
        Ok(wanted)
    } else {
        Err(format!(
            "XP_CPU_ISA={} asks for a path this CPU cannot run; it can run {}: pick one \
             of those or unset XP_CPU_ISA",
            wanted.name(),
            names()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cpu_runs_the_portable_path_and_the_widest_it_detects() {
        let available = Isa::available();
        assert_eq!(available[0], Isa::Portable);
        assert_eq!(*available.last().unwrap(), detected());
    }

    #[test]
    fn xp_cpu_isa_names_the_paths_and_refuses_the_rest() {
        assert_eq!(parse("portable"), Ok(Isa::Portable));
        let unknown = parse("neon").unwrap_err();
        assert!(unknown.contains("XP_CPU_ISA=\"neon\"") && unknown.contains("portable"));
        for isa in [Isa::Avx2, Isa::Avx512] {
            match parse(isa.name()) {
                Ok(got) => assert!(Isa::available().contains(&got) && got == isa),
                Err(message) => {
                    assert!(!Isa::available().contains(&isa));
                    assert!(message.contains("cannot run"), "{message}");
                }
            }
        }
    }
}
