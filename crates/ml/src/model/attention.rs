//! OPT self-attention: q/k/v projections, q scaled after its bias, causal + padding
//! mask, softmax in f32, output projection.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use super::cache::KvCache;
use super::config::OptConfig;
use super::decode::{self, LayerWeights};
use super::params::{NamedTensor, ParamSource, export_linear, linear};
use crate::backend::{KvStore, XpBackend, attention};

/// Multi-head causal self-attention (`decoder.layers.N.self_attn`).
#[derive(Module, Debug)]
pub struct OptAttention<B: Backend> {
    q_proj: Linear<B>,
    k_proj: Linear<B>,
    v_proj: Linear<B>,
    out_proj: Linear<B>,
    /// Dropout on the attention probabilities (`attention_dropout`, 0 for OPT).
    attn_dropout: Dropout,
    num_heads: usize,
    head_dim: usize,
}

impl<B: Backend> OptAttention<B> {
    pub(crate) fn build<S: ParamSource<B>>(src: &mut S, prefix: &str, config: &OptConfig) -> Self {
        let d = config.hidden_size;
        let mut proj = |name: &str| {
            linear(
                src,
                &format!("{prefix}.{name}"),
                d,
                d,
                config.enable_bias,
                config.init_std,
            )
        };
        OptAttention {
            q_proj: proj("q_proj"),
            k_proj: proj("k_proj"),
            v_proj: proj("v_proj"),
            out_proj: proj("out_proj"),
            attn_dropout: DropoutConfig::new(config.attention_dropout).init(),
            num_heads: config.num_heads,
            head_dim: config.head_dim(),
        }
    }

    /// Appends the four projections under `prefix` (HF names and layout).
    pub(crate) fn export(&self, prefix: &str, out: &mut Vec<NamedTensor>) {
        for (name, proj) in [
            ("q_proj", &self.q_proj),
            ("k_proj", &self.k_proj),
            ("v_proj", &self.v_proj),
            ("out_proj", &self.out_proj),
        ] {
            export_linear(proj, &format!("{prefix}.{name}"), out);
        }
    }
}

impl<B: XpBackend> OptAttention<B> {
    /// This layer's projections (q, k, v, out) prepared for decoding steps.
    pub(crate) fn decode_weights(&self) -> [B::DecodeWeight; 4] {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.out_proj].map(decode::prepare)
    }

    /// `x`: `[batch, seq, hidden]`; `masked`: `[batch, 1, seq, past + seq]`, true where a
    /// query may not look. With a cache, this step's keys/values are appended to
    /// layer `layer`'s entry and attention runs over past + new positions; `prepared`
    /// holds the layer's weights for a decoding step.
    /// Returns `[batch, seq, hidden]`.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        masked: Tensor<B, 4, Bool>,
        cache: Option<(&mut KvCache<B>, usize)>,
        prepared: Option<&LayerWeights<B>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let scaling = (self.head_dim as f64).powf(-0.5);
        // Projections on [batch * seq, hidden]: 2-D linears (one large matrix product
        // forward and for the weight gradient). HF scales q after adding the bias.
        let x = x.reshape([batch * seq, hidden]);
        let q = decode::linear(&self.q_proj, x.clone(), prepared.map(|w| &w.q)) * scaling; // [b * seq, hidden]
        let k = decode::linear(&self.k_proj, x.clone(), prepared.map(|w| &w.k)); // [b * seq, hidden]
        let v = decode::linear(&self.v_proj, x, prepared.map(|w| &w.v)); // [b * seq, hidden]
        let out = match cache {
            // One position per row: the backend's decoding attention over its cache.
            Some((cache, layer)) if seq == 1 => {
                B::decode_attention(cache.store_mut(), layer, self.num_heads, q, k, v, masked)
            } // [b, hidden]
            cache => self.attend(q, k, v, masked, cache, batch), // [b * seq, hidden]
        };
        decode::linear(&self.out_proj, out, prepared.map(|w| &w.out)).reshape([batch, seq, hidden])
    }

    /// Attention over this step's and (with a cache) the cached keys and values; `q`,
    /// `k`, `v` `[batch * seq, hidden]`. Returns `[batch * seq, hidden]`.
    fn attend(
        &self,
        q: Tensor<B, 2>,
        k: Tensor<B, 2>,
        v: Tensor<B, 2>,
        masked: Tensor<B, 4, Bool>,
        cache: Option<(&mut KvCache<B>, usize)>,
        batch: usize,
    ) -> Tensor<B, 2> {
        let [rows, hidden] = q.dims();
        let seq = rows / batch;
        let q = self.split_heads(q, batch); // [b, h, seq, hd]
        let k = self.split_heads(k, batch); // [b, h, seq, hd]
        let v = self.split_heads(v, batch); // [b, h, seq, hd]
        let (k, v) = match cache {
            Some((cache, layer)) => cache.store_mut().append(layer, k, v), // [b, h, past + seq, hd]
            None => (k, v),
        };
        let out = attention(q, k, v, masked, |probs| self.attn_dropout.forward(probs)); // [b, h, seq, hd]
        out.swap_dims(1, 2).reshape([batch * seq, hidden]) // [b * seq, hidden]
    }

    /// `[batch * seq, hidden]` -> `[batch, heads, seq, head_dim]`.
    fn split_heads(&self, x: Tensor<B, 2>, batch: usize) -> Tensor<B, 4> {
        let [rows, _] = x.dims();
        x.reshape([batch, rows / batch, self.num_heads, self.head_dim])
            .swap_dims(1, 2)
    }
}
