//! The operations xp specialises per backend, as one trait extending burn's
//! [`Backend`] (burn's "backend extension" pattern).
//!
//! Model, training and generation code is generic over [`XpBackend`] and calls these
//! operations; it never asks which backend it runs on. Every operation has a default
//! body made of plain burn tensor ops (what a new backend gets for free, and what the
//! GPU backends run unless they override it); the CPU backend overrides them with host
//! kernels (`super::cpu`), autodiff wraps them with their gradients
//! (`super::autodiff`), the cubecl backends (CUDA, wgpu) override the products to
//! choose exact f32 or TF32.

use std::fmt::Debug;

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor, TensorData};

/// burn's [`Backend`] plus the operations xp specialises; see the module docs.
pub trait XpBackend: Backend {
    /// Where a [`crate::model::KvCache`] keeps keys and values on this backend.
    type Cache: KvStore<Self>;

    /// A weight matrix `[in, out]` prepared once for decoding steps (one new position
    /// per sequence): packed panels on the CPU, the tensor itself elsewhere.
    type DecodeWeight: Clone + Debug + Send + Sync;

    /// `a` `[..., m, k]` · `b` `[..., k, n]` -> `[..., m, n]`; the leading dimensions
    /// are equal (no broadcasting). Linear layers, the LM head and attention.
    fn product<const D: usize>(a: Tensor<Self, D>, b: Tensor<Self, D>) -> Tensor<Self, D> {
        a.matmul(b)
    }

    /// Whether `t` is stored with its last two dimensions swapped (a transposed view of
    /// a row-major buffer, as the tied LM head's `Eᵀ`): the gradient of a product for
    /// such an operand is then computed as the transpose of a row-major product, so it
    /// comes out in the buffer's own layout instead of needing a strided copy.
    fn is_transposed<const D: usize>(_t: &Tensor<Self, D>) -> bool {
        false
    }

    /// `t` with `shape` (the same element count), as burn's `reshape`; the CPU backend
    /// keeps the buffer where burn-ndarray 0.21 copies it on every reshape. The
    /// optimizer flattens every parameter and gradient on every step.
    fn reshape_in_place<const D1: usize, const D2: usize>(
        t: Tensor<Self, D1>,
        shape: [usize; D2],
    ) -> Tensor<Self, D2> {
        t.reshape(shape)
    }

    /// Prepares `w` `[in, out]` (any layout) for [`XpBackend::decode_product`].
    fn prepare_decode_weight(w: Tensor<Self, 2>) -> Self::DecodeWeight;

    /// `x` `[rows, in]` · `w` -> `[rows, out]` for a decoding step (few rows).
    fn decode_product(x: Tensor<Self, 2>, w: &Self::DecodeWeight) -> Tensor<Self, 2>;

    /// A decoding step's attention over the cache of `layer`: appends this step's
    /// `key` and `value` and attends with `query` (all `[rows, heads × head_dim]`, one
    /// position per row, the query already scaled); `blocked` `[rows, 1, 1, positions]`
    /// is true where the query may not look. Returns `[rows, heads × head_dim]`.
    fn decode_attention(
        cache: &mut Self::Cache,
        layer: usize,
        heads: usize,
        query: Tensor<Self, 2>,
        key: Tensor<Self, 2>,
        value: Tensor<Self, 2>,
        blocked: Tensor<Self, 4, Bool>,
    ) -> Tensor<Self, 2> {
        let [rows, hidden] = query.dims();
        let split = |t: Tensor<Self, 2>| t.reshape([rows, heads, 1, hidden / heads]);
        let (key, value) = cache.append(layer, split(key), split(value)); // [rows, h, total, hd]
        attention(split(query), key, value, blocked, |probs| probs).reshape([rows, hidden])
    }

    /// The next-token NLL of a causal LM, `[batch, seq - 1]`: position `t` scores
    /// `input_ids[:, t + 1]` under `log_softmax(logits[:, t])`. `logits`
    /// `[batch, seq, vocab]`, `seq ≥ 2`. Returns the NLL and the row statistics its
    /// gradient needs ([`XpBackend::shifted_nll_backward`]).
    fn shifted_nll(
        logits: Tensor<Self, 3>,
        input_ids: Tensor<Self, 2, Int>,
    ) -> (Tensor<Self, 2>, NllStats<Self>) {
        shifted_nll_with_tensors(logits, input_ids)
    }

