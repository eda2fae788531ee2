//! The AdamW update on the CPU as one loop over host memory.
//!
//! As tensor operations, burn-ndarray makes each of the dozen steps of the update a
//! separate pass with a fresh allocation (and copies on every reshape), which
//! profiling showed to be about a quarter of an OPT-125m training step. The loop does
//! the same f32 operations in the same order as the tensor formulation
//! (`crate::backend::adamw_update_with_tensors`), so both give bitwise the same
//! parameters (tested in `crate::train::adamw`). Buffers are updated in place when the
//! tensors hold them alone.

use burn::tensor::Tensor;
use rayon::prelude::*;

use super::isa::{Isa, isa};
use super::{Cpu, array, standard, tensor};
use crate::backend::AdamWStep;

/// See `XpBackend::adamw_update`.
pub(super) fn adamw_update(
    param: Tensor<Cpu, 1>,
    grad: Tensor<Cpu, 1>,
    (m, v): (Tensor<Cpu, 1>, Tensor<Cpu, 1>),
    k: &AdamWStep,
) -> (Tensor<Cpu, 1>, (Tensor<Cpu, 1>, Tensor<Cpu, 1>)) {
    let (mut p, mut m, mut v) = (
        standard(array(param)),
        standard(array(m)),
        standard(array(v)),
    );
    let g = array(grad);
    let g = g.as_standard_layout();
    {
        let (ps, ms, vs) = (
            p.as_slice_mut().expect("a contiguous parameter"),
            m.as_slice_mut().expect("contiguous moments"),
            v.as_slice_mut().expect("contiguous moments"),
        );
        let gs = g.as_slice().expect("standard layout");
        update(isa(), ps, ms, vs, gs, k);
    }
    (tensor(p), (tensor(m), tensor(v)))
}

/// The update over host slices on the path of `isa`, in parallel chunks.
fn update(isa: Isa, ps: &mut [f32], ms: &mut [f32], vs: &mut [f32], gs: &[f32], k: &AdamWStep) {
    const CHUNK: usize = 1 << 14;
    ps.par_chunks_mut(CHUNK)
        .zip(ms.par_chunks_mut(CHUNK))
        .zip(vs.par_chunks_mut(CHUNK))
        .zip(gs.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| match isa {
            // SAFETY (both arms): `isa` is one this CPU runs (`Isa::available`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { chunk_avx512(p, m, v, g, k) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { chunk_avx2(p, m, v, g, k) },
            _ => chunk(p, m, v, g, k),
        });
}

/// The same loop compiled for AVX-512 (the compiler vectorises it 16 lanes wide).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chunk_avx512(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &AdamWStep) {
    chunk(p, m, v, g, k)
}

/// The same loop compiled for AVX2 (8 lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_avx2(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &AdamWStep) {
    chunk(p, m, v, g, k)
}

/// One chunk of the update. Every operation is a correctly rounded f32 operation per
/// element (Rust never fuses a multiply and an add by itself), so the vector paths give
/// the portable bits.
#[inline(always)]
fn chunk(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &AdamWStep) {
    // Zipped, not indexed: without bounds checks the loop vectorises (sqrt and division
    // are correctly rounded in vector lanes too: the same bits).
    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
        let decayed = match k.decay {
            Some(decay) => *p * decay,
            None => *p,
        };
        *m = *m + (g - *m) * k.one_minus_beta1;
        *v = *v * k.beta2 + (g * g) * k.one_minus_beta2;
        let denom = v.sqrt() / k.bias2_sqrt + k.eps;
        *p = decayed - (*m / denom) * k.step_size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_this_cpu_runs_gives_the_portable_bits() {
        let n = 40_000 + 13; // several chunks and a ragged tail
        let values = |seed: u32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5
                })
                .collect()
        };
        let step = AdamWStep {
            decay: Some(1.0 - 2e-5 * 0.01),
            one_minus_beta1: 0.1,
            beta2: 0.999,
            one_minus_beta2: 0.001,
            bias2_sqrt: (1.0f32 - 0.999f32.powi(3)).sqrt(),
            eps: 1e-8,
            step_size: 2e-5 / (1.0 - 0.9f32.powi(3)),
        };
        let run = |isa: Isa| {
            let (mut p, mut m, mut v, g) = (values(1), values(2), values(3), values(4));
            for x in &mut v {
                *x = x.abs();
            }
            update(isa, &mut p, &mut m, &mut v, &g, &step);
            [p, m, v].map(|x| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        let portable = run(Isa::Portable);
        for isa in Isa::available() {
            assert!(run(isa) == portable, "{isa:?}");
        }
    }
}
