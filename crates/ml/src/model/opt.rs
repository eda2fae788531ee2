//! The OPT decoder with its tied LM head: token embedding (+ project_in), learned
//! positions with offset 2 computed from the attention mask, decoder layers, final
//! LayerNorm (+ project_out), logits = h · Eᵀ with E the token embedding.

use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, ElementConversion, Int, Tensor};

use super::cache::KvCache;
use super::config::{OptConfig, POSITION_OFFSET};
use super::decode::DecodeWeights;
use super::error::ModelError;
use super::layer::OptDecoderLayer;
use super::params::{
    Init, NamedTensor, ParamSource, RandomInit, embedding, export_embedding, export_layer_norm,
    export_linear, layer_norm, linear,
};
use crate::backend::XpBackend;

/// OPT for causal language modelling (HF `OPTForCausalLM`); parameter names follow HF's
/// `decoder.*` keys. The LM head has no parameter of its own: it reuses
/// `embed_tokens`, so gradients from both uses reach the one tensor.
#[derive(Module, Debug)]
pub struct Opt<B: Backend> {
    /// `[vocab, word_embed_proj_dim]`.
    embed_tokens: Embedding<B>,
    /// `[max_position_embeddings + 2, hidden]`.
    embed_positions: Embedding<B>,
    /// `word_embed_proj_dim -> hidden`, no bias (opt-350m only).
    project_in: Option<Linear<B>>,
    /// `hidden -> word_embed_proj_dim`, no bias (opt-350m only).
    project_out: Option<Linear<B>>,
    layers: Vec<OptDecoderLayer<B>>,
    /// Present for pre-LN models unless `_remove_final_layer_norm`.
    final_layer_norm: Option<LayerNorm<B>>,
    vocab_size: usize,
    max_position_embeddings: usize,
}

impl<B: Backend> Opt<B> {
    /// A randomly initialised model, as HF initialises a fresh OPT: normal(0, init_std)
    /// for Linear and Embedding weights (the padding row of `embed_tokens` zeroed),
    /// zero biases, LayerNorm gain 1 and bias 0. Seed the backend first
    /// (`B::seed(&device, seed)`) for reproducible weights.
    pub fn init(config: &OptConfig, device: &B::Device) -> Self {
        let mut src = RandomInit::<B> {
            device: device.clone(),
        };
        Self::build(&mut src, config)
    }

    /// Builds every parameter from `src`, by HF key; the one list of keys a config implies.
    pub(crate) fn build<S: ParamSource<B>>(src: &mut S, config: &OptConfig) -> Self {
        let (d, e, std) = (
            config.hidden_size,
            config.word_embed_proj_dim,
            config.init_std,
        );
        let token_init = match config.pad_token_id {
            Some(pad) => Init::NormalZeroRow(std, pad as usize),
            None => Init::Normal(std),
        };
        let embed_tokens = embedding(
            src,
            "decoder.embed_tokens.weight",
            config.vocab_size,
            e,
            token_init,
        );
        let embed_positions = embedding(
            src,
            "decoder.embed_positions.weight",
            config.max_position_embeddings + POSITION_OFFSET,
            d,
            Init::Normal(std),
        );
        let (project_in, project_out) = if config.has_projections() {
            (
                Some(linear(src, "decoder.project_in", e, d, false, std)),
                Some(linear(src, "decoder.project_out", d, e, false, std)),
            )
        } else {
            (None, None)
        };
        let layers = (0..config.num_layers)
            .map(|i| OptDecoderLayer::build(src, i, config))
            .collect();
        let final_layer_norm = config
            .final_layer_norm
            .then(|| layer_norm(src, "decoder.final_layer_norm", d, config.layer_norm_eps));
        Opt {
            embed_tokens,
            embed_positions,
            project_in,
            project_out,
            layers,
            final_layer_norm,
            vocab_size: config.vocab_size,
            max_position_embeddings: config.max_position_embeddings,
        }
    }

