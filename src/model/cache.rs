//! The key/value cache for incremental decoding. The caller owns it and passes it to
//! [`super::Opt::forward`]; generation code reorders it by beam index each step.
//!
//! Two representations, chosen by the backend at the first forward:
//! - on the CPU backend, host buffers with a table of sources per row
//!   (`super::host_cache`): beam reorders rewrite the table instead of copying keys
//!   and values, and a decoding step's attention reads the buffers directly;
//! - elsewhere (CUDA, autodiff), burn tensors: each layer's keys and values live in
//!   buffers with room for more positions than are filled; a step writes its new
//!   positions into the free room (in place when nothing else holds the buffer)
//!   instead of concatenating, which would copy the whole cache on every token.
//!   Buffers grow by doubling when full.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::error::ModelError;
use super::host_cache::{Appended, HostCache};
use super::panels::PanelStore;
use crate::backend::{into_host_vec, is_ndarray};

/// The values of an f32 tensor of the CPU backend (the host cache is only made there).
fn host_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    into_host_vec(t).expect("the CPU backend's tensors are f32")
}

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

/// Where the entries live; see the module docs.
#[derive(Debug, Clone)]
enum Entries<B: Backend> {
    Empty,
    Device(Vec<LayerKv<B>>),
    Host(HostCache),
}

/// Past keys and values of every layer. Empty until the first forward that uses it.
///
/// Every layer holds the same number of positions; [`KvCache::len`] is that number
/// (the "past length"), and the attention mask of the next forward must cover
/// `len() + new tokens` columns.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    entries: Entries<B>,
    /// Positions to make room for when a layer's buffers are first created.
    reserve: usize,
    /// The weights as the CPU backend's decoding steps stream them, packed at the
    /// first step that uses each (see `super::panels`); shared by clones.
    panels: Arc<PanelStore>,
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
            entries: Entries::Empty,
            reserve: positions,
            panels: Arc::default(),
        }
    }

    /// The packed weights of this decoding run.
    pub(crate) fn panels(&self) -> &Arc<PanelStore> {
        &self.panels
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Empty => 0,
            Entries::Device(layers) => layers.first().map_or(0, |l| l.len),
            Entries::Host(host) => host.len(),
        }
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batch size of the cached tensors, `None` when empty.
    pub fn batch_size(&self) -> Option<usize> {
        match &self.entries {
            Entries::Empty => None,
            Entries::Device(layers) => layers.first().map(|l| l.key.dims()[0]),
            Entries::Host(host) => Some(host.rows()),
        }
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
        match &mut self.entries {
            Entries::Empty => {}
            Entries::Device(layers) => {
                for layer in layers {
                    layer.key = layer.key.clone().select(0, indices.clone());
                    layer.value = layer.value.clone().select(0, indices.clone());
                }
            }
            Entries::Host(host) => {
                let picked: Vec<usize> = picked.iter().map(|&i| i as usize).collect();
                host.reorder(&picked);
            }
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
        match &mut self.entries {
            Entries::Empty => {}
            Entries::Device(layers) => {
                for layer in layers {
                    layer.len = len;
                }
            }
            Entries::Host(host) => host.truncate(len),
        }
    }

    /// Drops every cached position (the packed weights stay).
    pub fn reset(&mut self) {
        self.entries = Entries::Empty;
    }

    /// Number of layers that hold entries.
    pub(crate) fn num_layers(&self) -> usize {
        match &self.entries {
            Entries::Empty => 0,
            Entries::Device(layers) => layers.len(),
            Entries::Host(host) => host.num_layers(),
        }
    }

    /// Whether a one-position step attends in [`KvCache::attend_step`] (the CPU
    /// backend's host cache) rather than over tensors from [`KvCache::append`].
    pub(crate) fn attends_on_host(&self) -> bool {
        match self.entries {
            Entries::Empty => is_ndarray::<B>(),
            Entries::Device(_) => false,
            Entries::Host(_) => true,
        }
    }

    /// The host cache for `rows × heads` sequences, created on first use.
    fn host(&mut self, rows: usize, heads: usize, head_dim: usize) -> &mut HostCache {
        if matches!(self.entries, Entries::Empty) {
            let capacity = self.reserve.max(1);
            self.entries = Entries::Host(HostCache::new(rows, heads, head_dim, capacity));
        }
        match &mut self.entries {
            Entries::Host(host) => host,
            _ => unreachable!("attends_on_host() chose the host cache"),
        }
    }

    /// Appends this step's keys/values `[batch, heads, new, head_dim]` of `layer` and
    /// returns the whole sequence `[batch, heads, past + new, head_dim]` for attention.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        key: Tensor<B, 4>,
        value: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        if self.attends_on_host() {
            return self.append_on_host(layer, key, value);
        }
        let [batch, heads, new, head_dim] = key.dims();
        if matches!(self.entries, Entries::Empty) {
            self.entries = Entries::Device(Vec::new());
        }
        let Entries::Device(layers) = &mut self.entries else {
            unreachable!("not the host cache")
        };
        if layers.len() <= layer {
            let capacity = self.reserve.max(new);
            let device = key.device();
            let empty = || Tensor::zeros([batch, heads, capacity, head_dim], &device);
            layers.push(LayerKv {
                key: empty(),
                value: empty(),
                len: 0,
            });
        }
        let past = &mut layers[layer];
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

    /// [`KvCache::append`] on the host cache: the first positions come back as given;
    /// later multi-position steps get the sequences gathered into new tensors.
    fn append_on_host(
        &mut self,
        layer: usize,
        key: Tensor<B, 4>,
        value: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [rows, heads, new, head_dim] = key.dims();
        let device = key.device();
        let (key_values, value_values) = (host_values(key.clone()), host_values(value.clone()));
        let host = self.host(rows, heads, head_dim);
        let dims = Appended {
            rows,
            heads,
            new,
            head_dim,
        };
        let past = host.layer_len(layer);
        host.append(layer, dims, &key_values, &value_values);
        if past == 0 {
            return (key, value);
        }
        let total = past + new;
        let (k, v) = host.gather(layer, &host.all_rows(), total);
        let shape = [rows, heads, total, head_dim];
        (
            Tensor::from_data(TensorData::new(k, shape), &device),
            Tensor::from_data(TensorData::new(v, shape), &device),
        )
    }

    /// A decoding step's attention on the host cache: appends this step's `key` and
    /// `value` (`[rows, heads × head_dim]`, one position per row) to `layer` and
    /// attends with `query` (same shape, scaled) over every filled position;
    /// `blocked` `[rows, 1, 1, positions]` is true where a query may not look.
    /// Returns `[rows, heads × head_dim]`.
    pub(crate) fn attend_step(
        &mut self,
        layer: usize,
        heads: usize,
        query: Tensor<B, 2>,
        key: Tensor<B, 2>,
        value: Tensor<B, 2>,
        blocked: Tensor<B, 4, Bool>,
    ) -> Tensor<B, 2> {
        let [rows, hidden] = query.dims();
        let device = query.device();
        let head_dim = hidden / heads;
        let host = self.host(rows, heads, head_dim);
        let dims = Appended {
            rows,
            heads,
            new: 1,
            head_dim,
        };
        host.append(layer, dims, &host_values(key), &host_values(value));
        let blocked: Vec<bool> = blocked.into_data().into_vec().expect("a boolean mask");
        let out = host.attend(layer, &host_values(query), &blocked);
        Tensor::from_data(TensorData::new(out, [rows, hidden]), &device)
    }
}
