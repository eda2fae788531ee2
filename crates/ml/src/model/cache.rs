//! The key/value cache for incremental decoding. The caller owns it and passes it to
//! [`super::Opt::forward`]; generation code reorders it by beam index each step.
//!
//! Where keys and values live is the backend's choice (`XpBackend::Cache`): host
//! buffers with a table of sources per row on the CPU (beam reorders rewrite the table
//! instead of copying), tensors with room to grow elsewhere. A cache made with
//! [`KvCache::for_decoding`] also holds the model's weights prepared for decoding
//! steps.

use std::sync::Arc;

use burn::tensor::{Int, Tensor};

use super::decode::DecodeWeights;
use super::error::ModelError;
use super::opt::Opt;
use crate::backend::{KvStore, XpBackend};

/// Past keys and values of every layer. Empty until the first forward that uses it.
///
/// Every layer holds the same number of positions; [`KvCache::len`] is that number
/// (the "past length"), and the attention mask of the next forward must cover
/// `len() + new tokens` columns.
#[derive(Debug, Clone)]
pub struct KvCache<B: XpBackend> {
    store: B::Cache,
    /// Positions to make room for when the store is first filled.
    reserve: usize,
    /// The model's weights for one-position steps (`None`: plain products).
    weights: Option<Arc<DecodeWeights<B>>>,
}

impl<B: XpBackend> Default for KvCache<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: XpBackend> KvCache<B> {
    /// An empty cache; the first forward fills it.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty cache that makes room for `positions` (prompt + new tokens) at the
    /// first forward, so that decoding never reallocates.
    pub fn with_capacity(positions: usize) -> Self {
        KvCache {
            store: B::Cache::with_capacity(positions),
            reserve: positions,
            weights: None,
        }
    }

    /// [`KvCache::with_capacity`] for generating with `model`: its weights are
    /// prepared once here for every one-position step that uses this cache.
    pub fn for_decoding(model: &Opt<B>, positions: usize) -> Self {
        KvCache {
            weights: Some(Arc::new(model.decode_weights())),
            ..Self::with_capacity(positions)
        }
    }

    /// The prepared weights, if this cache was made for decoding.
    pub(crate) fn decode_weights(&self) -> Option<&Arc<DecodeWeights<B>>> {
        self.weights.as_ref()
    }

    /// The backend's storage, for the model's attention.
    pub(crate) fn store_mut(&mut self) -> &mut B::Cache {
        &mut self.store
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batch size of the cached tensors, `None` when empty.
    pub fn batch_size(&self) -> Option<usize> {
        self.store.rows()
    }

    /// Reorders (or repeats) the cached sequences along the batch: row `i` of the new
    /// cache is row `indices[i]` of the old one. Beam search passes the beam index
    /// of every surviving candidate; the new batch size is `indices.len()`.
    pub fn reorder(&mut self, indices: Tensor<B, 1, Int>) -> Result<(), ModelError> {
        let picked: Vec<i64> = indices
            .to_data()
            .convert::<i64>()
            .into_vec()
            .map_err(|e| ModelError::InvalidInput(format!("reorder indices: {e:?}")))?;
        self.reorder_rows(&picked)
    }

    /// [`KvCache::reorder`] with the indices on the host.
    pub fn reorder_rows(&mut self, indices: &[i64]) -> Result<(), ModelError> {
        let Some(batch) = self.batch_size() else {
            return Ok(());
        };
        if let Some(bad) = indices.iter().find(|&&i| i < 0 || i as usize >= batch) {
            return Err(ModelError::InvalidInput(format!(
                "reorder index {bad} is outside the cached batch of {batch}"
            )));
        }
        let picked: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
        self.store.reorder(&picked);
        Ok(())
    }

    /// Keeps the first `len` positions (no-op when `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        if len == 0 {
            self.reset();
        } else {
            self.store.truncate(len);
        }
    }

    /// Drops every cached position (prepared weights stay).
    pub fn reset(&mut self) {
        self.store = B::Cache::with_capacity(self.reserve);
    }

    /// Number of layers that hold entries.
    pub(crate) fn num_layers(&self) -> usize {
        self.store.num_layers()
    }
}