    /// The token embedding `[vocab, word_embed_proj_dim]` (also the LM head).
    pub fn token_embedding(&self) -> Tensor<B, 2> {
        self.embed_tokens.weight.val()
    }

    /// Every parameter with its HF key (no prefix) and HF layout, for saving.
    pub(crate) fn export(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        export_embedding(&self.embed_tokens, "decoder.embed_tokens.weight", &mut out);
        export_embedding(
            &self.embed_positions,
            "decoder.embed_positions.weight",
            &mut out,
        );
        if let Some(p) = &self.project_in {
            export_linear(p, "decoder.project_in", &mut out);
        }
        if let Some(p) = &self.project_out {
            export_linear(p, "decoder.project_out", &mut out);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            layer.export(i, &mut out);
        }
        if let Some(n) = &self.final_layer_norm {
            export_layer_norm(n, "decoder.final_layer_norm", &mut out);
        }
        out
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}

impl<B: XpBackend> Opt<B> {
    /// Logits `[batch, seq, vocab]` for `input_ids` `[batch, seq]`.
    ///
    /// `attention_mask` `[batch, past + seq]` (1 = real token, 0 = padding) covers the
    /// cached positions too; `None` means all ones. Positions come from the mask as in
    /// HF (`cumsum(mask) * mask - 1 + 2`), so left padding shifts them. With `cache`,
    /// this step's keys/values are appended and attention sees past + new positions.
    /// Logits at padded positions are meaningless (as in HF).
    ///
    /// Dropout is active only on autodiff backends; use `model.valid()` to evaluate.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        cache: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let h = self.hidden_states(input_ids, attention_mask, cache)?;
        Ok(self.logits(h))
    }

    /// The decoder output before the LM head, `[batch, seq, word_embed_proj_dim]`.
    pub fn hidden_states(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let device = input_ids.device();
        let [batch, seq] = input_ids.dims();
        let past = cache.as_ref().map_or(0, |c| c.len());
        let total = past + seq;
        self.check_inputs(&input_ids, attention_mask.as_ref(), cache.as_deref(), total)?;
        let mask = attention_mask.unwrap_or_else(|| Tensor::ones([batch, total], &device)); // [b, total]

        // Positions: cumsum(mask) * mask - 1, this step's columns, + offset 2.
        let positions = (mask.clone().cumsum(1) * mask.clone() - 1)
            .narrow(1, past, seq)
            .add_scalar(POSITION_OFFSET as i64); // [b, seq]
        let masked = attention_blocked(mask, past, seq); // [b, 1, seq, total]

        let mut h = self.embed_tokens.forward(input_ids); // [b, seq, word_embed_proj_dim]
        if let Some(project_in) = &self.project_in {
            h = project_in.forward(h); // [b, seq, hidden]
        }
        let mut h = h + self.embed_positions.forward(positions); // [b, seq, hidden]
        // A decoding step (one position per sequence) with weights prepared for it.
        let prepared = match &cache {
            Some(cache) if seq == 1 => cache.decode_weights().cloned(),
            _ => None,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            let weights = prepared.as_ref().map(|w| &w.layers[i]);
            h = layer.forward(h, masked.clone(), layer_cache, weights);
        }
        if let Some(norm) = &self.final_layer_norm {
            h = norm.forward(h);
        }
        if let Some(project_out) = &self.project_out {
            h = project_out.forward(h); // [b, seq, word_embed_proj_dim]
        }
        Ok(h)
    }

