//! The model's weight matrices prepared for decoding steps (one new position per
//! sequence), once per generation: packed panels on the CPU, the tensors themselves
//! elsewhere (`XpBackend::prepare_decode_weight`). The caller owns them inside its
//! [`super::KvCache`] (see `KvCache::for_decoding`), so nothing is looked up by
//! address and nothing outlives the generation that made it.

use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::backend::XpBackend;

/// Every prepared weight of a model: per layer, then the LM head.
#[derive(Debug, Clone)]
pub struct DecodeWeights<B: XpBackend> {
    pub(crate) layers: Vec<LayerWeights<B>>,
    /// The tied LM head, `Eᵀ` `[e, vocab]`.
    pub(crate) head: B::DecodeWeight,
}

/// One decoder layer's prepared weights.
#[derive(Debug, Clone)]
pub(crate) struct LayerWeights<B: XpBackend> {
    pub q: B::DecodeWeight,
    pub k: B::DecodeWeight,
    pub v: B::DecodeWeight,
    pub out: B::DecodeWeight,
    pub fc1: B::DecodeWeight,
    pub fc2: B::DecodeWeight,
}

/// `layer`'s weight `[in, out]`, prepared.
pub(crate) fn prepare<B: XpBackend>(layer: &Linear<B>) -> B::DecodeWeight {
    B::prepare_decode_weight(layer.weight.val())
}

/// `x` `[rows, in]` through `layer` (weight `[in, out]`, optional bias `[out]`):
/// `x · W + b`, `[rows, out]`; with `prepared`, the product runs on W's prepared form
/// (a decoding step).
pub(crate) fn linear<B: XpBackend>(
    layer: &Linear<B>,
    x: Tensor<B, 2>,
    prepared: Option<&B::DecodeWeight>,
) -> Tensor<B, 2> {
    let out = match prepared {
        Some(w) => B::decode_product(x, w),
        None => B::product(x, layer.weight.val()),
    };
    match &layer.bias {
        // burn's Linear adds the bias as a separate f32 addition, as here.
        Some(b) => out + b.val().unsqueeze::<2>(),
        None => out,
    }
}
