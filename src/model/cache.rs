//! The key/value cache for incremental decoding. The caller owns it and passes it to
//! [`super::Opt::forward`]; generation code reorders it by beam index each step.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::error::ModelError;

/// Keys and values of one layer, `[batch, heads, len, head_dim]` each.
#[derive(Debug, Clone)]
pub(crate) struct LayerKv<B: Backend> {
    pub key: Tensor<B, 4>,
    pub value: Tensor<B, 4>,
}

/// Past keys and values of every layer. Empty until the first forward that uses it.
///
/// Every layer holds the same number of positions; [`KvCache::len`] is that number
/// (the "past length"), and the attention mask of the next forward must cover
/// `len() + new tokens` columns.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerKv<B>>,
}

impl<B: Backend> Default for KvCache<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> KvCache<B> {
    /// An empty cache; the first forward fills it.
    pub fn new() -> Self {
        KvCache { layers: Vec::new() }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.key.dims()[2])
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
            layer.key = layer.key.clone().narrow(2, 0, len);
            layer.value = layer.value.clone().narrow(2, 0, len);
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
        if let Some(past) = self.layers.get_mut(layer) {
            past.key = Tensor::cat(vec![past.key.clone(), key], 2);
            past.value = Tensor::cat(vec![past.value.clone(), value], 2);
            (past.key.clone(), past.value.clone())
        } else {
            // Layers fill in order during the first forward.
            self.layers.push(LayerKv {
                key: key.clone(),
                value: value.clone(),
            });
            (key, value)
        }
    }

    /// Number of layers that hold entries.
    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }
}