    /// The tied LM head: `h` `[batch, seq, e]` · Eᵀ `[e, vocab]` -> `[batch, seq, vocab]`.
    pub fn logits(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, e] = h.dims();
        let table = self.embed_tokens.weight.val(); // [vocab, e]
        B::product(h.reshape([batch * seq, e]), table.transpose()) // [batch * seq, vocab]
            .reshape([batch, seq, self.vocab_size])
    }

    /// [`Opt::logits`] for a decoding step that ran with `cache`: with one position
    /// per sequence and a cache made by [`KvCache::for_decoding`], the head's prepared
    /// form (on the CPU, panels streamed instead of a general product over the
    /// 50k-column table).
    pub fn decoding_logits(&self, h: Tensor<B, 3>, cache: &KvCache<B>) -> Tensor<B, 3> {
        let [batch, seq, e] = h.dims();
        match cache.decode_weights() {
            Some(weights) if seq == 1 => B::decode_product(h.reshape([batch, e]), &weights.head)
                .reshape([batch, 1, self.vocab_size]),
            _ => self.logits(h),
        }
    }

    /// Every weight prepared for decoding steps (see [`KvCache::for_decoding`]).
    pub fn decode_weights(&self) -> DecodeWeights<B> {
        DecodeWeights {
            layers: self
                .layers
                .iter()
                .map(OptDecoderLayer::decode_weights)
                .collect(),
            head: B::prepare_decode_weight(self.embed_tokens.weight.val().transpose()),
        }
    }

    fn check_inputs(
        &self,
        input_ids: &Tensor<B, 2, Int>,
        attention_mask: Option<&Tensor<B, 2, Int>>,
        cache: Option<&KvCache<B>>,
        total: usize,
    ) -> Result<(), ModelError> {
        let [batch, seq] = input_ids.dims();
        let bad = |msg: String| Err(ModelError::InvalidInput(msg));
        if batch == 0 || seq == 0 {
            return bad(format!(
                "input_ids has shape [{batch}, {seq}]; both must be > 0"
            ));
        }
        if let Some(mask) = attention_mask
            && mask.dims() != [batch, total]
        {
            return bad(format!(
                "attention_mask has shape {:?}, expected [{batch}, {total}] (batch, cached + new positions)",
                mask.dims()
            ));
        }
        if total > self.max_position_embeddings {
            return bad(format!(
                "{total} positions exceed max_position_embeddings {}",
                self.max_position_embeddings
            ));
        }
        if let Some(cache) = cache {
            if cache.num_layers() != 0 && cache.num_layers() != self.layers.len() {
                return bad(format!(
                    "the KV cache holds {} layers, the model has {}",
                    cache.num_layers(),
                    self.layers.len()
                ));
            }
            if let Some(cached) = cache.batch_size()
                && cached != batch
            {
                return bad(format!(
                    "the KV cache holds batch {cached}, input_ids has batch {batch}; reorder it first"
                ));
            }
        }
        let max: i64 = input_ids.clone().max().into_scalar().elem();
        let min: i64 = input_ids.clone().min().into_scalar().elem();
        if min < 0 || max >= self.vocab_size as i64 {
            return bad(format!(
                "token ids range over [{min}, {max}], the vocabulary has {} entries",
                self.vocab_size
            ));
        }
        Ok(())
    }
}

/// Where attention is not allowed, `[batch, 1, seq, past + seq]` (true = blocked):
/// future keys (key index > past + query index) and padded keys (mask == 0).
fn attention_blocked<B: Backend>(
    mask: Tensor<B, 2, Int>,
    past: usize,
    seq: usize,
) -> Tensor<B, 4, Bool> {
    let device = mask.device();
    let [batch, total] = mask.dims();
    let query = Tensor::<B, 1, Int>::arange(past as i64..(past + seq) as i64, &device)
        .reshape([seq, 1])
        .expand([seq, total]);
    let key = Tensor::<B, 1, Int>::arange(0..total as i64, &device)
        .reshape([1, total])
        .expand([seq, total]);
    let future = key
        .greater(query)
        .reshape([1, 1, seq, total])
        .expand([batch, 1, seq, total]);
    let padded = mask
        .equal_elem(0)
        .reshape([batch, 1, 1, total])
        .expand([batch, 1, seq, total]);
    future.bool_or(padded)
}

#[cfg(test)]
mod dropout_tests {
    //! Dropout as transformers applies it (`OPTDecoderLayer`): on the attention output
    //! and on the FFN output, with the config's `dropout`, in training only; nowhere
    //! else (no embedding dropout in `OPTDecoder`). Evaluation and generation load
    //! the model on the inner (non-autodiff) backend, where it is off.