    /// The gradient of [`XpBackend::shifted_nll`] for `logits`, `[batch, seq, vocab]`:
    /// `(softmax(logits[:, t]) - onehot(input_ids[:, t + 1])) · grad[:, t]`, zero at
    /// the last position.
    fn shifted_nll_backward(
        logits: Tensor<Self, 3>,
        input_ids: Tensor<Self, 2, Int>,
        stats: NllStats<Self>,
        grad: Tensor<Self, 2>,
    ) -> Tensor<Self, 3> {
        shifted_nll_backward_with_tensors(logits, input_ids, stats, grad)
    }

    /// One AdamW update of a flattened parameter (torch's single-tensor formula; see
    /// `crate::train::adamw`). Returns the parameter and the moments `(m, v)`.
    fn adamw_update(
        param: Tensor<Self, 1>,
        grad: Tensor<Self, 1>,
        moments: (Tensor<Self, 1>, Tensor<Self, 1>),
        step: &AdamWStep,
    ) -> (Tensor<Self, 1>, (Tensor<Self, 1>, Tensor<Self, 1>)) {
        adamw_update_with_tensors(param, grad, moments, step)
    }

    /// One beam-search step's candidates: the last position's `logits`
    /// `[rows, vocab]` (rows prompt-major, `step.beams` per prompt) → log-softmax →
    /// repetition penalty → banned tokens → + the row's running score, then per prompt
    /// the `step.keep` best of its `beams × vocab` scores, best first, as
    /// `(score, beam × vocab + token)`. Only those come back to the host.
    fn beam_candidates(logits: Tensor<Self, 2>, step: &BeamStep<'_>) -> Vec<Vec<(f32, usize)>> {
        beam_candidates_with_tensors(logits, step)
    }

    /// The values of an f32 tensor in row-major order.
    fn to_host_f32<const D: usize>(t: Tensor<Self, D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 values")
    }

    /// Runs `work`, a whole task on this backend (training, scoring, generating), on
    /// the thread where its kernels run best: on the CPU a thread of the pool the
    /// kernels split their loops over, elsewhere the calling thread.
    fn run_on_compute_thread<R: Send>(work: impl FnOnce() -> R + Send) -> R {
        work()
    }
}

/// An autodiff backend whose inner backend is an [`XpBackend`] too: training runs on
/// it, evaluation and generation on its inner backend (`module.valid()`).
pub trait XpAutodiffBackend: AutodiffBackend<InnerBackend: XpBackend> + XpBackend {}

impl<B> XpAutodiffBackend for B where B: AutodiffBackend<InnerBackend: XpBackend> + XpBackend {}

/// Keys and values of every layer of a KV cache, in the backend's own layout.
///
/// [`crate::model::KvCache`] owns one, checks its arguments and hands it to the model.
pub trait KvStore<B: Backend>: Clone + Debug + Send {
    /// An empty store that makes room for `positions` at its first append.
    fn with_capacity(positions: usize) -> Self;
    /// Filled positions (0 when empty).
    fn len(&self) -> usize;
    /// Whether nothing is cached.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Rows of the cached tensors, `None` when empty.
    fn rows(&self) -> Option<usize>;
    /// Layers that hold entries.
    fn num_layers(&self) -> usize;
    /// Row `i` becomes old row `indices[i]` (indices checked by the caller).
    fn reorder(&mut self, indices: &[usize]);
    /// Keeps the first `len` positions (`0 < len < self.len()`).
    fn truncate(&mut self, len: usize);
    /// Appends this step's `key`/`value` `[rows, heads, new, head_dim]` of `layer`
    /// and returns every position, `[rows, heads, past + new, head_dim]` each.
    fn append(
        &mut self,
        layer: usize,
        key: Tensor<B, 4>,
        value: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>);
}

