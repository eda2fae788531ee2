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
        const CHUNK: usize = 1 << 14;
        ps.par_chunks_mut(CHUNK)
            .zip(ms.par_chunks_mut(CHUNK))
            .zip(vs.par_chunks_mut(CHUNK))
            .zip(gs.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| {
                // Zipped, not indexed: without bounds checks the loop vectorises (sqrt
                // and division are correctly rounded in vector lanes too: the same bits).
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
            });
    }
    (tensor(p), (tensor(m), tensor(v)))
}
