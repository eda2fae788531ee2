//! Matrix products of a training step on the CPU (autodiff over ndarray) as one
//! autodiff operation that multiplies the operands as they are.
//!
//! burn-ndarray 0.21 copies both operands and the result of every product (its
//! reshape always copies; see `host_matmul`), and burn's autodiff runs the backward
//! products through the same path: per linear layer and step that is the weight, the
//! activations and the gradients copied several times, and the tied LM head's
//! transposed 50272 × 768 table copied with strided reads forward and backward. Here
//! forward and backward call ndarray's `general_mat_mul` on (possibly transposed)
//! views: matrixmultiply packs them into the same panels burn's copies would give, so
//! every value and gradient is bitwise what burn computes (tested).

use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn_ndarray::NdArrayTensor;
use ndarray::{ArcArray, Array2, ArrayView2, Ix2, IxDyn, linalg::general_mat_mul};

use crate::backend::{NdarrayBackend as Cpu, as_backend, ndarray_f32 as f32_array};

/// The backend inside [`Cpu`]'s autodiff.
type Host = NdArray<f32>;

/// `a` `[m, k]` · `b` `[k, n]` with gradients for both, if `B` is the CPU training
/// backend (else `None`).
pub(crate) fn matmul_2d<B: Backend>(a: &Tensor<B, 2>, b: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    let a = as_backend::<B, Cpu, 2>(a.clone())?
        .into_primitive()
        .tensor();
    let b = as_backend::<B, Cpu, 2>(b.clone())?
        .into_primitive()
        .tensor();
    let (lhs, rhs) = (f32_array(&a.primitive)?, f32_array(&b.primitive)?);
    let out = product(view(&lhs), view(&rhs));
    let out = match MatMul
        .prepare::<NoCheckpointing>([a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((lhs, rhs), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    as_backend(Tensor::<Cpu, 2>::from_primitive(TensorPrimitive::Float(
        out,
    )))
}

#[derive(Debug)]
struct MatMul;

impl Backward<Host, 2> for MatMul {
    /// The operands, as the forward saw them (shared buffers, no copies).
    type State = (ArcArray<f32, IxDyn>, ArcArray<f32, IxDyn>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (lhs, rhs) = ops.state;
        binary::<Host, _, _>(
            ops.parents,
            ops.node,
            grads,
            // d lhs = grad · rhsᵀ
            |grad| {
                let grad = f32_array(&grad).expect("f32 gradient");
                product(view(&grad), view(&rhs).t())
            },
            // d rhs = lhsᵀ · grad
            |grad| {
                let grad = f32_array(&grad).expect("f32 gradient");
                product(view(&lhs).t(), view(&grad))
            },
        );
    }
}

fn product(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> NdArrayTensor {
    let mut out = Array2::<f32>::zeros((a.nrows(), b.ncols()));
    general_mat_mul(1.0, &a, &b, 0.0, &mut out);
    NdArrayTensor::from(out.into_dyn().into_shared())
}

fn view(array: &ArcArray<f32, IxDyn>) -> ArrayView2<'_, f32> {
    array
        .view()
        .into_dimensionality::<Ix2>()
        .expect("a 2-D operand")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn bits(t: Tensor<Host, 2>) -> Vec<u32> {
        t.into_data()
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// `x · w` (w = the table, or its transpose) and the gradients of a weighted sum
    /// for `x` and the table, on fresh leaves made from `x` and `table`.
    fn run(
        x: &Tensor<Cpu, 2>,
        table: &Tensor<Cpu, 2>,
        transposed: bool,
        weights: &Tensor<Cpu, 2>,
        ours: bool,
    ) -> [Vec<u32>; 3] {
        let x = Tensor::from_inner(x.clone().inner()).require_grad();
        let table = Tensor::from_inner(table.clone().inner()).require_grad();
        let w = if transposed {
            table.clone().transpose()
        } else {
            table.clone()
        };
        let out = if ours {
            matmul_2d(&x, &w).expect("the CPU training backend")
        } else {
            x.clone().matmul(w)
        };
        let grads = (out.clone() * weights.clone()).sum().backward();
        [
            bits(out.inner()),
            bits(x.grad(&grads).unwrap()),
            bits(table.grad(&grads).unwrap()),
        ]
    }

    #[test]
    fn values_and_gradients_are_bitwise_burns() {
        let device = Default::default();
        <Cpu as Backend>::seed(&device, 21);
        let random = |shape: [usize; 2]| {
            Tensor::<Cpu, 2>::random(shape, Distribution::Normal(0.0, 1.0), &device)
        };
        // A plain product, and a transposed right-hand side (the tied LM head).
        for transposed in [false, true] {
            let x = random([7, 33]);
            let table = if transposed {
                random([40, 33])
            } else {
                random([33, 40])
            };
            let weights = random([7, 40]);
            assert_eq!(
                run(&x, &table, transposed, &weights, true),
                run(&x, &table, transposed, &weights, false),
                "transposed: {transposed}"
            );
        }
    }

    #[test]
    fn other_backends_take_burns_matmul() {
        let a = Tensor::<Host, 2>::zeros([2, 3], &Default::default());
        assert!(matmul_2d(&a, &a.clone().transpose()).is_none());
    }
}