/// Scaled dot-product attention: `softmax(q · kᵀ, masked → -inf) · v` with the
/// probabilities passed through `dropout` (the model's attention dropout; identity
/// when decoding). `q` `[b, h, seq, hd]` (already scaled), `k`, `v` `[b, h, total, hd]`,
/// `masked` `[b, 1, seq, total]`. Returns `[b, h, seq, hd]`.
pub fn attention<B: XpBackend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    masked: Tensor<B, 4, Bool>,
    dropout: impl FnOnce(Tensor<B, 4>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [batch, heads, seq, _] = q.dims();
    let total = k.dims()[2];
    let scores = B::product(q, k.swap_dims(2, 3)); // [b, h, seq, total]
    let masked = masked.expand([batch, heads, seq, total]);
    // HF adds finfo(f32).min where masked; replacing gives the same softmax.
    let scores = scores.mask_fill(masked, f32::MIN);
    // Backends here compute in f32, so the softmax is in f32 as in HF.
    let probs = dropout(softmax(scores, 3)); // [b, h, seq, total]
    B::product(probs, v) // [b, h, seq, hd]
}

/// Per predicted position, what the NLL's gradient needs: the row's maximum logit and
/// `ln Σ exp(logit - max)`, `[batch, seq - 1]` each.
#[derive(Debug, Clone)]
pub struct NllStats<B: Backend> {
    pub max: Tensor<B, 2>,
    pub ln_sum: Tensor<B, 2>,
}

/// [`XpBackend::shifted_nll`] with burn's tensor ops.
pub fn shifted_nll_with_tensors<B: Backend>(
    logits: Tensor<B, 3>,
    input_ids: Tensor<B, 2, Int>,
) -> (Tensor<B, 2>, NllStats<B>) {
    let [batch, seq, _] = logits.dims();
    let predicting = logits.narrow(1, 0, seq - 1); // [b, seq - 1, vocab]
    let targets = input_ids.narrow(1, 1, seq - 1).reshape([batch, seq - 1, 1]);
    let max = predicting.clone().max_dim(2); // [b, seq - 1, 1]
    let shifted = predicting - max.clone();
    let ln_sum = shifted.clone().exp().sum_dim(2).log(); // [b, seq - 1, 1]
    let target_logp = shifted.gather(2, targets) - ln_sum.clone(); // [b, seq - 1, 1]
    let squeeze = |t: Tensor<B, 3>| t.reshape([batch, seq - 1]);
    let stats = NllStats {
        max: squeeze(max),
        ln_sum: squeeze(ln_sum),
    };
    (squeeze(target_logp.neg()), stats)
}

/// [`XpBackend::shifted_nll_backward`] with burn's tensor ops.
pub fn shifted_nll_backward_with_tensors<B: Backend>(
    logits: Tensor<B, 3>,
    input_ids: Tensor<B, 2, Int>,
    stats: NllStats<B>,
    grad: Tensor<B, 2>,
) -> Tensor<B, 3> {
    let [batch, seq, vocab] = logits.dims();
    let device = logits.device();
    let rows = [batch, seq - 1, 1];
    let predicting = logits.narrow(1, 0, seq - 1); // [b, seq - 1, vocab]
    let probs = (predicting - stats.max.reshape(rows) - stats.ln_sum.reshape(rows)).exp();
    let targets = input_ids.narrow(1, 1, seq - 1).reshape(rows);
    let onehot = Tensor::<B, 3>::zeros([batch, seq - 1, vocab], &device).scatter(
        2,
        targets,
        Tensor::ones(rows, &device),
        IndexingUpdateOp::Add,
    );
    let d = (probs - onehot) * grad.reshape(rows); // [b, seq - 1, vocab]
    Tensor::cat(vec![d, Tensor::zeros([batch, 1, vocab], &device)], 1)
}

/// The per-step scalars of an AdamW update, in f32 as the update applies them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// `1 - lr · weight_decay`, `None` without weight decay.
    pub decay: Option<f32>,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// `√(1 - β2ᵗ)`.
    pub bias2_sqrt: f32,
    pub eps: f32,
    /// `lr / (1 - β1ᵗ)`.
    pub step_size: f32,
}

