//! [`XpBackend`] for burn's autodiff wrapper: the products and the fused NLL as
//! autodiff operations whose forward and backward call the inner backend's
//! specialised ops, so every backend's kernels (the CPU's host products, the cubecl
//! backends' exact f32 products) serve training with their gradients.
//!
//! Everything used only for inference (decoding products, beam candidates, the KV
//! cache) takes the trait's default bodies here: generation on an autodiff backend
//! runs the generic tensor-op path, which is how tests exercise it on the CPU.

use burn::backend::Autodiff;
use burn::tensor::{Int, Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, binary, unary};

use super::ops::{NllStats, TensorCache, XpBackend};

impl<B: XpBackend, C: CheckpointStrategy> XpBackend for Autodiff<B, C> {
    type Cache = TensorCache<Self>;
    type DecodeWeight = Tensor<Self, 2>;

    fn product<const D: usize>(a: Tensor<Self, D>, b: Tensor<Self, D>) -> Tensor<Self, D> {
        let a = a.into_primitive().tensor();
        let b = b.into_primitive().tensor();
        let out = B::product(
            inner::<B, D>(a.primitive.clone()),
            inner(b.primitive.clone()),
        );
        let out = out.into_primitive().tensor();
        let out = match Product::<D>
            .prepare::<C>([a.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((a.primitive, b.primitive), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    fn prepare_decode_weight(w: Tensor<Self, 2>) -> Self::DecodeWeight {
        w
    }

    fn run_on_compute_thread<R: Send>(work: impl FnOnce() -> R + Send) -> R {
        B::run_on_compute_thread(work)
    }

    fn decode_product(x: Tensor<Self, 2>, w: &Self::DecodeWeight) -> Tensor<Self, 2> {
        Self::product(x, w.clone())
    }

    fn shifted_nll(
        logits: Tensor<Self, 3>,
        input_ids: Tensor<Self, 2, Int>,
    ) -> (Tensor<Self, 2>, NllStats<Self>) {
        let logits = logits.into_primitive().tensor();
        let ids = Tensor::<B, 2, Int>::from_primitive(input_ids.into_primitive());
        let (nll, stats) = B::shifted_nll(inner::<B, 3>(logits.primitive.clone()), ids.clone());
        let state = NllState {
            logits: logits.primitive,
            ids,
            stats: stats.clone(),
        };
        let nll = nll.into_primitive().tensor();
        let nll = match ShiftedNll
            .prepare::<C>([logits.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, nll),
            OpsKind::UnTracked(prep) => prep.finish(nll),
        };
        let stats = NllStats {
            max: Tensor::from_inner(stats.max),
            ln_sum: Tensor::from_inner(stats.ln_sum),
        };
        (Tensor::from_primitive(TensorPrimitive::Float(nll)), stats)
    }
}

/// An inner-backend primitive as a tensor of rank `D`.
fn inner<B: XpBackend, const D: usize>(t: B::FloatTensorPrimitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// `a · b` over the last two dimensions: d a = grad · bᵀ, d b = aᵀ · grad, each with
/// the inner backend's product. When `b` is a transposed view (the tied LM head's
/// `Eᵀ`), d b is computed as (gradᵀ · a)ᵀ: the same terms summed in the same order
/// (`x · y = y · x` in f32, fused or not), so the same bits, but row-major in `E`'s own
/// layout, where `aᵀ · grad` would leave a `[hidden, vocab]` array that the tied
/// gradient's sum and the optimizer then copy with strided reads.
#[derive(Debug)]
struct Product<const D: usize>;

impl<B: XpBackend, const D: usize> Backward<B, 2> for Product<D> {
    /// The operands as the forward saw them.
    type State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (lhs, rhs) = ops.state;
        let rhs_transposed = B::is_transposed(&inner::<B, D>(rhs.clone()));
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| {
                let rhs_t = inner::<B, D>(rhs).swap_dims(D - 2, D - 1);
                B::product(inner::<B, D>(grad), rhs_t)
                    .into_primitive()
                    .tensor()
            },
            |grad| {
                let (lhs, grad) = (inner::<B, D>(lhs), inner::<B, D>(grad));
                let d_rhs = if rhs_transposed {
                    B::product(grad.swap_dims(D - 2, D - 1), lhs).swap_dims(D - 2, D - 1)
                } else {
                    B::product(lhs.swap_dims(D - 2, D - 1), grad)
                };
                d_rhs.into_primitive().tensor()
            },
        );
    }
}

#[derive(Debug, Clone)]
struct NllState<B: XpBackend> {
    logits: B::FloatTensorPrimitive,
    ids: Tensor<B, 2, Int>,
    stats: NllStats<B>,
}

#[derive(Debug)]
struct ShiftedNll;

impl<B: XpBackend> Backward<B, 1> for ShiftedNll {
    type State = NllState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let NllState { logits, ids, stats } = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::shifted_nll_backward(inner::<B, 3>(logits), ids, stats, inner::<B, 2>(grad))
                .into_primitive()
                .tensor()
        });
    }
}
