//! One OPT decoder layer: self-attention block and ReLU feed-forward block, each with
//! a residual connection and a LayerNorm before (pre-LN) or after (post-LN).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use super::attention::OptAttention;
use super::cache::KvCache;
use super::config::{Activation, OptConfig};
use super::decode::{self, LayerWeights};
use super::params::{
    NamedTensor, ParamSource, export_layer_norm, export_linear, layer_norm, linear,
};
use crate::backend::XpBackend;

/// `decoder.layers.N`.
#[derive(Module, Debug)]
pub struct OptDecoderLayer<B: Backend> {
    self_attn: OptAttention<B>,
    self_attn_layer_norm: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    /// The layer's second LayerNorm (around the FFN), named as in HF.
    final_layer_norm: LayerNorm<B>,
    /// Dropout on the attention output and on the FFN output (`dropout`).
    dropout: Dropout,
    do_layer_norm_before: bool,
    activation: Activation,
}

impl<B: Backend> OptDecoderLayer<B> {
    /// The probability of the dropout on the attention and FFN outputs.
    #[cfg(test)]
    pub(crate) fn dropout_prob(&self) -> f64 {
        self.dropout.prob
    }

    pub(crate) fn build<S: ParamSource<B>>(src: &mut S, index: usize, config: &OptConfig) -> Self {
        let p = format!("decoder.layers.{index}");
        let (d, f, eps) = (config.hidden_size, config.ffn_dim, config.layer_norm_eps);
        OptDecoderLayer {
            self_attn: OptAttention::build(src, &format!("{p}.self_attn"), config),
            self_attn_layer_norm: layer_norm(src, &format!("{p}.self_attn_layer_norm"), d, eps),
            fc1: linear(
                src,
                &format!("{p}.fc1"),
                d,
                f,
                config.enable_bias,
                config.init_std,
            ),
            fc2: linear(
                src,
                &format!("{p}.fc2"),
                f,
                d,
                config.enable_bias,
                config.init_std,
            ),
            final_layer_norm: layer_norm(src, &format!("{p}.final_layer_norm"), d, eps),
            dropout: DropoutConfig::new(config.dropout).init(),
            do_layer_norm_before: config.do_layer_norm_before,
            activation: config.activation,
        }
    }

    /// Appends this layer's parameters under `decoder.layers.{index}` (HF names and layout).
    pub(crate) fn export(&self, index: usize, out: &mut Vec<NamedTensor>) {
        let p = format!("decoder.layers.{index}");
        self.self_attn.export(&format!("{p}.self_attn"), out);
        export_layer_norm(
            &self.self_attn_layer_norm,
            &format!("{p}.self_attn_layer_norm"),
            out,
        );
        export_linear(&self.fc1, &format!("{p}.fc1"), out);
        export_linear(&self.fc2, &format!("{p}.fc2"), out);
        export_layer_norm(
            &self.final_layer_norm,
            &format!("{p}.final_layer_norm"),
            out,
        );
    }
}

impl<B: XpBackend> OptDecoderLayer<B> {
    /// This layer's weights prepared for decoding steps.
    pub(crate) fn decode_weights(&self) -> LayerWeights<B> {
        let [q, k, v, out] = self.self_attn.decode_weights();
        LayerWeights {
            q,
            k,
            v,
            out,
            fc1: decode::prepare(&self.fc1),
            fc2: decode::prepare(&self.fc2),
        }
    }

    /// `x`: `[batch, seq, hidden]` -> `[batch, seq, hidden]`; `prepared`: this layer's
    /// weights for a decoding step.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        masked: Tensor<B, 4, Bool>,
        cache: Option<(&mut KvCache<B>, usize)>,
        prepared: Option<&LayerWeights<B>>,
    ) -> Tensor<B, 3> {
        // Attention block.
        let residual = x.clone();
        let h = if self.do_layer_norm_before {
            self.self_attn_layer_norm.forward(x)
        } else {
            x
        };
        let h = self
            .dropout
            .forward(self.self_attn.forward(h, masked, cache, prepared));
        let mut h = residual + h;
        if !self.do_layer_norm_before {
            h = self.self_attn_layer_norm.forward(h);
        }

        // Feed-forward block.
        let residual = h.clone();
        let f = if self.do_layer_norm_before {
            self.final_layer_norm.forward(h)
        } else {
            h
        };
        // The FFN runs on [batch * seq, hidden] as in HF: 2-D linears keep the weight
        // gradient one large matrix product instead of a per-batch product plus a sum.
        let [batch, seq, hidden] = f.dims();
        let f = decode::linear(
            &self.fc1,
            f.reshape([batch * seq, hidden]),
            prepared.map(|w| &w.fc1),
        ); // [batch * seq, ffn]
        let f = match self.activation {
            Activation::Relu => relu(f),
            Activation::Gelu => gelu(f),
        };
        let f =
            decode::linear(&self.fc2, f, prepared.map(|w| &w.fc2)).reshape([batch, seq, hidden]); // [batch, seq, hidden]
        let f = self.dropout.forward(f);
        let mut h = residual + f;
        if !self.do_layer_norm_before {
            h = self.final_layer_norm.forward(h);
        }
        h
    }
}