/// [`XpBackend::adamw_update`] with burn's tensor ops.
pub fn adamw_update_with_tensors<B: Backend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    (m, v): (Tensor<B, 1>, Tensor<B, 1>),
    k: &AdamWStep,
) -> (Tensor<B, 1>, (Tensor<B, 1>, Tensor<B, 1>)) {
    let p = match k.decay {
        Some(decay) => param.mul_scalar(decay),
        None => param,
    };
    let m = m.clone() + (grad.clone() - m).mul_scalar(k.one_minus_beta1);
    let v = v.mul_scalar(k.beta2) + (grad.clone() * grad).mul_scalar(k.one_minus_beta2);
    let denom = v.clone().sqrt().div_scalar(k.bias2_sqrt).add_scalar(k.eps);
    let p = p - (m.clone() / denom).mul_scalar(k.step_size);
    (p, (m, v))
}

/// What a beam-search step needs besides the logits; see
/// [`XpBackend::beam_candidates`].
#[derive(Debug, Clone, Copy)]
pub struct BeamStep<'a> {
    /// Each row's running score (sum of the chosen log-probabilities so far).
    pub running: &'a [f32],
    /// Rows per prompt.
    pub beams: usize,
    /// Candidates kept per prompt (transformers: `max(2, 1 + #eos) × beams`).
    pub keep: usize,
    /// transformers' repetition penalty over every id in a row's sequence (1.0 = off).
    pub repetition_penalty: f32,
    /// Each row's sequence so far (padded prompt + generated), whose ids are penalised.
    pub sequences: &'a [Vec<u32>],
    /// `(row, token)` pairs whose score becomes -inf (no-repeat-ngram bans, EOS before
    /// min-new-tokens).
    pub banned: &'a [(usize, u32)],
}

/// [`XpBackend::beam_candidates`] with burn's tensor ops: everything on the device,
/// only `[prompts, keep]` scores and indices read back.
pub fn beam_candidates_with_tensors<B: Backend>(
    logits: Tensor<B, 2>,
    step: &BeamStep<'_>,
) -> Vec<Vec<(f32, usize)>> {
    let [rows, vocab] = logits.dims();
    let device = logits.device();
    let mut scores = log_softmax(logits, 1); // [rows, vocab]
    if step.repetition_penalty != 1.0 {
        // Every id of a row's sequence, padded with the row's first id (a repeat
        // marks nothing new), scattered into a [rows, vocab] count.
        let width = step
            .sequences
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(1);
        let ids: Vec<i64> = step
            .sequences
            .iter()
            .flat_map(|s| {
                let pad = s.first().copied().unwrap_or(0);
                (0..width).map(move |i| *s.get(i).unwrap_or(&pad) as i64)
            })
            .collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [rows, width]), &device);
        let seen = Tensor::<B, 2>::zeros([rows, vocab], &device)
            .scatter(
                1,
                ids,
                Tensor::ones([rows, width], &device),
                IndexingUpdateOp::Add,
            )
            .greater_elem(0.0);
        let p = step.repetition_penalty;
        let negative = scores.clone().lower_elem(0.0);
        let penalised = scores
            .clone()
            .div_scalar(p)
            .mask_where(negative, scores.clone().mul_scalar(p));
        scores = scores.mask_where(seen, penalised);
    }
    if !step.banned.is_empty() {
        let flat: Vec<i64> = step
            .banned
            .iter()
            .map(|&(row, token)| (row * vocab + token as usize) as i64)
            .collect();
        let n = flat.len();
        let flat = Tensor::<B, 1, Int>::from_data(TensorData::new(flat, [n]), &device);
        let banned = Tensor::<B, 1>::zeros([rows * vocab], &device)
            .scatter(0, flat, Tensor::ones([n], &device), IndexingUpdateOp::Add)
            .greater_elem(0.0)
            .reshape([rows, vocab]);
        scores = scores.mask_fill(banned, f32::NEG_INFINITY);
    }
    let running =
        Tensor::<B, 2>::from_data(TensorData::new(step.running.to_vec(), [rows, 1]), &device);
    let prompts = rows / step.beams;
    let scores = (scores + running).reshape([prompts, step.beams * vocab]);
    let (values, indices) = scores.topk_with_indices(step.keep, 1); // [prompts, keep]
    let values: Vec<f32> = values
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 scores");
    let indices: Vec<i64> = indices
        .into_data()
        .convert::<i64>()
        .into_vec()
        .expect("integer indices");
    values
        .chunks(step.keep)
        .zip(indices.chunks(step.keep))
        .map(|(v, i)| v.iter().zip(i).map(|(&s, &i)| (s, i as usize)).collect())
        .collect()
}

