//! The key/value cache for incremental decoding. The caller owns it and passes it to
//! [`super::Opt::forward`]; generation code reorders it by beam index each step.
//!
//! Each layer's keys and values live in buffers with room for more positions than are
//! filled; a step writes its new positions into the free room (in place when nothing
//! else holds the buffer) instead of concatenating, which would copy the whole cache
//! on every token. Buffers grow by doubling when full.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::error::ModelError;

/// Keys and values of one layer, `[batch, heads, capacity, head_dim]` each; the first
/// `len` positions are filled.
#[derive(Debug, Clone)]
pub(crate) struct LayerKv<B: Backend> {
    pub key: Tensor<B, 4>,
    pub value: Tensor<B, 4>,
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
        let [batch, heads, capacity, head_dim] = self.key.dims();
        let extra = needed.max(2 * capacity) - capacity;
        let device = self.key.device();
        let grow = |t: Tensor<B, 4>| {
            Tensor::cat(
                vec![t, Tensor::zeros([batch, heads, extra, head_dim], &device)],
                2,
            )
        };
        self.key = grow(self.key.clone());
        self.value = grow(self.value.clone());
    }
}

/// Past keys and values of every layer. Empty until the first forward that uses it.
///
/// Every layer holds the same number of positions; [`KvCache::len`] is that number
/// (the "past length"), and the attention mask of the next forward must cover
/// `len() + new tokens` columns.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerKv<B>>,
    /// Positions to make room for when a layer's buffers are first created.
    reserve: usize,
}

impl<B: Backend> Default for KvCache<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> KvCache<B> {
    /// An empty cache; the first forward fills it.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty cache that makes room for `positions` (prompt + new tokens) at the
    /// first forward, so that decoding never reallocates.
    pub fn with_capacity(positions: usize) -> Self {
        KvCache {
            layers: Vec::new(),
            reserve: positions,
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batch size of the cached tensors, `None` when empty.
    pub fn batch_size(&self) -> Option<usize> {
        self.layers.first().map(|l| l.key.dims()[0])
    }

    /// Reorders (or repeats) the cached sequences along the batch: row `i` of the new
    /// cache is row `indices[i]` of the old one. Beam search passes the beam index
    /// of every surviving candidate; the new batch size is `indices.len()`.
    pub fn reorder(&mut self, indices: Tensor<B, 1, Int>) -> Result<(), ModelError> {
        let Some(batch) = self.batch_size() else {
            return Ok(());
        };
        let picked: Vec<i64> = indices
            .to_data()
            .convert::<i64>()
            .into_vec()
            .map_err(|e| ModelError::InvalidInput(format!("reorder indices: {e:?}")))?;
        if let Some(bad) = picked.iter().find(|&&i| i < 0 || i as usize >= batch) {
            return Err(ModelError::InvalidInput(format!(
                "reorder index {bad} is outside the cached batch of {batch}"
            )));
        }
        for layer in &mut self.layers {
            layer.key = layer.key.clone().select(0, indices.clone());
            layer.value = layer.value.clone().select(0, indices.clone());
        }
        Ok(())
    }

    /// Keeps the first `len` positions (no-op when `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        if len == 0 {
            self.reset();
            return;
        }
        for layer in &mut self.layers {
            layer.len = len;
        }
    }

    /// Drops everything.
    pub fn reset(&mut self) {
        self.layers.clear();
    }

    /// Appends this step's keys/values `[batch, heads, new, head_dim]` of `layer` and
    /// returns the whole sequence `[batch, heads, past + new, head_dim]` for attention.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        key: Tensor<B, 4>,
        value: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [batch, heads, new, head_dim] = key.dims();
        if self.layers.len() <= layer {
            let capacity = self.reserve.max(new);
            let device = key.device();
            let empty = || Tensor::zeros([batch, heads, capacity, head_dim], &device);
            self.layers.push(LayerKv {
                key: empty(),
                value: empty(),
                len: 0,
            });
        }
        let past = &mut self.layers[layer];
        let end = past.len + new;
        past.reserve(end);
        let range = [0..batch, 0..heads, past.len..end, 0..head_dim];
        // Moved out, not cloned: a buffer held twice would be copied whole by the
        // backend's copy-on-write before the write.
        let device = key.device();
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

    /// Number of layers that hold entries.
    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }
}