    use burn::module::AutodiffModule;
    use burn::tensor::{Int, Tensor, TensorData};

    use super::*;
    use crate::backend::NdarrayBackend;
    use crate::model::params::{Init, RandomInit};

    type Train = NdarrayBackend;

    /// Random weights, except zeros for the keys `zero` picks.
    struct ZeroSome {
        inner: RandomInit<Train>,
        zero: fn(&str) -> bool,
    }

    impl ParamSource<Train> for ZeroSome {
        fn tensor<const D: usize>(
            &mut self,
            key: &str,
            hf_shape: [usize; D],
            init: Init,
            transpose: bool,
        ) -> Tensor<Train, D> {
            let t = self.inner.tensor(key, hf_shape, init, transpose);
            if (self.zero)(key) { t.zeros_like() } else { t }
        }

        fn device(&self) -> burn::tensor::Device<Train> {
            self.inner.device
        }
    }

    fn config(dropout: f64) -> OptConfig {
        let mut config = OptConfig::tiny(64, 16, 2, 2, 32, 16);
        config.dropout = dropout;
        config.attention_dropout = 0.0;
        config
    }

    fn model(dropout: f64, zero: fn(&str) -> bool) -> Opt<Train> {
        let device = Default::default();
        <Train as Backend>::seed(&device, 3);
        let mut src = ZeroSome {
            inner: RandomInit { device },
            zero,
        };
        Opt::build(&mut src, &config(dropout))
    }

    fn ids<B: Backend>() -> Tensor<B, 2, Int> {
        Tensor::from_data(
            TensorData::new((1..=8).collect::<Vec<i64>>(), [1, 8]),
            &Default::default(),
        )
    }

    /// Logits in training mode (autodiff backend: dropout on).
    fn train(m: &Opt<Train>) -> Vec<f32> {
        let out = m.forward(ids(), None, None).unwrap();
        out.into_data().to_vec::<f32>().unwrap()
    }

    /// Logits as evaluation and generation compute them (inner backend).
    fn eval(m: &Opt<Train>) -> Vec<f32> {
        let out = m.valid().forward(ids(), None, None).unwrap();
        out.into_data().to_vec::<f32>().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn training_applies_the_configs_dropout_and_evaluation_does_not() {
        let _rng = crate::backend::seeded_rng_lock();
        let m = model(0.1, |_| false);
        for layer in &m.layers {
            assert_eq!(layer.dropout_prob(), 0.1);
        }
        // Training: two passes draw different masks.
        assert!(max_diff(&train(&m), &train(&m)) > 1e-4);
        // Evaluation / generation: deterministic, and the same as training with p = 0.
        let eval1 = eval(&m);
        assert_eq!(eval1, eval(&m));
        let off = model(0.0, |_| false);
        assert!(max_diff(&train(&off), &eval(&off)) < 1e-5);
        assert!(
            max_diff(&eval1, &eval(&off)) < 1e-5,
            "same weights, no dropout"
        );
    }

    #[test]
    fn dropout_sits_on_the_attention_and_ffn_outputs_only() {
        let _rng = crate::backend::seeded_rng_lock();
        let attention_out = |k: &str| k.contains("self_attn.out_proj");
        let ffn_out = |k: &str| k.contains(".fc2.");
        // Both outputs zero: dropout has nothing to drop, so training = evaluation;
        // dropout anywhere else (embeddings, LayerNorms, logits) would show here.
        let both = model(0.5, |k| {
            k.contains("self_attn.out_proj") || k.contains(".fc2.")
        });
        assert!(max_diff(&train(&both), &eval(&both)) < 1e-5);
        // Only the FFN output zero: the attention output's dropout shows.
        let m = model(0.5, ffn_out);
        assert!(max_diff(&train(&m), &eval(&m)) > 1e-3);
        // Only the attention output zero: the FFN output's dropout shows.
        let m = model(0.5, attention_out);
        assert!(max_diff(&train(&m), &eval(&m)) > 1e-3);
    }
}