/// The KV cache as burn tensors, for every backend without its own layout: each
/// layer's keys and values live in buffers with room for more positions than are
/// filled; a step writes its new positions into the free room (in place when nothing
/// else holds the buffer) instead of concatenating, which would copy the whole cache
/// on every token. Buffers grow by doubling when full.
#[derive(Debug, Clone)]
pub struct TensorCache<B: Backend> {
    layers: Vec<LayerKv<B>>,
    /// Positions to make room for when a layer's buffers are first created.
    reserve: usize,
}

/// Keys and values of one layer, `[rows, heads, capacity, head_dim]` each; the first
/// `len` positions are filled.
#[derive(Debug, Clone)]
struct LayerKv<B: Backend> {
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    len: usize,
}

impl<B: Backend> LayerKv<B> {
    fn capacity(&self) -> usize {
        self.key.dims()[2]
    }

    /// Room for at least `needed` positions, keeping the filled ones.
    fn reserve(&mut self, needed: usize) {
        if needed <= self.capacity() {
            return;
        }
        let [rows, heads, capacity, head_dim] = self.key.dims();
        let extra = needed.max(2 * capacity) - capacity;
        let device = self.key.device();
        let grow = |t: Tensor<B, 4>| {
            Tensor::cat(
                vec![t, Tensor::zeros([rows, heads, extra, head_dim], &device)],
                2,
            )
        };
        self.key = grow(self.key.clone());
        self.value = grow(self.value.clone());
    }
}

impl<B: Backend> KvStore<B> for TensorCache<B> {
    fn with_capacity(positions: usize) -> Self {
        TensorCache {
            layers: Vec::new(),
            reserve: positions,
        }
    }

    fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len)
    }

    fn rows(&self) -> Option<usize> {
        self.layers.first().map(|l| l.key.dims()[0])
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn reorder(&mut self, indices: &[usize]) {
        let Some(first) = self.layers.first() else {
            return;
        };
        // One upload per reorder (every token of beam search), shared by the layers.
        let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(index, [indices.len()]),
            &first.key.device(),
        );
        for layer in &mut self.layers {
            layer.key = layer.key.clone().select(0, index.clone());
            layer.value = layer.value.clone().select(0, index.clone());
        }
    }

    fn truncate(&mut self, len: usize) {
        for layer in &mut self.layers {
            layer.len = len;
        }
    }

    fn append(
        &mut self,
        layer: usize,
        key: Tensor<B, 4>,
        value: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [rows, heads, new, head_dim] = key.dims();
        let device = key.device();
        if self.layers.len() <= layer {
            let capacity = self.reserve.max(new);
            let empty = || Tensor::zeros([rows, heads, capacity, head_dim], &device);
            self.layers.push(LayerKv {
                key: empty(),
                value: empty(),
                len: 0,
            });
        }
        let past = &mut self.layers[layer];
        let end = past.len + new;
        past.reserve(end);
        let range = [0..rows, 0..heads, past.len..end, 0..head_dim];
        // Moved out, not cloned: a buffer held twice would be copied whole by the
        // backend's copy-on-write before the write.
        let take =
            |t: &mut Tensor<B, 4>| std::mem::replace(t, Tensor::zeros([1, 1, 1, 1], &device));
        past.key = take(&mut past.key).slice_assign(range.clone(), key);
        past.value = take(&mut past.value).slice_assign(range, value);
        past.len = end;
        (
            past.key.clone().narrow(2, 0, end),
            past.value.clone().narrow(2, 0, end),
        )
    }
}
