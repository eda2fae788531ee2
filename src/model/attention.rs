//! OPT self-attention: q/k/v projections, q scaled after its bias, causal + padding
//! mask, softmax in f32, output projection.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use super::cache::KvCache;
use super::config::OptConfig;
use super::host_matmul;
use super::params::{NamedTensor, ParamSource, export_linear, linear};

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

    /// `x`: `[batch, seq, hidden]`; `masked`: `[batch, 1, seq, past + seq]`, true where a
    /// query may not look. With a cache, this step's keys/values are appended to
    /// layer `layer`'s entry and attention runs over past + new positions.
    /// Returns `[batch, seq, hidden]`.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        masked: Tensor<B, 4, Bool>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let scaling = (self.head_dim as f64).powf(-0.5);
        let kernel = host_matmul::Kernel::for_step(seq, cache.as_ref().map(|(c, _)| &**c));
        // Projections on [batch * seq, hidden]: 2-D linears (one large matrix product
        // forward and for the weight gradient). HF scales q after adding the bias.
        let x = x.reshape([batch * seq, hidden]);
        let q = host_matmul::linear(&self.q_proj, x.clone(), &kernel) * scaling; // [b * seq, hidden]
        let k = host_matmul::linear(&self.k_proj, x.clone(), &kernel); // [b * seq, hidden]
        let v = host_matmul::linear(&self.v_proj, x, &kernel); // [b * seq, hidden]
        let out = match cache {
            // One position per row on the CPU backend: [b, hidden] is [b, h, 1, hd].
            Some((cache, layer)) if seq == 1 && cache.attends_on_host() => {
                cache.attend_step(layer, self.num_heads, q, k, v, masked) // [b, hidden]
            }
            cache => self.attend(q, k, v, masked, cache, batch), // [b * seq, hidden]
        };
        host_matmul::linear(&self.out_proj, out, &kernel).reshape([batch, seq, hidden])
    }

    /// Attention with burn's ops over this step's and (with a cache) the cached keys
    /// and values; `q`, `k`, `v` `[batch * seq, hidden]`. Returns `[batch * seq, hidden]`.
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
            Some((cache, layer)) => cache.append(layer, k, v), // [b, h, past + seq, hd]
            None => (k, v),
        };
        let total = k.dims()[2];
        let scores = host_matmul::matmul(q, k.swap_dims(2, 3)); // [b, h, seq, total]
        let masked = masked.expand([batch, self.num_heads, seq, total]);
        // HF adds finfo(f32).min where masked; replacing gives the same softmax.
        let scores = scores.mask_fill(masked, f32::MIN);
        // Backends here compute in f32, so the softmax is in f32 as in HF.
        let probs = self.attn_dropout.forward(softmax(scores, 3)); // [b, h, seq, total]
        let out = host_matmul::matmul(probs, v); // [b, h, seq, hd]
        out.swap_dims(1, 2).reshape([batch * seq, hidden]) // [b * seq, hidden]
    }

    /// `[batch * seq, hidden]` -> `[batch, heads, seq, head_dim]`.
    fn split_heads(&self, x: Tensor<B, 2>, batch: usize) -> Tensor<B, 4> {
        let [rows, _] = x.dims();
        x.reshape([batch, rows / batch, self.num_heads, self.head_dim])
            .swap_dims(1, 2)
    }
}
